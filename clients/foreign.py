"""A subscriber's events in someone else's event loop: a zmq.Poller, select(), asyncio.

Part of clients.subscriber.Subscriber: the loop waits on the inbox's descriptor, and these read
what is there without waiting, from the one thread that reads the inbox (its invariants hold).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import zmq

from clients.event import Event
from clients.handlers import Handlers

__all__ = ["ForeignLoops"]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class ForeignLoops:
    """Reading a subscriber's inbox from a foreign event loop (mixed into Subscriber)."""

    _inbox: zmq.Socket[bytes]
    _closed: bool
    _handlers: Handlers[Event]
    _take: Callable[[], Event | None]
    _done: Callable[[], None]
    _ack: Callable[..., float]
    _waiting: asyncio.Future[None] | None = None  # what anext() awaits now, if it waits

    @property
    def socket(self) -> zmq.Socket[bytes]:
        """The inbox socket, to register with a zmq.Poller (then call process_pending())."""
        return self._inbox

    def fileno(self) -> int:
        """A file descriptor for select()/selectors. ZeroMQ's descriptor is edge-triggered: when it
        turns readable, call process_pending(), which reads everything there is."""
        return int(self._inbox.getsockopt(zmq.FD))

    def process_pending(self, limit: int | None = None) -> int:
        """Dispatch every event already here without waiting; return how many."""
        count = 0
        while limit is None or count < limit:
            event = self._take()
            if event is None:
                self._done()
                self._ack(dry=True)
                break
            self._handlers.run(event)
            count += 1
        return count

    async def aevents(self) -> AsyncIterator[Event]:
        """Events for an asyncio program: `async for event in sub.aevents(): ...`."""
        while (event := await self.anext()) is not None:
            yield event

    async def anext(self, timeout: float | None = None) -> Event | None:
        """The next event, waiting on the running asyncio loop; None after `timeout` seconds
        or once closed. An event is taken and returned with no wait in between: a task
        cancelled while it waits loses none."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while not self._closed:
            event = self._take()
            if event is not None:
                return event
            self._done()  # waiting for another: the last one is done
            wait = self._ack(dry=True)
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return None
            if int(self._inbox.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
                continue  # ZeroMQ's fd is edge-triggered: never wait while data is already here
            await self._readable(loop, wait)  # or a dry ACK is due, or time is up
        return None

    async def _readable(self, loop: asyncio.AbstractEventLoop, most: float) -> None:
        """Wait until the inbox is readable, for at most `most` seconds (or `_stop_waiting`)."""
        fd = self.fileno()
        self._waiting = ready = loop.create_future()
        loop.add_reader(fd, _resolve, ready)
        timer = loop.call_later(most, _resolve, ready)
        try:
            await ready
        finally:
            self._waiting = None
            timer.cancel()
            loop.remove_reader(fd)

    def _stop_waiting(self) -> None:
        """End anext()'s wait (the inbox is closing), from any thread."""
        waiting = self._waiting
        if waiting is not None:
            waiting.get_loop().call_soon_threadsafe(_resolve, waiting)
