"""The control connection: a DEALER to the event server's ROUTER, with request ids and timeouts.

Invariants:
- One lock guards the socket, so a Subscriber's handler threads may subscribe while its listen
  thread acknowledges; the lock is also the memory barrier ZeroMQ asks for when a socket
  changes threads.
- Every wait has a deadline: a request raises RequestTimeout, a blocked send raises it too.
- Every wait is also cut short by `close()` from another thread (ConnectionClosed): a thread stuck
  sending to a dead server lets go as soon as the keeper has replaced this connection, instead of
  holding the lock until its own timeout.
- A reply for another request id is never mistaken for ours: stale OKs are dropped, and an ERR for
  a request nobody waits for (an unconfirmed publish) is kept in `errors` for the owner to report.
- A request sent with `mark` is answered later, when it suits the owner (`wait_answered`): its
  reply, whenever it is read, is remembered until then (or until `forget`).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import zmq
from zmq.utils.monitor import recv_monitor_message

from clients.errors import (
    AuthFailed,
    ConnectionClosed,
    ErrorCode,
    RemoteProtocolError,
    RequestError,
    RequestTimeout,
    error_from_reply,
)
from clients.security import HANDSHAKE_EVENTS, HANDSHAKES, Keys, as_client
from clients.wire import MAX_INT, Err, Reply, decode_reply, encode

__all__ = ["Control"]

# Replies beyond this many unread errors are counted, not stored.
_MAX_KEPT_ERRORS = 100
# A blocked wait looks this often (ms) whether another thread has closed the connection.
_SLICE_MS = 50

_MISMATCH = (
    "the handshake with the server failed: a wrong passphrase or key on one side, or security "
    "(a passphrase or keys) on one side only"
)
_REFUSED_KEY = (
    "the server refused this client's key (a wrong passphrase, or a key that is not on its "
    "allow-list)"
)


class Control:
    """A DEALER to a server's ROUTER: requests with ids, replies matched to them, errors kept."""

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        timeout: float,
        encoder: Callable[[Any], list[bytes]] = encode,
        keys: Keys | None = None,
        server: str = "event server",
    ) -> None:
        self.endpoint = endpoint
        self.server = server  # what the messages call it: "event server" or "name server"
        self._encode = encoder
        self.timeout = timeout
        self.errors: list[RequestError] = []
        self.errors_dropped = 0
        self._lock = threading.Lock()
        self._rids = itertools.count(1)
        self._sock: zmq.Socket[bytes] = context.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.IPV6, int(":" in (urlsplit(endpoint).hostname or "")))
        as_client(self._sock, keys)
        # The handshake's outcome, from ZeroMQ: how a wrong key shows (nothing else would).
        self._monitor = self._sock.get_monitor_socket(HANDSHAKE_EVENTS)
        self._auth_error: str | None = None
        self._sock.connect(endpoint)
        self._closed = False
        self._closing = threading.Event()  # set without the lock, so that waits can see it
        self._marked: set[int] = set()  # rids of marked requests not answered yet
        self._answered: set[int] = set()  # rids of marked requests answered, not yet asked about

    def next_rid(self) -> int:
        """A fresh request id, never 0 (0 means: no reply wanted)."""
        return next(self._rids) % MAX_INT or next(self._rids)

    def request(self, build: Callable[[int], Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a request and wait for its reply; raise the mapped error for an ERR reply."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._lock:
            self._check_open()
            rid = self.next_rid()
            self._send(self._encode(build(rid)), deadline)
            while True:
                if not self._wait(zmq.POLLIN, deadline):
                    raise RequestTimeout(f"no reply from the {self.server} at {self.endpoint}")
                reply = self._receive(waiting=rid)
                if reply is None or reply.rid != rid:
                    continue
                if isinstance(reply, Err):
                    raise error_from_reply(reply.code, reply.message)
                return reply.body

    def send(self, build: Callable[[int], Any], mark: bool = False) -> int:
        """Send a request without waiting for a reply; its error, if any, lands in `errors`.
        With `mark`, its reply is remembered for `wait_answered`. Returns the rid.
        """
        deadline = time.monotonic() + self.timeout
        with self._lock:
            self._check_open()
            rid = self.next_rid()
            self._send(self._encode(build(rid)), deadline)
            if mark:
                self._marked.add(rid)
            return rid

    def forget(self, rid: int) -> None:
        """The owner no longer cares whether the marked request `rid` is answered."""
        with self._lock:
            self._marked.discard(rid)
            self._answered.discard(rid)

    def wait_answered(
        self, rid: int, timeout: float | None = None, give_up: Callable[[], bool] | None = None
    ) -> bool:
        """Wait until the marked request `rid` is answered (OK or ERR; an ERR is kept in
        `errors`): True. False as soon as `give_up()` says the answer will never come (looked at
        between slices of the wait); RequestTimeout after `timeout` seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        with self._lock:
            self._check_open()
            while rid not in self._answered:
                if give_up is not None and give_up():
                    self._marked.discard(rid)
                    return False
                slice_end = min(deadline, time.monotonic() + _SLICE_MS / 1000)
                if self._wait(zmq.POLLIN, slice_end):
                    self._receive()
                elif time.monotonic() >= deadline:
                    raise RequestTimeout(
                        f"the event server at {self.endpoint} has not handled this publisher's "
                        "events in time (held back by a full block-mode subscriber, or down)"
                    )
            self._answered.discard(rid)
            return True

    def collect(self) -> None:
        """Read replies that arrived unasked for, keeping their errors."""
        with self._lock:
            while not self._closed and self._sock.poll(0):
                self._receive()

    def take_error(self) -> RequestError | None:
        """The first error kept, with a note of how many more there were; all are cleared."""
        with self._lock:
            if not self.errors:
                return None
            first, more = self.errors[0], len(self.errors) - 1 + self.errors_dropped
            self.errors.clear()
            self.errors_dropped = 0
        if more:
            first.add_note(f"and {more} more error(s) for earlier unconfirmed publishes")
        return first

    def close(self) -> None:
        """Close the socket; a thread waiting on it gets ConnectionClosed within a slice."""
        self._closing.set()  # a thread waiting under the lock gives it up within a slice
        with self._lock:
            if not self._closed:
                self._closed = True
                self._sock.disable_monitor()
                self._monitor.close(linger=0)
                self._sock.close(linger=0)

    # --- under the lock ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionClosed("this client was closed")

    def _wait(self, event: int, deadline: float) -> bool:
        """Wait for the socket to be readable or writable until the deadline, in slices; raise
        ConnectionClosed as soon as another thread closes this connection."""
        while True:
            if self._closing.is_set():
                raise ConnectionClosed("the connection was closed while waiting")
            self._read_handshakes()
            if self._auth_error is not None:
                raise AuthFailed(ErrorCode.AUTH_FAILED, f"{self._auth_error} ({self.endpoint})")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._sock.poll(min(_SLICE_MS, int(remaining * 1000) + 1), event):
                return True

    def _read_handshakes(self) -> None:
        """The latest handshake outcome: a failure stands until a handshake succeeds."""
        while self._monitor.poll(0):
            event = int(recv_monitor_message(self._monitor)["event"])
            if HANDSHAKES.get(event) is True:
                self._auth_error = None
            elif event in HANDSHAKES:  # failed: say why as well as ZeroMQ lets us know
                refused = event == zmq.EVENT_HANDSHAKE_FAILED_AUTH
                self._auth_error = _REFUSED_KEY if refused else _MISMATCH

    def _send(self, frames: list[bytes], deadline: float) -> None:
        while True:
            try:
                self._sock.send_multipart(frames, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            if not self._wait(zmq.POLLOUT, deadline):
                raise RequestTimeout(
                    f"the event server at {self.endpoint} accepts nothing (down, or publishers "
                    "blocked behind a full block-mode subscriber)"
                )

    def _receive(self, waiting: int = -1) -> Reply | None:
        """One reply; an ERR for any request but `waiting` is kept for the owner to report."""
        frames = self._sock.recv_multipart()
        try:
            reply = decode_reply(frames)
        except RemoteProtocolError:
            return None  # not a reply this version understands: skip it, never crash on it
        if reply.rid in self._marked:
            self._marked.discard(reply.rid)
            self._answered.add(reply.rid)
        if isinstance(reply, Err) and reply.rid != waiting:
            self._keep(error_from_reply(reply.code, reply.message))
        return reply

    def _keep(self, error: RequestError) -> None:
        if len(self.errors) < _MAX_KEPT_ERRORS:
            self.errors.append(error)
        else:
            self.errors_dropped += 1
