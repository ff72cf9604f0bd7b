"""Queue policies with real processes: block loses nothing, drop loses for the slow one only.

A subscriber that does not read is the slow one. Kernel socket buffers on loopback can hold tens
of megabytes, so the tests publish large messages until the server reports a stall or a drop
(bounded in count), rather than guessing how much data fills the pipe.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import zmq

from clients import Event, Policy, Publisher, Subscriber, admin
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import (
    BIG,
    WAIT,
    Telling,
    assert_losses_are_told,
    lost_in,
    reading,
    subscriber_stats,
    warm_up,
)
from tests.integration.helpers import slow_and_fast as slow_and_fast_clients

Start = Callable[..., Daemon]

MAX_EVENTS = 3000  # about 200 MB at most: far more than loopback buffers hold


def publish_until(pub: Publisher, subject: str, done: Callable[[], bool]) -> int:
    """Publish numbered large events until `done()`; return how many were published."""
    for i in range(MAX_EVENTS):
        pub.publish(subject, [i, BIG])
        if done():
            pub.flush(WAIT)
            return i + 1
    raise AssertionError(f"condition not reached after {MAX_EVENTS} events")


def publish_until_dropped(pub: Publisher, subject: str, subscribers: int) -> int:
    """Publish numbered large events, each confirmed, until one reaches fewer than `subscribers`
    (the slow one's copy was dropped); return how many were published."""
    for i in range(MAX_EVENTS):
        if pub.publish(subject, [i, BIG], confirm=True, timeout=WAIT) < subscribers:
            return i + 1
    raise AssertionError(f"no event was dropped in {MAX_EVENTS}")


def drain_then_mark(sub: Telling, pub: Publisher, subject: str) -> list[Event | int]:
    """Read what a stalled subscriber has queued; once it is empty, publish markers until one is
    accepted for it, and return everything it received up to that marker, and the losses it was
    told of on the way."""
    start = len(sub.timeline)
    for _ in range(1000):
        event = sub.next(0.5)
        if event is None:
            pub.publish(subject, "marker", confirm=True)
            continue
        if event.msg == "marker":
            return sub.timeline[start:]
    raise AssertionError("the marker never arrived")


def test_block_policy_loses_nothing_while_a_subscriber_stalls(
    start_es: Callable[..., Daemon],
) -> None:
    es = start_es("--max-stall", "60", "--log-level", "DEBUG")
    subject = f"block.{uuid.uuid4().hex[:8]}"
    published: list[int] = []
    with Subscriber(es.endpoint, queue_size=1) as slow, Publisher(es.endpoint, timeout=120) as pub:
        slow.subscribe(subject)
        warm_up(pub, subject, slow)
        stalls_before = es.log().count("publish waits")
        stop = threading.Event()

        def run() -> None:
            published.append(publish_until(pub, subject, stop.is_set))

        publisher = threading.Thread(target=run, daemon=True)
        publisher.start()
        wait_until(
            lambda: es.log().count("publish waits") > stalls_before, WAIT, "a held-back publish"
        )
        stop.set()
        received: list[Event] = []
        deadline = time.monotonic() + WAIT
        while not published or len(received) < published[0]:
            assert time.monotonic() < deadline, f"stream ended after {len(received)} events"
            event = slow.next(0.2)
            if event is not None:
                received.append(event)
                deadline = time.monotonic() + WAIT
        publisher.join(WAIT)
    assert [e.msg[0] for e in received] == list(range(published[0]))
    assert [e.seq for e in received] == list(range(2, published[0] + 2))
    assert sum(e.lost for e in received) == 0
    assert es.stats()["server"]["events_dropped"] == 0


@dataclass
class Outcome:
    """What a slow and a fast subscriber got from one load."""

    published: int
    fast: list[Event]
    slow: list[Event | int]  # events, and losses told in LOST notices
    slow_stats: dict[str, int]


def slow_and_fast(
    es: Daemon, slow_options: dict[str, Any], fast_options: dict[str, Any]
) -> Outcome:
    """A subscriber that never reads and one that reads everything; publish until the slow one's
    copy of an event is dropped, then collect what each received."""
    with slow_and_fast_clients(es, slow_options, fast_options) as cast:
        slow, fast, pub, subject = cast.slow, cast.fast, cast.pub, cast.subject
        with reading(fast) as fast_events:
            count = publish_until_dropped(pub, subject, 2)
            wait_until(lambda: len(fast_events) >= count, WAIT, "the fast subscriber's events")
            stats = subscriber_stats(es, slow.sid)
            slow_events = drain_then_mark(slow, pub, subject)
    return Outcome(count, fast_events, slow_events, stats)


def assert_only_the_slow_one_lost(outcome: Outcome) -> None:
    assert [e.msg[0] for e in outcome.fast[: outcome.published]] == list(range(outcome.published))
    assert all(e.lost == 0 for e in outcome.fast)
    assert_losses_are_told(outcome.slow)
    assert lost_in(outcome.slow) > 0
    # every event meant for the slow subscriber is accounted for: received, or told as lost
    events = [e for e in outcome.slow if isinstance(e, Event)]
    assert 1 + len(events) + lost_in(outcome.slow) == events[-1].seq


def test_drop_policy_loses_for_the_slow_subscriber_only(start_es: Callable[..., Daemon]) -> None:
    outcome = slow_and_fast(
        start_es(), {"policy": "drop", "queue_size": 1}, {"policy": "drop", "queue_size": 100_000}
    )
    assert_only_the_slow_one_lost(outcome)
    assert outcome.slow_stats["stalls"] == 0


def test_block_policy_drops_after_the_maximum_stall(start_es: Callable[..., Daemon]) -> None:
    outcome = slow_and_fast(
        start_es(), {"queue_size": 1, "max_stall": 0.2}, {"queue_size": 100_000}
    )
    assert_only_the_slow_one_lost(outcome)
    assert outcome.slow_stats["policy"] == "block" and outcome.slow_stats["stalls"] >= 1


def test_block_policy_waits_once_for_a_subscriber_that_stopped_reading(
    start_es: Callable[..., Daemon],
) -> None:
    """After one stall ran out, publishers no longer wait for that subscriber (its copies drop
    at once) until it reads again; then it receives again, every loss announced."""
    es = start_es()
    with slow_and_fast_clients(es, {"max_stall": 0.3}) as cast:
        slow, fast, pub, subject = cast.slow, cast.fast, cast.pub, cast.subject
        with reading(fast):
            publish_until_dropped(pub, subject, 2)
            stalls = subscriber_stats(es, slow.sid)["stalls"]
            for i in range(20):
                assert pub.publish(subject, [MAX_EVENTS + i, BIG], confirm=True, timeout=WAIT) == 1
            assert subscriber_stats(es, slow.sid)["stalls"] == stalls  # none of them waited
            slow_events = drain_then_mark(slow, pub, subject)
    assert_losses_are_told(slow_events)
    assert lost_in(slow_events) >= 20


@pytest.mark.parametrize("queue_size", [None, 5000])  # None: the server's default, 1000
def test_the_inbox_is_bounded_in_line_with_the_servers_queue(
    start_es: Start, queue_size: int | None
) -> None:
    # Before, a subscriber that asked for no size kept an inbox of 1000 messages whatever queue
    # the server kept for it (its own comment said the server never reaches that limit).
    es = start_es() if queue_size is None else start_es("--queue-size", str(queue_size))
    topic = f"inbox.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint, policy=Policy.DROP) as sub:
        sub.subscribe(topic)
        with Publisher(es.endpoint) as pub:
            assert pub.publish(topic, "x", confirm=True) == 1
        event = sub.next(WAIT)  # the reading thread sets the limit, for connections after
        assert event is not None and event.msg == "x"
        assert sub.socket.getsockopt(zmq.RCVHWM) == (queue_size or 1000) + 16
        stats = admin.subscribers(es.endpoint, timeout=WAIT)["subscribers"]
        assert [(s["policy"], s["queue"]) for s in stats] == [("drop", queue_size or 1000)]
