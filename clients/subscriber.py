"""Subscriber: receive events on subjects and patterns.

Invariants:
- The inbox (a ROUTER this subscriber binds; the event server's DEALER connects to it) is read by
  one thread at a time: the one in listen(), next(), process_pending() or the async iterator.
  subscribe(), unsubscribe() and abort() are safe from any thread, handlers included.
- The subscriber keeps its own record of what it subscribed to (for close() now, for replay after
  a reconnect later).
- Every loss is reported, once: `event.lost` counts events lost just before `event`, from the
  server's explicit count or, if larger, the gap in the stream's sequence numbers; a loss the
  server tells in a LOST notice (no event followed it) calls `gap(lost, None)`. `lost` is the
  total. listen() calls `gap()` before an event that follows losses.
- Acknowledgements free room in this subscriber's queue on the server (SPEC 3.7); when they go
  back, and so how much waits here, is said in clients.inbox.
- With threading, handlers run in a pool that holds the reader back (clients.handlers).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from threading import Lock
from types import TracebackType
from typing import Any

import zmq

from clients.acks import SIGNAL_SLICE, Acknowledging
from clients.control import Control
from clients.errors import EsError
from clients.event import Event
from clients.foreign import ForeignLoops
from clients.handlers import Handlers
from clients.inbox import (
    DEFAULT_QUEUE,
    Servers,
    ack_every,
    asked_history,
    asked_options,
    hwm,
    open_inbox,
    still_registered,
)
from clients.keeper import Keeper, KeptClient, Status
from clients.naming import resolve_es_uri
from clients.publisher import HEARTBEAT, LIVENESS, Subjects, subject_tuple
from clients.security import Keys, choose, release
from clients.streams import Streams
from clients.taking import Taking
from clients.waker import Waker
from clients.wire import (
    Ack,
    Heartbeat,
    Policy,
    Replay,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    public_id,
)

__all__ = ["Subscriber"]

log = logging.getLogger("clients.subscriber")

History = Replay | Mapping[str, Any] | None
"""What a subscription asks of the server's history: see Subscriber.subscribe."""

# Longest close() waits for the server to drop this subscriber's subscriptions.
_CLOSE_TIMEOUT = 2.0


class Subscriber(Acknowledging, Taking, ForeignLoops, KeptClient):
    """Subscribe to subjects or patterns and handle the events.

    Subclass and override `event(self, event)`, then call `listen()`; or iterate:
    `for event in sub: ...`, or `sub.next(timeout)`.
    """

    def __init__(
        self,
        es_uri: str | None = None,
        *,
        ident: str | None = None,
        keys: Keys | None = None,
        host: str | None = None,
        publish_host: str | None = None,
        policy: Policy | str | None = None,
        queue_size: int | None = None,
        max_stall: float | None = None,
        allow_pickle: bool = False,
        name: str | None = None,
        durable: str | bool | None = None,
        group: str | None = None,
        threading: bool = False,
        timeout: float = 10.0,
        heartbeat: float = HEARTBEAT,
        liveness: float = LIVENESS,
        on_status: Callable[[Status], None] | None = None,
        context: zmq.Context[Any] | None = None,
        esURI: str | None = None,  # noqa: N803 - Pyro's spelling
    ) -> None:
        keys = choose(ident, keys)
        self.options = asked_options(policy, queue_size, max_stall, keys, name, durable, group)
        self.group = group
        """The queue group it is a member of (SPEC 7.12): each event of the group goes to one
        member. close() leaves the group (what it held goes to the others) and keeps the
        group's subscriptions; with `durable=True` the group keeps its events while no member
        is present."""
        self.durable = self.options.durable if group is None else None
        """The durable name (SPEC 7.10): the server keeps this subscriber's events while it is
        away, and gives them to the next subscriber of that name. close() leaves it; unsubscribe
        from everything to end it."""
        self.sid = uuid.uuid4().hex
        """This subscriber's secret: whoever knows it can act for it (SPEC 7.1). Never shown by
        the server; tools list subscribers by `id`."""
        spec = es_uri or esURI
        self._keeper = Keeper(
            lambda failed: resolve_es_uri(spec, keys=keys, avoid=failed),
            timeout=timeout,
            interval=heartbeat,
            liveness=liveness,
            probe=self._probe,
            restore=self._replay,
            on_status=on_status,
            context=context,
            name="es-subscriber-keeper",
            keys=keys,
        )
        try:
            self._setup(host, publish_host, queue_size, allow_pickle, context)
        except BaseException:  # no socket may outlive a failed constructor
            inbox = getattr(self, "_inbox", None)
            if inbox is not None:
                inbox.close(linger=0)
                release(inbox.context, getattr(self, "_zap_domain", ""))
            self._keeper.close()
            raise
        self.set_threading(threading)
        self._keeper.start()

    def _setup(
        self,
        host: str | None,
        publish_host: str | None,
        queue_size: int | None,
        allow_pickle: bool,
        context: zmq.Context[Any] | None,
    ) -> None:
        keys = self._keeper.keys
        self.allow_pickle = allow_pickle
        ctx = context or zmq.Context.instance()
        self._zap_domain = f"es-inbox-{self.sid}"
        queue = DEFAULT_QUEUE if queue_size is None else queue_size
        # Asked for no size, the server's default is not known until a SUB reply says it: the
        # reading thread applies it then (see _note), for the connections made after.
        self._hwm = self._hwm_wanted = hwm(queue)
        self._inbox, self.endpoint = open_inbox(
            ctx, keys, self._zap_domain, queue, self.es_uri, host, publish_host
        )
        self._poller = zmq.Poller()
        self._poller.register(self._inbox, zmq.POLLIN)
        self._waker = Waker()
        self._poller.register(self._waker, zmq.POLLIN)
        self._record_lock = Lock()
        self._subjects: set[str] = set()
        self._patterns: set[str] = set()
        self._ready: deque[Event] = deque()
        self._streams = Streams(durable=self.durable is not None)
        self._last_seq = 0  # the last event the program is done with: what an ACK says
        self._handed: Event | None = None  # the event the program has now (not done yet)
        self._acked_at = time.monotonic()
        self._unacked = 0
        self._servers = Servers()  # the delivery connections of each stream: ACKs go there
        self._last_stream = 0
        self._ack_every = ack_every(queue)
        self._aborted = False
        self._closed = False
        self._handlers: Handlers[Event] = Handlers(self._run_handler)
        self._resumed = False
        self._stream_before: int | None = None
        self._stream_now: int | None = None
        self.lost = 0
        """Events the server reported lost for this subscriber (or seen missing in seq), in all."""
        self.bad_deliveries = 0
        """Deliveries that did not decode or were meant for another subscriber (ignored)."""
        self.replaced = False
        """Another subscriber took this one's durable name: no more events come here."""
        self.history_stream: int | None = None
        """The server's history stream (SPEC 7.11), once a subscription asked for history."""
        self.replayed = 0
        """How many events of the history the last subscription that asked for them gets."""
        self._asked_history = False
        self._history_seen = 0  # the highest history seq of an event handed out

    def _probe(self, control: Control) -> bool:
        """The keeper's heartbeat: False when the server no longer knows our subscriptions."""
        body = control.request(lambda rid: Heartbeat(rid, self.sid), self._keeper.interval)
        subjects, patterns = self.subscriptions
        if body.get("evicted") == "replaced":  # another subscriber took our durable name
            if not self.replaced:
                log.error(
                    "durable %r was taken by another subscriber: not taking it back", self.durable
                )
            self.replaced = True
            return True
        return not (subjects or patterns) or self.replaced or still_registered(body, self.endpoint)

    @property
    def id(self) -> str:
        """The public id the server lists this subscriber by (`es subscribers`, meta-events)."""
        return public_id(self.sid)

    def _replay(self, control: Control) -> None:
        """Subscribe again to everything in our own record, after a restart or an eviction."""
        subjects, patterns = self.subscriptions
        kinds: tuple[type[Subscribe] | type[SubscribeMatch], ...] = (Subscribe, SubscribeMatch)
        kept = False
        again = self._history_again()
        # Set before asking: the first event may come before the answer (a node of a cluster
        # answers once its peers know, SPEC 15.4, and delivers meanwhile). It is the first of
        # a new stream: those still on their way from the old server are not flagged. Not for
        # a durable subscriber, whose events the server most likely kept: its kept events come
        # before the answer too, and only the answer says whether they were kept.
        durable = self.durable is not None
        self._stream_before, self._resumed = self._stream_now, not durable
        for kind, names in zip(kinds, (tuple(subjects), tuple(patterns)), strict=True):
            if names:
                body = self._note(control.request(partial(self._asking, kind, names, again)))
                kept = kept or body.get("kept") is True
        self._resumed = not kept and (durable or self._resumed)  # kept: none lost
        log.info("subscriptions restored: %d subjects, %d patterns", len(subjects), len(patterns))

    def _history_again(self) -> Replay | None:
        """What a subscriber that asked for history asks when it subscribes again after the
        server forgot it: the history after the last event of it it got (SPEC 7.11). A durable
        subscriber's log has those already."""
        if not self._asked_history or self.durable is not None:
            return None
        return Replay(start=self._history_seen + 1, stream=self.history_stream)

    def _asking(
        self,
        kind: type[Subscribe] | type[SubscribeMatch],
        names: tuple[str, ...],
        history: Replay | None,
        rid: int,
    ) -> Subscribe | SubscribeMatch:
        """A SUB or SUBMATCH of `names` for this subscriber (asking for `history`)."""
        options = self.options if history is None else replace(self.options, history=history)
        return kind(rid, self.sid, self.endpoint, names, options)

    def _request(self, build: Callable[[int], Any]) -> dict[str, Any]:
        return self._note(self._keeper.call(lambda control: control.request(build)))

    def _note(self, body: dict[str, Any]) -> dict[str, Any]:
        """Take what a SUB, SUBMATCH or UNSUB reply tells: heartbeat interval, queue size."""
        interval = body.get("heartbeat")
        if isinstance(interval, int | float) and 0 < interval < self._keeper.interval:
            self._keeper.interval = float(interval)  # the server wants to hear from us this often
        queue = body.get("queue")
        if isinstance(queue, int) and queue >= 0:
            self._ack_every = ack_every(queue)  # the queue the server keeps for us, in events
            self._hwm_wanted = hwm(queue)  # set by the reading thread (see _read_inbox)
        stream, replayed = body.get("history"), body.get("replayed")
        if isinstance(stream, int) and isinstance(replayed, int):
            if self.history_stream is not None and stream != self.history_stream:
                self._history_seen = 0  # another history (the server restarted): seqs begin again
            self.history_stream, self.replayed = stream, replayed
        return body

    # --- subscriptions ---------------------------------------------------------------------------

    def subscribe(self, subjects: Subjects, history: History = None) -> int:
        """Subscribe to one subject or several (case-insensitive); return the subscription count.
        `history`: first the events the server's history holds on them (SPEC 7.11), before any
        later event: `{"last": 100}`, `{"since": a_time}` or `{"from": seq, "stream": id}` (a
        Replay does too); `replayed` then says how many."""
        names = subject_tuple(subjects)
        body = self._request(partial(self._asking, Subscribe, names, self._history(history)))
        with self._record_lock:
            self._subjects.update(names)
        return int(body["count"])

    def subscribe_match(self, patterns: Subjects, history: History = None) -> int:
        """Subscribe to subjects matching regular expressions (RE2, case-insensitive, anchored at
        the start); return the subscription count. `history` as for subscribe()."""
        names = subject_tuple(patterns)
        asked = self._history(history)
        body = self._request(partial(self._asking, SubscribeMatch, names, asked))
        with self._record_lock:
            self._patterns.update(names)
        return int(body["count"])

    def _history(self, history: History) -> Replay | None:
        asked = asked_history(history)
        if asked is not None and self.group is not None:
            raise ValueError("a group's member cannot ask for history")
        if asked is not None:
            self._asked_history = True
        return asked

    def unsubscribe(self, subjects: Subjects) -> int:
        """Remove subjects or patterns (each name is removed as both); return the count left."""
        names = subject_tuple(subjects)
        body = self._request(lambda rid: Unsubscribe(rid, self.sid, names))
        folded = {name.lower() for name in names}  # subjects compare in lower case (SPEC 3.1)
        with self._record_lock:
            self._subjects = {s for s in self._subjects if s.lower() not in folded}
            self._patterns.difference_update(names)
        return int(body["count"])

    @property
    def subscriptions(self) -> tuple[frozenset[str], frozenset[str]]:
        """This subscriber's own record: (subjects, patterns)."""
        with self._record_lock:
            return frozenset(self._subjects), frozenset(self._patterns)

    subscribeMatch = subscribe_match  # noqa: N815 - Pyro's spelling

    # --- handling --------------------------------------------------------------------------------

    def event(self, event: Event) -> None:
        """Called by listen() for each event. Override it; the default only logs."""
        log.info("event on %s: %r", event.subject, event.msg)

    def gap(self, lost: int | None, event: Event | None) -> None:
        """Called by listen() before `event` when `lost` events before it never arrived; `lost`
        is None when their number is unknown (the event server was unreachable or restarted).
        `event` is None when the server told of the loss in a notice, with no event after it
        (called then whether or not listen() runs). The default logs a warning."""
        if event is None:
            log.warning("%d event(s) lost", lost)
        elif lost is None:
            log.warning(
                "events may have been lost before %s: the event server was away", event.subject
            )
        else:
            log.warning("%d event(s) lost before %s (seq %d)", lost, event.subject, event.seq)

    def set_threading(self, threading: bool, workers: int = 8) -> None:
        """True: handle events in a pool of `workers` threads (order not kept).
        False (the default): one at a time, in order. Call before listen()."""
        self._handlers.threads(threading, workers)

    setThreading = set_threading  # noqa: N815 - Pyro's spelling

    def listen(self, timeout: float | None = None) -> None:
        """Receive events and call `event()` for each until `abort()` (or `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (event := self._next(deadline)) is not None:
            self._handlers.run(event)

    def abort(self) -> None:
        """End listen() or a waiting next(); safe from a handler or any other thread.

        The abort is used up by the wait it ends: called while nothing waits, it makes the next
        listen() or next() return at once. Events already received stay for the next call."""
        self._aborted = True
        self._waker.wake()

    def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds (or on abort())."""
        return self._next(None if timeout is None else time.monotonic() + timeout)

    def __iter__(self) -> Iterator[Event]:
        while (event := self.next()) is not None:
            yield event

    # --- internals: one consuming thread ---------------------------------------------------------

    def _run_handler(self, event: Event) -> None:
        try:
            if event.resumed:
                self.gap(None, event)
            if event.lost:
                self.gap(event.lost, event)
            self.event(event)
        except Exception:  # one failing handler must not end the subscription
            log.exception("event handler failed on %s (seq %d)", event.subject, event.seq)

    def _next(self, deadline: float | None) -> Event | None:
        while not self._closed:
            if self._aborted:
                self._aborted = False
                return None
            event = self._take()
            if event is not None:
                return event
            self._done()  # asking, with nothing here: the last one is done
            ack_due = self._ack(dry=True)
            wait = SIGNAL_SLICE if deadline is None else deadline - time.monotonic()
            if wait <= 0:
                return None
            wait = min(wait, SIGNAL_SLICE, ack_due)
            ready = self._poller.poll(int(wait * 1000) + 1)
            self._waker.clear_if_woken(ready)
        return None

    # --- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Drop this subscriber's subscriptions on the server (best effort) and close. A durable
        subscriber's stay: the server keeps its events for the next one of its name."""
        if self._closed:
            return
        self._leave()
        self._shut()

    def _leave(self) -> None:
        """The first part of close(): what the server must hear (with a round trip)."""
        subjects, patterns = self.subscriptions
        names = () if self.durable is not None else tuple(subjects | patterns)
        member = self.group is not None  # leaves its group: an UNSUB of no names (SPEC 7.12)
        self._keeper.stop()  # no replay may race the unsubscribe below
        if member:
            names = ()
        if names or member:
            try:
                self._done()  # closing: the program is done with what it had
                if member and self._last_seq:  # what it handled is done: not for the others
                    seq = self._last_seq  # on the control socket: read before the UNSUB
                    self._keeper.control.send(lambda rid: Ack(rid, self.sid, seq))
                self._keeper.control.request(
                    lambda rid: Unsubscribe(rid, self.sid, names), _CLOSE_TIMEOUT
                )
            except EsError as exc:  # the server may be gone; closing must still work
                log.debug("could not unsubscribe on close: %s", exc)

    def _shut(self) -> None:
        """The rest of close(): this side's threads and sockets, at once."""
        self._closed = True
        self._stop_waiting()
        self._handlers.shutdown()
        self._keeper.close()
        self._inbox.close(linger=0)
        release(self._inbox.context, self._zap_domain)
        self._waker.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
