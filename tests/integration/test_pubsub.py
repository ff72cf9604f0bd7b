"""Publish and subscribe through a real `es` process."""

from __future__ import annotations

import asyncio
import selectors
import threading
import time
import uuid
from collections.abc import Iterator
from typing import ClassVar

import pytest

from clients import Event, PayloadError, Publisher, Subscriber
from tests.integration.conftest import Daemon, wait_until

WAIT = 30.0  # seconds any single event may take to arrive on a loaded machine


@pytest.fixture
def subject() -> str:
    """A subject no other test uses."""
    return f"test.{uuid.uuid4().hex[:12]}"


@pytest.fixture
def publisher(es: Daemon) -> Iterator[Publisher]:
    with Publisher(es.endpoint) as pub:
        yield pub


@pytest.fixture
def subscriber(es: Daemon) -> Iterator[Subscriber]:
    with Subscriber(es.endpoint) as sub:
        yield sub


def receive(sub: Subscriber, count: int) -> list[Event]:
    events = []
    for _ in range(count):
        event = sub.next(WAIT)
        assert event is not None, f"only {len(events)} of {count} events arrived"
        events.append(event)
    return events


def assert_nothing_more(sub: Subscriber, publisher: Publisher) -> None:
    """Everything published has been handled (flush), and no further event is waiting."""
    publisher.flush()
    marker = f"marker.{uuid.uuid4().hex}"
    sub.subscribe(marker)
    publisher.publish(marker, "end")
    event = sub.next(WAIT)
    assert event is not None and event.subject == marker, f"unexpected extra event {event!r}"
    sub.unsubscribe(marker)


def test_the_issue_example_with_listen_and_abort(es: Daemon) -> None:
    got: list[tuple[str, object]] = []

    class Quotes(Subscriber):
        def event(self, event: Event) -> None:
            got.append((event.subject, event.msg))
            if len(got) == 2:
                self.abort()

    suffix = uuid.uuid4().hex[:6]
    with Quotes(es_uri=es.endpoint) as sub, Publisher(es_uri=es.endpoint) as pub:
        sub.subscribe(f"StockQuotes{suffix}")
        sub.subscribe_match(rf"^STOCKQUOTE{suffix}\.S.*$")
        pub.publish([f"stockquote{suffix}.sun", f"stockquote{suffix}.ibm"], ("SUN", 22.44))
        pub.publish(f"STOCKQUOTES{suffix}", ("IBM", 101.5))
        sub.listen(timeout=WAIT)
    assert got == [
        (f"stockquote{suffix}.sun", ["SUN", 22.44]),
        (f"STOCKQUOTES{suffix}", ["IBM", 101.5]),
    ]


def test_event_carries_subject_as_published_message_time_and_seq(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    assert subscriber.subscribe(subject.upper()) == 1
    before = time.time()
    publisher.publish(subject.title(), {"price": 22.44})
    event = receive(subscriber, 1)[0]
    assert (event.subject, event.msg, event.seq, event.lost) == (
        subject.title(),
        {"price": 22.44},
        1,
        0,
    )
    assert before - 5 <= event.time <= time.time() + 5


def test_pattern_matching_follows_the_pyro_manual(
    subscriber: Subscriber, publisher: Publisher
) -> None:
    tag = uuid.uuid4().hex[:8].upper()
    subscriber.subscribe_match(rf"^STOCKQUOTE{tag}\.S.*$")
    for name in (
        f"STOCKQUOTE{tag}.SUN",
        f"nyse.STOCKQUOTE{tag}.SUN",
        f"stockquote{tag}.ibm",
        f"stockquote{tag}.sap",
    ):
        publisher.publish(name, name)
    assert [e.subject for e in receive(subscriber, 2)] == [
        f"STOCKQUOTE{tag}.SUN",
        f"stockquote{tag}.sap",
    ]
    assert_nothing_more(subscriber, publisher)


def test_multi_subject_publish_gives_one_event_per_subject_with_one_time(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe([f"{subject}.a", f"{subject}.b"])
    publisher.publish([f"{subject}.a", f"{subject}.b", f"{subject}.c"], 1)
    events = receive(subscriber, 2)
    assert [e.subject for e in events] == [f"{subject}.a", f"{subject}.b"]
    assert events[0].time == events[1].time
    assert [e.seq for e in events] == [1, 2]


def test_matched_several_ways_an_event_arrives_once(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe(subject)
    assert subscriber.subscribe_match([subject, f"{subject[:6]}.*"]) == 3
    publisher.publish(subject, "once")
    assert receive(subscriber, 1)[0].msg == "once"
    assert_nothing_more(subscriber, publisher)


def test_unsubscribe_removes_from_exact_and_pattern_lists(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe([subject, "other." + subject])
    subscriber.subscribe_match(subject)
    assert subscriber.unsubscribe(subject.upper()) == 2  # the exact one (case-insensitive)
    # ...from the subscriber's own record too, which it replays after a reconnect (before, the
    # record kept the subject spelled otherwise, and a reconnect subscribed to it again)
    assert subscriber.subscriptions[0] == {"other." + subject}
    assert subscriber.unsubscribe(subject) == 1  # the pattern, verbatim
    publisher.publish(subject, "gone")
    publisher.publish("other." + subject, "kept")
    assert receive(subscriber, 1)[0].msg == "kept"
    assert subscriber.subscriptions == (frozenset({"other." + subject}), frozenset())


def test_confirmed_publish_counts_receivers(es: Daemon, publisher: Publisher, subject: str) -> None:
    assert publisher.publish(subject, 0, confirm=True) == 0
    with Subscriber(es.endpoint) as one, Subscriber(es.endpoint) as two:
        one.subscribe(subject)
        two.subscribe_match(subject)
        assert publisher.publish([subject, subject.upper()], 1, confirm=True) == 2
        assert [e.seq for e in receive(one, 2)] == [1, 2]


def test_events_from_each_publisher_arrive_in_order(
    es: Daemon, subscriber: Subscriber, subject: str
) -> None:
    subscriber.subscribe(subject)
    per_publisher = 1500

    def run(name: str) -> None:
        with Publisher(es.endpoint) as pub:
            for i in range(per_publisher):
                pub.publish(subject, [name, i])

    threads = [threading.Thread(target=run, args=(n,)) for n in ("p1", "p2")]
    for t in threads:
        t.start()
    seen: dict[str, list[int]] = {"p1": [], "p2": []}
    for event in receive(subscriber, 2 * per_publisher):
        name, i = event.msg
        seen[name].append(i)
        assert event.lost == 0
    for t in threads:
        t.join(WAIT)
    assert seen == {"p1": list(range(per_publisher)), "p2": list(range(per_publisher))}


def test_batched_publish_keeps_order(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe(subject)
    publisher.publish_many([(subject, i) for i in range(100)])
    assert [e.msg for e in receive(subscriber, 100)] == list(range(100))


def test_next_returns_none_after_its_timeout(subscriber: Subscriber, subject: str) -> None:
    subscriber.subscribe(subject)
    start = time.monotonic()
    assert subscriber.next(0.2) is None
    assert time.monotonic() - start >= 0.2


def test_iterating_and_abort_from_another_thread(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe(subject)
    publisher.publish(subject, "first")
    received = []
    guard = threading.Timer(WAIT, subscriber.abort)  # the iterator has no timeout of its own
    guard.start()
    try:
        for event in subscriber:
            received.append(event.msg)
            threading.Thread(target=subscriber.abort).start()
    finally:
        guard.cancel()
    assert received == ["first"]


def test_handlers_may_change_subscriptions(es: Daemon, publisher: Publisher, subject: str) -> None:
    """Like Pyro's countingcars: count on one subject, then move to the next from the handler."""

    class Counter(Subscriber):
        seen: ClassVar[list[str]] = []

        def event(self, event: Event) -> None:
            self.seen.append(event.subject)
            self.unsubscribe(event.subject)
            if event.subject.endswith(".north"):
                self.subscribe(f"{subject}.south")
                publisher.publish(f"{subject}.south", "car")
            else:
                self.abort()

    with Counter(es.endpoint) as counter:
        counter.subscribe(f"{subject}.north")
        publisher.publish(f"{subject}.north", "car")
        counter.listen(timeout=WAIT)
        assert counter.seen == [f"{subject}.north", f"{subject}.south"]


def test_worker_pool_handles_every_event(es: Daemon, publisher: Publisher, subject: str) -> None:
    done = threading.Event()
    got: set[int] = set()
    lock = threading.Lock()

    class Pooled(Subscriber):
        def event(self, event: Event) -> None:
            with lock:
                got.add(event.msg)
                if len(got) == 200:
                    done.set()
                    self.abort()

    with Pooled(es.endpoint) as sub:
        sub.setThreading(True)
        sub.subscribe(subject)
        publisher.publish_many([(subject, i) for i in range(200)])
        sub.listen(timeout=WAIT)
        assert done.wait(WAIT)
    assert got == set(range(200))


def test_a_failing_handler_does_not_end_listen(
    es: Daemon, publisher: Publisher, subject: str
) -> None:
    got = []

    class Fragile(Subscriber):
        def event(self, event: Event) -> None:
            if event.msg == "bad":
                raise RuntimeError("handler bug")
            got.append(event.msg)
            self.abort()

    with Fragile(es.endpoint) as sub:
        sub.subscribe(subject)
        publisher.publish_many([(subject, "bad"), (subject, "good")])
        sub.listen(timeout=WAIT)
    assert got == ["good"]


def test_select_loop_with_fileno_and_process_pending(
    es: Daemon, publisher: Publisher, subject: str
) -> None:
    got = []

    class Collector(Subscriber):
        def event(self, event: Event) -> None:
            got.append(event.msg)

    with Collector(es.endpoint) as sub, selectors.DefaultSelector() as sel:
        sub.subscribe(subject)
        sel.register(sub.fileno(), selectors.EVENT_READ)
        publisher.publish_many([(subject, i) for i in range(10)])
        deadline = time.monotonic() + WAIT
        while len(got) < 10 and time.monotonic() < deadline:
            sub.process_pending()  # ZeroMQ's fd is edge-triggered: drain before selecting
            if len(got) < 10:
                sel.select(0.5)
    assert got == list(range(10))


def test_asyncio_iteration(es: Daemon, publisher: Publisher, subject: str) -> None:
    async def consume(sub: Subscriber) -> list[object]:
        got = []
        async for event in sub.aevents():
            got.append(event.msg)
            if len(got) == 5:
                break
        return got

    with Subscriber(es.endpoint) as sub:
        sub.subscribe(subject)
        publisher.publish_many([(subject, i) for i in range(5)])
        assert asyncio.run(asyncio.wait_for(consume(sub), WAIT)) == list(range(5))


def test_pyro_spellings(es: Daemon, subject: str) -> None:
    with Subscriber(esURI=es.endpoint) as sub, Publisher(esURI=es.endpoint) as pub:
        sub.setThreading(False)
        assert sub.subscribeMatch(subject) == 1
        pub.publish(subject, "x")
        assert receive(sub, 1)[0].msg == "x"


def test_pickle_needs_both_sides_to_opt_in(es: Daemon, subject: str) -> None:
    with (
        Publisher(es.endpoint, serializer="pickle") as pub,
        Subscriber(es.endpoint) as careful,
        Subscriber(es.endpoint, allow_pickle=True) as trusting,
    ):
        careful.subscribe(subject)
        trusting.subscribe(subject)
        pub.publish(subject, {"tuple": (1, 2)})
        with pytest.raises(PayloadError, match="pickle"):
            _ = receive(careful, 1)[0].msg
        assert receive(trusting, 1)[0].msg == {"tuple": (1, 2)}


def test_flush_means_the_server_handled_everything(
    es: Daemon, publisher: Publisher, subject: str
) -> None:
    before = es.stats()["server"]["events_published"]
    for i in range(500):
        publisher.publish(subject, i)
    publisher.flush()
    assert es.stats()["server"]["events_published"] - before >= 500


def test_stats_show_subscriptions_and_queue_depth(
    es: Daemon, subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe(subject)
    subscriber.subscribe_match(f"{subject}.*")
    publisher.publish_many([(subject, i) for i in range(3)])
    receive(subscriber, 3)
    subscriber.next(0.05)  # the inbox runs dry: the subscriber acknowledges

    def mine() -> dict[str, object] | None:
        entries = [s for s in es.stats()["subscribers"] if s["id"] == subscriber.id]
        return entries[0] if entries and entries[0]["acked"] == 3 else None

    entry = wait_until(mine, WAIT, "the acknowledgement")
    assert entry["subjects"] == [subject] and entry["patterns"] == [f"{subject}.*"]
    assert (entry["sent"], entry["depth"], entry["dropped"], entry["policy"]) == (3, 0, 0, "block")


def test_an_abort_while_nothing_waits_ends_the_next_wait_only(
    subscriber: Subscriber, publisher: Publisher, subject: str
) -> None:
    subscriber.subscribe(subject)
    publisher.publish(subject, "kept")
    subscriber.abort()
    assert subscriber.next(WAIT) is None  # the abort is used up here, at once
    event = subscriber.next(WAIT)  # and the event is still there
    assert event is not None and event.msg == "kept"


def test_publishing_no_events_sends_nothing(publisher: Publisher) -> None:
    """A PUB of no items is malformed (SPEC 3.4): the client sends none, so no error comes back."""
    assert publisher.publish_many([], confirm=True) == 0
    assert publisher.publish_many([]) is None
    publisher.flush()  # raises any error the server reported
