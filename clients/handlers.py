"""How a subscriber runs its handlers: one at a time in the reading thread, in order (the
default), or in a pool of threads, order not kept.

With a pool, at most PENDING_PER_WORKER events per worker wait for a handler: the reader waits
for the handlers rather than consume (and acknowledge) events nobody has handled.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from threading import BoundedSemaphore
from typing import Generic, TypeVar

__all__ = ["PENDING_PER_WORKER", "Handlers"]

PENDING_PER_WORKER = 4
"""Events handed to the pool and not yet handled, per worker."""

T = TypeVar("T")


class Handlers(Generic[T]):
    """Runs `handle` for each item: in the caller's thread, or in a pool (see the module)."""

    def __init__(self, handle: Callable[[T], None]) -> None:
        self._handle = handle
        self._pool: ThreadPoolExecutor | None = None
        self._slots: BoundedSemaphore | None = None

    def threads(self, threading: bool, workers: int = 8) -> None:
        """A pool of `workers` threads (True), or none (False: waits for the pool's work)."""
        if threading and self._pool is None:
            self._pool = ThreadPoolExecutor(workers, thread_name_prefix="es-handler")
            self._slots = BoundedSemaphore(workers * PENDING_PER_WORKER)
        elif not threading:
            self.shutdown()

    def run(self, item: T) -> None:
        """Handle `item`: now, or in the pool once a slot is free (waiting for one if not)."""
        if self._pool is None or self._slots is None:
            self._handle(item)
            return
        slots = self._slots
        slots.acquire()  # the handlers are behind: stop reading (and acknowledging) events
        future: Future[None] = self._pool.submit(self._handle, item)
        future.add_done_callback(lambda _: slots.release())

    def shutdown(self) -> None:
        """Wait for the pool's handlers to finish, and go back to handling in the caller."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = self._slots = None
