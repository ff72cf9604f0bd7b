"""The asyncio classes (clients.aio) against a real event server, as the thread ones are tested:

- a round trip, in order, confirmed publishes answered, errors raised as the thread classes do;
- in block mode, a publisher held back by a subscriber that reads nothing never blocks the loop:
  another task keeps running, and every event arrives once the subscriber reads;
- tasks cancelled while they wait (for an event, for a confirmed publish) lose nothing and
  repeat nothing;
- the README's example runs as shown; with a passphrase they work (and the dashboard, which uses
  them), and without it they are refused;
- after a kill -9 of the event server, restarted on its port, both carry on by themselves (at
  the default heartbeats), the gap marked `resumed`; status changes reach the loop's thread.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from clients import AuthFailed, BadSubject, Event
from clients.aio import AsyncPublisher, AsyncSubscriber
from clients.keeper import Status
from tests.integration.conftest import Daemon, es_command, spawn

Start = Callable[..., Daemon]
WAIT = 60.0
SECRET = "open sesame, but longer"


def run(main: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(main, 3 * WAIT))


def subject() -> str:
    return f"aio.{uuid.uuid4().hex[:8]}"


async def take(sub: AsyncSubscriber, count: int) -> list[Event]:
    got = []
    while len(got) < count:
        event = await sub.next(WAIT)
        assert event is not None, f"{len(got)} of {count} events"
        got.append(event)
    return got


def test_a_round_trip_in_order_with_confirms_and_errors(es: Daemon) -> None:
    async def main() -> None:
        topic = subject()
        async with AsyncSubscriber(es.endpoint) as sub, AsyncPublisher(es.endpoint) as pub:
            assert await sub.subscribe(topic) == 1
            for n in range(500):
                await pub.publish(topic, n)
            assert await pub.publish(topic, "last", confirm=True) == 1
            await pub.publish_many([(topic, "a"), (topic, "b")])
            got = [e.msg for e in await take(sub, 503)]
            assert got == [*range(500), "last", "a", "b"]
            with pytest.raises(BadSubject):
                await pub.publish("", "no subject", confirm=True)  # at once, when confirmed
            await pub.publish("$es.mine", "reserved")  # unconfirmed: raised by the next call
            with pytest.raises(BadSubject):
                await pub.flush()
            assert (await pub.ping())["server"] == "es"
            sending = asyncio.create_task(pub.publish(topic, "again"))  # while it waits
            async for event in sub:  # iterating works too, and stops when told
                assert event.msg == "again"
                break
            else:
                pytest.fail("no event")
            await sending

    run(main())


def test_a_publisher_held_back_in_block_mode_never_blocks_the_loop(es: Daemon) -> None:
    async def main() -> None:
        topic, count = subject(), 20_000
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async with (
            AsyncSubscriber(es.endpoint, policy="block", queue_size=10, max_stall=30) as sub,
            AsyncPublisher(es.endpoint) as pub,
        ):
            await sub.subscribe(topic)
            published = 0

            async def publish() -> None:
                nonlocal published
                for n in range(count):
                    await pub.publish(topic, n)
                    published = n + 1

            ticker = asyncio.create_task(tick())
            publishing = asyncio.create_task(publish())
            await _still(lambda: published)  # held back: the subscriber reads nothing
            held, before = published, ticks
            await asyncio.sleep(1.0)
            assert published == held < count and ticks > before  # the loop ran meanwhile
            got = await take(sub, count)
            await publishing
            ticker.cancel()
        assert [e.msg for e in got] == list(range(count))
        assert not any(e.lost or e.resumed for e in got)

    run(main())


async def _still(counter: Callable[[], int], still: float = 1.0) -> None:
    """Return once `counter()` has not moved for `still` seconds (within WAIT)."""
    until, seen, since = time.monotonic() + WAIT, -1, time.monotonic()
    while time.monotonic() < until:
        if counter() != seen:
            seen, since = counter(), time.monotonic()
        elif time.monotonic() - since >= still:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("still moving after a minute")


def test_cancelled_waits_lose_nothing_and_repeat_nothing(es: Daemon) -> None:
    async def main() -> None:
        topic, count = subject(), 3_000
        async with AsyncSubscriber(es.endpoint) as sub, AsyncPublisher(es.endpoint) as pub:
            await sub.subscribe(topic)
            got: list[Any] = []
            cancelled = 0

            async def iterate(most: int) -> None:
                async for event in sub:
                    got.append(event.msg)
                    if len(got) >= most:
                        return

            async def produce() -> None:
                for n in range(count):
                    await pub.publish(topic, n)
                    if n % 100 == 0:
                        await asyncio.sleep(0.001)

            producing = asyncio.create_task(produce())
            until = time.monotonic() + WAIT
            while len(got) < count and time.monotonic() < until:
                try:  # each wait cut short, over and over: a cancellation mid-wait
                    event = await asyncio.wait_for(sub.next(), 0.0005)
                except TimeoutError:
                    cancelled += 1
                    continue
                assert event is not None
                got.append(event.msg)
                if len(got) == count // 2:  # an iteration cancelled too, then taken up again
                    task = asyncio.create_task(iterate(count))
                    await asyncio.sleep(0.01)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)
            await producing
            confirm = asyncio.create_task(pub.publish(topic, "confirmed", confirm=True))
            await asyncio.sleep(0)
            confirm.cancel()  # its caller gave up: the publish still goes, once
            await pub.flush()
            assert [e.msg for e in await take(sub, 1)] == ["confirmed"]
            assert await sub.next(0.5) is None
        assert got == list(range(count)) and cancelled > 0

    run(main())


def test_both_carry_on_after_a_kill_9_of_the_server_at_the_defaults(start_es: Start) -> None:
    first = start_es()

    async def main() -> None:
        topic = subject()
        statuses: list[tuple[Status, bool]] = []
        loop_thread = threading.get_ident()

        def seen(status: Status) -> None:
            statuses.append((status, threading.get_ident() == loop_thread))

        async with (
            AsyncSubscriber(first.endpoint, on_status=seen) as sub,
            AsyncPublisher(first.endpoint, timeout=2 * WAIT) as pub,
        ):
            await sub.subscribe(topic)
            await pub.publish(topic, -1, confirm=True)
            assert [e.msg for e in await take(sub, 1)] == [-1]
            first.kill()
            second = start_es("-p", str(first.port))
            n, event = 0, None
            until = time.monotonic() + WAIT
            while time.monotonic() < until:  # publishing on while the clients find it again
                await pub.publish(topic, n)
                n += 1
                event = await sub.next(0.05)
                if event is not None:
                    break
            assert event is not None and event.resumed, event
            assert sub.subscriber.es_uri == pub.es_uri == second.endpoint
            assert sub.subscriber.recoveries >= 1  # its subscriptions restored by itself
        assert statuses[0] == (Status.CONNECTED, True) and statuses[-1] == (Status.CLOSED, True)
        assert all(on_loop for _, on_loop in statuses)  # each told on the loop's thread

    run(main())


def test_the_readme_asyncio_example_runs_as_shown(es: Daemon) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### With asyncio") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("\n```", start)]
    env = {**os.environ, "ES_URI": es.endpoint}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=WAIT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "1 subscriber(s)",
        "StockQuotes ['SUN', 22.44]",
        "StockQuotes ['IBM', 120.5]",
    ]


def test_the_asyncio_classes_and_the_dashboard_with_a_passphrase(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = start_ns("-i", SECRET)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    secured = start_es("-i", SECRET, "--ns", ns.endpoint, naming=True)

    async def main() -> None:
        topic = subject()
        async with (
            AsyncSubscriber(ident=SECRET) as sub,
            AsyncPublisher(ident=SECRET) as pub,
        ):
            await sub.subscribe(topic)
            assert await pub.publish(topic, {"secret": "payload"}, confirm=True) == 1
            event = await sub.next(WAIT)
            assert event is not None and event.msg == {"secret": "payload"}
        async with AsyncPublisher(secured.endpoint) as stranger:  # no passphrase: refused
            with pytest.raises(AuthFailed):
                await stranger.publish(topic, "x", confirm=True, timeout=WAIT)

    asyncio.run(main())
    board = spawn(es_command("dashboard", "-p", "0"), "dashboard", {"ES_IDENT": SECRET})
    try:
        where = urlsplit(board.endpoint)
        conn = http.client.HTTPConnection(where.hostname, where.port, timeout=WAIT)
        conn.request("GET", "/api/health")
        health = json.loads(conn.getresponse().read())
        conn.close()
        assert health["es"]["up"] and health["ns"]["up"] and health["name"]["here"], health
        assert health["security"] == "CurveZMQ (passphrase)"
    finally:
        board.stop()
        board.log_path.unlink(missing_ok=True)
