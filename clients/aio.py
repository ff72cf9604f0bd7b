"""The asyncio classes beside the thread ones: AsyncPublisher and AsyncSubscriber.

Each wraps a Publisher or a Subscriber and shares everything with it (codec, reconnection,
status, errors, security options): only the waiting moves off the event loop.

Invariants:
- Nothing waits for the network on the event loop's thread. An AsyncPublisher's publishes go,
  in order, to one worker thread of its own, which runs its Publisher: `publish` returns once
  its events are queued there, and at most `max_queued` publishes wait in that queue; past that,
  `publish` awaits room, as a thread Publisher waits while the server holds it back (a full
  block-mode subscriber). With `confirm`, it returns the server's answer.
- An error of an unconfirmed publish is raised by the next publish, flush or close, as the
  thread Publisher raises it later too. A task cancelled while it awaits a publish does not take
  the publish back: the events are published once (or their error kept for the next call).
- An AsyncSubscriber reads its inbox on the event loop (clients.foreign): an event is taken and
  returned with no await in between, so a cancelled `next()` or `async for` loses no event and
  repeats none; the next call gets the next one.
- Requests that wait for an answer (subscribe, unsubscribe, close) run in a thread of asyncio's
  own (to_thread); one cancelled while it waits may still take effect on the server.
- `on_status` and `on_gap` callbacks run on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from functools import partial
from types import TracebackType
from typing import Any

from clients.errors import ConnectionClosed, EsError
from clients.event import Event
from clients.keeper import Status
from clients.publisher import Publisher, Subjects
from clients.subscriber import History, Subscriber
from clients.wire import PubItem

__all__ = ["MAX_QUEUED", "AsyncPublisher", "AsyncSubscriber"]

log = logging.getLogger("clients.aio")

MAX_QUEUED = 1000
"""Publishes an AsyncPublisher queues for its worker thread before `publish` awaits room."""

_RELEASE_EVERY = 64  # room given back to the loop at once, at most this many publishes late

StatusCallback = Callable[[Status], object]
"""Told each change of the connection's status (on the event loop)."""


def _on_loop(
    loop: asyncio.AbstractEventLoop, callback: StatusCallback | None
) -> Callable[[Status], None] | None:
    """`callback`, called on `loop` from whichever thread the keeper tells a change in."""
    if callback is None:
        return None

    def tell(status: Status) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
            loop.call_soon_threadsafe(callback, status)

    return tell


class AsyncPublisher:
    """Publish events from asyncio: `async with AsyncPublisher(uri) as pub: await
    pub.publish("StockQuotes", ("SUN", 22.44))`. Options as Publisher's (see the module)."""

    def __init__(
        self,
        es_uri: str | None = None,
        *,
        max_queued: int = MAX_QUEUED,
        on_status: StatusCallback | None = None,
        **options: Any,
    ) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._loop = asyncio.get_running_loop()
        self.publisher = Publisher(es_uri, on_status=_on_loop(self._loop, on_status), **options)
        """The thread Publisher this one runs (for what only it has)."""
        self._room = asyncio.Semaphore(max_queued)
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any] | None]]
        self._jobs = queue.SimpleQueue()
        self._error: BaseException | None = None  # an unconfirmed publish's, not raised yet
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="es-aio-publisher", daemon=True)
        self._worker.start()

    @property
    def status(self) -> Status:
        """connecting, connected, down (reconnecting) or closed."""
        return self.publisher.status

    @property
    def es_uri(self) -> str:
        """The event server's endpoint now."""
        return self.publisher.es_uri

    async def publish(
        self,
        subjects: Subjects,
        message: Any,
        *,
        confirm: bool = False,
        timeout: float | None = None,
        retain: bool = False,
        ttl: float | None = None,
    ) -> int | None:
        """Publish `message` on one subject or several, as Publisher.publish does; with
        confirm=True, return how many subscribers received it."""
        items = self.publisher.items([(subjects, message)], retain=retain, ttl=ttl)
        return await self._publish(items, confirm, timeout)

    async def publish_many(
        self,
        events: Iterable[tuple[Subjects, Any]],
        *,
        confirm: bool = False,
        timeout: float | None = None,
        retain: bool = False,
        ttl: float | None = None,
    ) -> int | None:
        """Publish several events in one message; they arrive in this order."""
        items = self.publisher.items(events, retain=retain, ttl=ttl)
        return await self._publish(items, confirm, timeout)

    async def clear_retained(
        self, subjects: Subjects, *, confirm: bool = False, timeout: float | None = None
    ) -> None:
        """Forget the retained event of these subjects."""
        await self._call(
            partial(self.publisher.clear_retained, subjects, confirm=confirm, timeout=timeout)
        )

    async def flush(self, timeout: float | None = None) -> None:
        """Wait until the server has handled every earlier publish; raise the first error it
        reported for them."""
        await self._call(partial(self.publisher.flush, timeout))

    async def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """The server's answer to PING."""
        body: dict[str, Any] = await self._call(partial(self.publisher.ping, timeout))
        return body

    async def close(self, timeout: float | None = None) -> None:
        """Flush, then close (see Publisher.close)."""
        if self._closed:
            return
        try:
            await self._call(partial(self.publisher.close, timeout))
        finally:
            self._stop()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            await self.close()
        else:  # as the thread Publisher does: no flush when leaving on an exception
            self.publisher._release()
            self._stop()

    # --- internals ---------------------------------------------------------------------------

    async def _publish(
        self, items: tuple[PubItem, ...], confirm: bool, timeout: float | None
    ) -> int | None:
        call = partial(self.publisher.publish_items, items, confirm=confirm, timeout=timeout)
        if confirm:
            answer: int | None = await self._call(call)
            return answer
        self._raise_kept()
        await self._room.acquire()
        self._jobs.put((call, None))
        return None

    async def _call(self, call: Callable[[], Any]) -> Any:
        """Run `call` in the worker, after everything queued before it; its result."""
        self._raise_kept()
        await self._room.acquire()
        done: asyncio.Future[Any] = self._loop.create_future()
        self._jobs.put((call, done))
        return await asyncio.shield(done)  # a cancelled caller does not cancel the call

    def _raise_kept(self) -> None:
        if self._closed:
            raise ConnectionClosed("this publisher is closed")
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _work(self) -> None:
        """The worker thread: every job in order; room given back to the loop as they end."""
        done = 0
        while (job := self._jobs.get()) is not None:
            call, future = job
            try:
                result = call()
            except (EsError, ValueError, TypeError) as exc:
                self._tell(future, exc)
            except BaseException as exc:
                log.exception("publisher worker failed")
                self._tell(future, exc)
            else:
                if future is not None:
                    self._to_loop(_resolve, future, result, None)
            done += 1
            if future is not None or done >= _RELEASE_EVERY or self._jobs.empty():
                self._to_loop(self._release, done)
                done = 0

    def _tell(self, future: asyncio.Future[Any] | None, exc: BaseException) -> None:
        if future is not None:
            self._to_loop(_resolve, future, None, exc)
        else:
            self._to_loop(self._keep, exc)

    def _to_loop(self, call: Callable[..., object], *args: Any) -> None:
        """Have the loop run `call(*args)`; nothing when the loop is gone (its program ended
        without closing this publisher: nobody waits for the answer)."""
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(call, *args)

    def _keep(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._room.release()

    def _stop(self) -> None:
        if not self._closed:
            self._closed = True
            self._jobs.put(None)  # type: ignore[arg-type]


def _resolve(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if future.done():  # cancelled meanwhile: nobody waits for it
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class _Inner(Subscriber):
    """The thread Subscriber an AsyncSubscriber runs: its loss notices go to `on_gap`."""

    on_gap: Callable[[int | None, Event | None], object] | None = None

    def gap(self, lost: int | None, event: Event | None) -> None:
        if self.on_gap is None:
            super().gap(lost, event)
        else:
            self.on_gap(lost, event)


class AsyncSubscriber:
    """Receive events in asyncio: `async with AsyncSubscriber(uri) as sub: await
    sub.subscribe("StockQuotes"); async for event in sub: ...`. Options as Subscriber's."""

    def __init__(
        self,
        es_uri: str | None = None,
        *,
        on_status: StatusCallback | None = None,
        on_gap: Callable[[int | None, Event | None], object] | None = None,
        **options: Any,
    ) -> None:
        """`on_gap(lost, None)`: events were lost and no event followed to say so (a LOST
        notice); an event after losses says so itself (`event.lost`, `event.resumed`)."""
        loop = asyncio.get_running_loop()
        self.subscriber = _Inner(es_uri, on_status=_on_loop(loop, on_status), **options)
        """The thread Subscriber this one runs (for what only it has)."""
        self.subscriber.on_gap = on_gap

    @property
    def id(self) -> str:
        """The public id the server lists this subscriber by."""
        return self.subscriber.id

    @property
    def status(self) -> Status:
        """connecting, connected, down (reconnecting) or closed."""
        return self.subscriber.status

    @property
    def lost(self) -> int:
        """Events reported lost for this subscriber, in all."""
        return self.subscriber.lost

    @property
    def subscriptions(self) -> tuple[frozenset[str], frozenset[str]]:
        """(subjects, patterns) subscribed to."""
        return self.subscriber.subscriptions

    async def subscribe(self, subjects: Subjects, history: History = None) -> int:
        """As Subscriber.subscribe: the subscription count."""
        return await asyncio.to_thread(self.subscriber.subscribe, subjects, history)

    async def subscribe_match(self, patterns: Subjects, history: History = None) -> int:
        """As Subscriber.subscribe_match (RE2 patterns)."""
        return await asyncio.to_thread(self.subscriber.subscribe_match, patterns, history)

    async def unsubscribe(self, subjects: Subjects) -> int:
        """As Subscriber.unsubscribe: the subscription count left."""
        return await asyncio.to_thread(self.subscriber.unsubscribe, subjects)

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds (or once closed)."""
        return await self.subscriber.anext(timeout)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self.subscriber.aevents()

    async def close(self) -> None:
        """Drop the subscriptions on the server (best effort) and close; a task waiting in
        next() or `async for` gets None, or the end of the iteration."""
        subscriber = self.subscriber
        if subscriber._closed:
            return
        await asyncio.to_thread(subscriber._leave)  # the round trip, off the loop
        subscriber._shut()  # the sockets, on the loop that reads them

    async def __aenter__(self) -> AsyncSubscriber:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
