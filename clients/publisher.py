"""Publisher: send events to the event server.

Invariants:
- `publish` does not wait for a round trip unless asked (confirm=True); ZeroMQ queues the event.
  When the server pushes back (a full block-mode subscriber), `publish` waits, up to `timeout`.
- Unconfirmed events go through the outbox (clients.outbox): alone when the publisher is idle,
  many to one message under load. A confirmed publish, flush() and close() send what waits
  there first, so events keep their order.
- `flush()` returns only once the server has handled everything published before it (it is a
  PING, and the server handles one connection's requests in order); it raises the first error
  the server reported for an unconfirmed publish.
- A publisher runs at most AHEAD events ahead of what the server has handled: every MARK_EVERY
  events, one of the outbox's PUBs asks for an answer, and sending waits for the oldest answer
  when more than AHEAD events went out after it. So a block-mode subscriber that reads slowly
  holds publishers back by that much, not by every buffer on the way, and a flush never waits
  behind more than that.
- A publisher the program never closed is flushed when the process exits (atexit), for at most
  EXIT_WAIT seconds; what may not have arrived then is logged with its count.
"""

from __future__ import annotations

import atexit
import logging
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import Any

import zmq

from clients.control import Control
from clients.errors import AuthFailed, ConnectionClosed, ErrorCode, EsError, TooLarge
from clients.keeper import Keeper, KeptClient, Status
from clients.naming import resolve_es_uri
from clients.outbox import LINGER, Outbox
from clients.payload import encode_payload, format_for
from clients.security import Keys, choose
from clients.wire import INLINE_BYTES, Heartbeat, Ping, PubItem, Publish

__all__ = ["AHEAD", "EXIT_WAIT", "MARK_EVERY", "Publisher", "Subjects"]

log = logging.getLogger("clients.publisher")

Subjects = str | Sequence[str]

# Every server accepts payloads of this size (its max_message_bytes is never lower than the
# header ceiling it must accept anyway); only larger ones need the server's own limit, from PING.
_ALWAYS_ACCEPTED = 1 << 20
# How many unconfirmed publishes pass between looks for error replies: often enough to surface
# errors soon, rarely enough to keep a poll call off the hot path.
_COLLECT_EVERY = 64


# A client checks its link this often, and calls the server gone after this long without an
# answer: a dead server is noticed within LIVENESS seconds (the issue asks for at most 10).
HEARTBEAT = 2.0
LIVENESS = 6.0

MARK_EVERY = 1000
"""Events between PUBs that ask the server for an answer (confirm), so a publisher knows how far
the server got without a round trip of its own: a few per second at full speed."""

AHEAD = 4000
"""Most events a publisher sends beyond the last one the server answered for; then it waits.
Tens of milliseconds of traffic for a fast server: never the limit while the server keeps up."""

EXIT_WAIT = 5.0
"""Longest a process's exit waits for an unclosed publisher's events to reach the server."""

_open: weakref.WeakSet[Publisher] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    """A program that ends without closing its publishers still sends what they published."""
    for publisher in list(_open):
        publisher._close_at_exit()


def _alive(control: Control, probe_id: str, timeout: float) -> bool:
    """The keeper's heartbeat: HEARTBEAT with an id that never subscribes. Unlike PING it is
    answered even while the server waits on a stalled subscriber, so a stall is not a death."""
    control.request(lambda rid: Heartbeat(rid, probe_id), timeout)
    return True


def subject_tuple(subjects: Subjects) -> tuple[str, ...]:
    """One subject or several, as a tuple of strings; TypeError for anything else."""
    if isinstance(subjects, str):
        return (subjects,)
    result = tuple(subjects)
    if not all(isinstance(s, str) for s in result):
        raise TypeError("subjects must be a string or a sequence of strings")
    return result


class Publisher(KeptClient):
    """Publish events on subjects: `Publisher(es_uri).publish("StockQuotes", ("SUN", 22.44))`."""

    def __init__(
        self,
        es_uri: str | None = None,
        *,
        ident: str | None = None,
        keys: Keys | None = None,
        serializer: str = "msgpack",
        timeout: float = 10.0,
        heartbeat: float = HEARTBEAT,
        liveness: float = LIVENESS,
        on_status: Callable[[Status], None] | None = None,
        context: zmq.Context[Any] | None = None,
        linger: float = LINGER,
        esURI: str | None = None,  # noqa: N803 - Pyro's spelling
    ) -> None:
        """`linger`: publishes closer together than this many seconds are sent as one message
        (0: each alone); the first after a pause always goes at once."""
        keys = choose(ident, keys)
        spec = es_uri or esURI
        self.format = format_for(serializer)
        probe_id = uuid.uuid4().hex
        self._keeper = Keeper(
            lambda failed: resolve_es_uri(spec, keys=keys, avoid=failed),
            timeout=timeout,
            interval=heartbeat,
            liveness=liveness,
            probe=lambda control: _alive(control, probe_id, heartbeat),
            restore=lambda control: None,  # a publisher has no session to restore
            on_status=on_status,
            context=context,
            name="es-publisher-keeper",
            keys=keys,
        )
        self._keeper.start()
        self._outbox = Outbox(self._send_batch, linger)
        self._since_collect = 0
        self._unflushed = 0  # events published since the last flush
        self._limits: dict[str, Any] | None = None
        self._sent = 0  # events the outbox sent
        self._answered = 0  # events sent up to the newest answered mark
        # control, rid, events sent, the keeper's reconnections: unanswered PUBs that asked
        self._marks: deque[tuple[Control, int, int, int]] = deque()
        self._closed = False
        # An AuthFailed a call raised, with nothing published since: close() does not raise it
        # again (the program knows the server refuses this client).
        self._told_refused = False
        _open.add(self)

    def publish(
        self,
        subjects: Subjects,
        message: Any,
        *,
        confirm: bool = False,
        timeout: float | None = None,
        retain: bool = False,
        ttl: float | None = None,
    ) -> int | None:
        """Publish `message` on one subject or several (one event per subject).

        With confirm=True, wait for the server and return how many subscribers received it.
        With retain=True, the server keeps it as the latest event of each subject and sends it
        to every new subscription that matches (for `ttl` seconds, or until replaced).
        """
        if confirm or retain or type(subjects) is not str:
            return self.publish_many(
                [(subjects, message)], confirm=confirm, timeout=timeout, retain=retain, ttl=ttl
            )
        # The hot path, one event on one subject: what publish_many does, without its loops.
        payload = encode_payload(message, self.format)
        size = len(payload)
        try:
            self._put((PubItem((subjects,), self.format, payload),), size, size, timeout)
        except AuthFailed:
            self._told_refused = True
            raise
        self._told_refused = False
        return None

    def publish_many(
        self,
        events: Iterable[tuple[Subjects, Any]],
        *,
        confirm: bool = False,
        timeout: float | None = None,
        retain: bool = False,
        ttl: float | None = None,
    ) -> int | None:
        """Publish several events in one message; they arrive in this order."""
        items = self.items(events, retain=retain, ttl=ttl)
        return self.publish_items(items, confirm=confirm, timeout=timeout)

    def items(
        self, events: Iterable[tuple[Subjects, Any]], *, retain: bool = False, ttl: float | None
    ) -> tuple[PubItem, ...]:
        """Events encoded as this publisher sends them (its serializer), for publish_items."""
        return tuple(
            PubItem(
                subject_tuple(subjects),
                self.format,
                encode_payload(message, self.format),
                retain,
                ttl if retain else None,
            )
            for subjects, message in events
        )

    def publish_items(
        self, items: tuple[PubItem, ...], *, confirm: bool = False, timeout: float | None = None
    ) -> int | None:
        """Publish events already encoded (`items`), in one message, in order: publish_many
        once it has encoded its events (the asyncio publisher encodes on its own loop)."""
        if not items:  # a PUB of no items is malformed (SPEC 3.4), and there is nothing to send
            return 0 if confirm else None
        try:  # as _telling() does, without its cost on the hot path
            sent = self._send_items(items, confirm, timeout)
        except AuthFailed:
            self._told_refused = True
            raise
        self._told_refused = False
        return sent

    def clear_retained(
        self, subjects: Subjects, *, confirm: bool = False, timeout: float | None = None
    ) -> None:
        """Forget the retained event of these subjects (a retained, empty message)."""
        with self._telling():
            self._send_items((PubItem(subject_tuple(subjects), 0, b"", True),), confirm, timeout)

    @contextmanager
    def _telling(self) -> Iterator[None]:
        """Around a call whose outcome the program sees: remember whether it raised AuthFailed."""
        try:
            yield
        except AuthFailed:
            self._told_refused = True
            raise
        self._told_refused = False  # something went out after it: close() has news to tell

    def _send_items(
        self, items: tuple[PubItem, ...], confirm: bool, timeout: float | None
    ) -> int | None:
        sizes = [len(item.payload) for item in items]
        if confirm:
            self._check_size(max(sizes), timeout)
            self._outbox.drain()
            inline = sum(sizes) <= INLINE_BYTES  # small payloads inside the header (SPEC 3.4)
            body = self._keeper.call(
                lambda c: c.request(lambda rid: Publish(rid, True, items, inline), timeout)
            )
            return int(body.get("receivers", 0))
        self._put(items, sum(sizes), max(sizes), timeout)
        return None

    def _put(
        self, items: tuple[PubItem, ...], size: int, largest: int, timeout: float | None
    ) -> None:
        """Unconfirmed events into the outbox: `size` bytes of payload, the `largest` one's."""
        self._check_size(largest, timeout)
        self._outbox.put(items, size)
        self._unflushed += len(items)
        self._since_collect += 1
        if self._since_collect >= _COLLECT_EVERY:
            self._since_collect = 0
            self._control.collect()

    def _send_batch(self, items: tuple[PubItem, ...], size: int) -> None:
        """The outbox's sender: `size` is the payload bytes it already counted. Every
        MARK_EVERY events it asks for an answer; it waits while AHEAD events are unanswered."""
        inline = size <= INLINE_BYTES  # small payloads inside the header (SPEC 3.4)
        mark = self._sent + len(items) - self._newest_mark() >= MARK_EVERY

        def send(control: Control) -> tuple[Control, int]:
            return control, control.send(lambda rid: Publish(rid, mark, items, inline), mark)

        control, rid = self._keeper.call(send)
        self._sent += len(items)
        if mark:
            self._marks.append((control, rid, self._sent, self._keeper.reconnections))
        self._hold_back()

    def _newest_mark(self) -> int:
        return self._marks[-1][2] if self._marks else self._answered

    def _reconnected(self, since: int) -> bool:
        """Whether the keeper found the server gone and again since its `since`th time."""
        return self._keeper.reconnections != since

    def _hold_back(self) -> None:
        """Wait for the oldest answers while more than AHEAD events went out after the last one
        answered (so at most AHEAD / MARK_EVERY + 1 marks are ever kept). A mark sent before the
        keeper found the server gone (and again) will never be answered: it is dropped, as what
        it was sent with is lost."""
        marks, keeper = self._marks, self._keeper
        while marks and self._sent - self._answered > AHEAD:
            control, rid, sent, epoch = marks.popleft()
            if control is keeper.control and epoch == keeper.reconnections:
                try:  # at once when the answer is already here, as it is while the server keeps up
                    control.wait_answered(rid, give_up=partial(self._reconnected, epoch))
                except ConnectionClosed:
                    if control is keeper.control:
                        raise  # this publisher is closing
            else:
                control.forget(rid)
            self._answered = sent

    def _check_size(self, largest: int, timeout: float | None) -> None:
        """Refuse here what the server would refuse by dropping the connection (a frame over its
        socket's size limit gets no reply at all, only a timeout)."""
        if largest <= _ALWAYS_ACCEPTED:
            return
        if self._limits is None:
            self._limits = dict(self.ping(timeout).get("limits", {}))
        limit = int(self._limits.get("max_message_bytes", _ALWAYS_ACCEPTED))
        if largest > limit:
            raise TooLarge(
                ErrorCode.TOO_LARGE, f"message of {largest} bytes; this server takes {limit}"
            )

    def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has handled every earlier publish; raise the first error it
        reported for them (its notes say how many more there were), and forget them all."""
        with self._telling():
            self._flush(timeout)

    def _flush(self, timeout: float | None) -> None:
        self._outbox.drain()
        self._keeper.call(lambda c: c.request(Ping, timeout))
        self._unflushed = 0
        error = self._control.take_error()
        if error is not None:
            raise error

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """The server's answer to PING: its name, version and clock."""
        with self._telling():
            return self._keeper.call(lambda c: c.request(Ping, timeout))

    @property
    def errors(self) -> list[Any]:
        """Errors the server reported for unconfirmed publishes, not yet raised by flush()."""
        return list(self._control.errors)

    def close(self, timeout: float | None = None) -> None:
        """Flush, then close. What was published before has reached the server. (With nothing
        published since the last flush, there is nothing to wait for: close at once.) Raises
        what the program has not been told: an error the server reported for an unconfirmed
        publish, or a failure to flush; not the AuthFailed a call raised already, when nothing
        was published after it."""
        try:
            if self._unflushed or self._control.errors:
                self._flush(timeout)
        except AuthFailed:
            if not self._told_refused:
                raise
        finally:
            self._release()

    def _release(self) -> None:
        self._closed = True
        _open.discard(self)
        self._outbox.close()
        self._keeper.close()

    def _close_at_exit(self) -> None:
        """The process is ending and the program did not close this publisher: send what it
        published, waiting at most EXIT_WAIT seconds in all, and say what may be lost."""
        if self._closed:
            return
        pending = self._unflushed
        self._control.timeout = min(self._control.timeout, EXIT_WAIT)  # every wait from here
        try:
            self.close(EXIT_WAIT)
        except EsError as exc:
            log.warning(
                "%d event(s) published may not have reached the event server "
                "(the process ended without closing its publisher): %s",
                pending,
                exc,
            )

    def __enter__(self) -> Publisher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            self._release()
