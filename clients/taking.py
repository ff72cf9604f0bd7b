"""What a subscriber takes in from its inbox (mixed into Subscriber): deliveries read and
decoded, their events queued for the program, losses and goodbyes noted.

Invariants:
- The inbox is read only by the thread that consumes events, a bounded number of messages a
  call, and never waited on here: a caller that finds nothing polls.
- A batch of events without flags takes the quick path (clients.wire.quick_batch, then
  clients.inbox.plain_events): its events are made with no Delivery between. Anything else is
  decoded by the general decoder; what does not decode, or is for another subscriber, is
  counted in `bad_deliveries` and dropped, never raised.
- Every loss is counted once in `lost`, whether an event or a LOST notice tells it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

import zmq

from clients.errors import RemoteProtocolError
from clients.event import Event
from clients.inbox import Servers, events_of, plain_events
from clients.keeper import Keeper
from clients.streams import Streams
from clients.waker import readable
from clients.wire import Bye, Loss
from clients.wire.codec import decode_delivery_general
from clients.wire.quick import quick_batch

__all__ = ["READ_TURN", "Taking"]

log = logging.getLogger("clients.subscriber")

READ_TURN = 64
"""Messages read from the inbox per call before handing control back."""


class Taking:
    """Deliveries in from the inbox, events out to `_ready` (see the module)."""

    sid: str
    allow_pickle: bool
    lost: int
    bad_deliveries: int
    _inbox: zmq.Socket[bytes]
    _hwm: int
    _hwm_wanted: int
    _ready: deque[Event]
    _servers: Servers
    _streams: Streams
    _keeper: Keeper
    _unacked: int
    _resumed: bool  # recovered: the first event of a stream other than _stream_before says so
    _stream_before: int | None
    _stream_now: int | None  # the stream of the last events taken
    _asked_history: bool
    _history_seen: int
    gap: Callable[[int | None, Event | None], None]

    def _read_inbox(self) -> None:
        if self._hwm != self._hwm_wanted:  # this thread owns the inbox now
            self._hwm = self._hwm_wanted
            self._inbox.setsockopt(zmq.RCVHWM, self._hwm)
        inbox = self._inbox
        for _ in range(READ_TURN):
            if not readable(inbox):
                return  # half the cost of the exception an empty receive raises
            try:
                frames = inbox.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            stream = self._accept(frames[1:])
            if stream is not None:
                self._servers.heard(stream, frames[0])  # where our ACKs go back to
            if self._ready:
                return

    def _accept(self, frames: list[bytes]) -> int | None:
        """Take in a delivery; its stream, or None if it was not one for us."""
        batch = quick_batch(frames)
        if batch is not None:  # the hot path: events without flags, made with no Delivery
            sid, stream, lost, first, metas, payloads, _ = batch
            if sid != self.sid:
                self.bad_deliveries += 1
                return None
            made = plain_events(
                stream, lost, first, metas, payloads, self._streams, self.allow_pickle
            )
            self._ready.extend(self._taken(made, len(metas), stream))
            return stream
        try:
            delivery = decode_delivery_general(frames)
        except RemoteProtocolError as exc:
            self.bad_deliveries += 1
            log.warning("ignored a delivery that does not decode: %s", exc)
            return None
        if delivery.sid != self.sid:
            self.bad_deliveries += 1
            return None
        if isinstance(delivery, Bye):
            self._keeper.gone()  # find the server again now, not after its silence
        elif isinstance(delivery, Loss):
            self._notice(delivery)
        elif delivery.events:
            made = events_of(delivery, self._streams, self.allow_pickle)
            self._ready.extend(self._taken(made, len(delivery.events), delivery.stream))
        return delivery.stream

    def _notice(self, loss: Loss) -> None:
        """The server dropped events and no event followed them: say so now."""
        lost = self._streams.notice(loss.stream, loss.seq, loss.lost)
        self.lost += lost
        try:
            self.gap(lost, None)
        except Exception:  # the program's hook must not end the subscription
            log.exception("gap() failed")

    def _taken(self, made: tuple[list[Event], int], count: int, stream: int) -> list[Event]:
        """The events made of a batch of `count` (and the loss before them) on `stream`,
        noted."""
        events, lost = made
        self.lost += lost
        if len(events) < count:  # had already: the server waits for our ACK
            self._unacked += 1
        if not events:
            return events
        if self._resumed and stream != self._stream_before:  # not one the old server sent
            self._resumed = False
            events[0].resumed = True
        self._stream_now = stream
        if self._asked_history:
            seen = [e.history for e in events if e.history is not None]
            self._history_seen = max(self._history_seen, *seen, 0)
        return events
