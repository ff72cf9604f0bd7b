"""The publisher's outbox: unconfirmed events on their way to the server.

A publish that finds the publisher idle is sent at once, alone: batching never delays light
traffic. A publish that comes within `linger` seconds of the last send joins a batch instead,
which goes out as one PUB when it is full, or, when the program stops publishing, from the
flusher thread as soon as that thread runs. So under load one ZeroMQ message carries many events
(the server's and the network's cost per message is paid once for all of them), and no event
waits for more than the flusher thread's wake-up.

Invariants:
- Events leave in the order they were put, whichever thread sends them: every send happens under
  one lock, and takes everything waiting.
- A batch holds at most MAX_ITEMS events and, unless one event alone is larger, MAX_BYTES of
  payload; every server accepts that much in one PUB (SPEC.md, limits).
- An error of a send made by the flusher thread is raised by the next put() or drain(), once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from clients.errors import EsError
from clients.wire import PUB_BYTES_ACCEPTED, PUB_ITEMS_ACCEPTED, PubItem

__all__ = ["LINGER", "MAX_BYTES", "MAX_ITEMS", "Outbox"]

MAX_ITEMS = PUB_ITEMS_ACCEPTED
MAX_BYTES = PUB_BYTES_ACCEPTED
# Publishes closer together than this to the last send are gathered: far less than a paced
# publisher's interval (200 us at 5,000 events a second), far more than a tight loop's.
LINGER = 100e-6


class Outbox:
    """Unconfirmed events on their way: alone when idle, gathered under load (see the module)."""

    def __init__(
        self,
        send: Callable[[tuple[PubItem, ...], int], None],
        linger: float = LINGER,
        name: str = "es-publisher-flusher",
    ) -> None:
        self._send = send
        self.linger = linger
        self._items: list[PubItem] = []
        self._bytes = 0
        self._lock = threading.Lock()
        self._last_send = 0.0
        self._wake = threading.Event()
        self._closed = False
        self._error: EsError | None = None
        self.batches = 0
        """PUB messages sent for more than one event (for tests and statistics)."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, items: tuple[PubItem, ...], size: int) -> None:
        """Send `items` (`size` bytes of payload) now if the publisher is idle; else add them to
        the batch. The hot path: one call per publish, which mostly only appends."""
        with self._lock:
            if self._error is not None:
                self._raise_error()
            batch = self._items
            if batch:
                if self._bytes + size <= MAX_BYTES:
                    batch.extend(items)
                    self._bytes += size
                    if len(batch) >= MAX_ITEMS:
                        self._send_locked()
                    return  # the put that began this batch woke the flusher
                self._send_locked()  # the batch is as large as it may be: send it first
                batch = self._items
            batch.extend(items)
            self._bytes += size
            if time.monotonic() - self._last_send >= self.linger or len(batch) >= MAX_ITEMS:
                self._send_locked()  # idle: alone, at once
                return
        self._wake.set()  # a new batch: the flusher sends it, unless a put fills it first

    def drain(self) -> None:
        """Send everything waiting now (before a confirmed publish, a flush, or closing)."""
        with self._lock:
            self._raise_error()
            self._send_locked()

    def close(self) -> None:
        """Stop the flusher thread; what is still waiting is not sent (drain first)."""
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _send_locked(self) -> None:
        if not self._items:
            return
        items, size = tuple(self._items), self._bytes
        self._items, self._bytes = [], 0
        if len(items) > 1:
            self.batches += 1
        try:
            self._send(items, size)
        finally:
            self._last_send = time.monotonic()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            with self._lock:
                try:
                    self._send_locked()
                except EsError as exc:  # told to the program at its next publish or flush
                    self._error = self._error or exc
