"""Meta-events from a real event server: subscribers and subscriptions coming and going, first
publishes, a killed subscriber announced by the liveness machinery, and the reserved prefix."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from clients import Publisher, Subscriber
from clients.errors import BadSubject, RequestTimeout
from tests.integration.conftest import Daemon
from tests.integration.helpers import WAIT, subscriber_process

Start = Callable[..., Daemon]


def news(watch: Subscriber, count: int) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for _ in range(count):
        event = watch.next(WAIT)
        assert event is not None, f"only {found}"
        found.append((event.subject, event.msg))
    return found


def test_coming_and_going_is_announced_on_reserved_subjects(start_es: Start) -> None:
    es = start_es()
    topic = f"meta.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint) as watch:
        watch.subscribe_match(r"^\$ES\.")  # a pattern, any case, like any other subscription
        own = [subject for subject, _ in news(watch, 2)]  # its own arrival, announced to itself
        assert own == ["$es.subscriber.joined", "$es.subscription.added"]
        with Subscriber(es.endpoint) as sub, Publisher(es.endpoint) as pub:
            sub.subscribe(topic)
            assert pub.publish(topic, "hello", confirm=True) == 1
            sub.unsubscribe(topic)
            with pytest.raises(BadSubject, match="server's own"):
                pub.publish("$es.subscriber.joined", "fake", confirm=True)
            seen = news(watch, 5)
    peer = seen[2][1].pop("peer")
    assert seen == [
        (
            "$es.subscriber.joined",
            {"id": sub.id, "endpoint": sub.endpoint, "policy": "block", "queue": 1000},
        ),
        ("$es.subscription.added", {"id": sub.id, "subjects": [topic]}),
        ("$es.publisher.seen", {}),
        ("$es.subscription.removed", {"id": sub.id, "names": [topic], "count": 0}),
        ("$es.subscriber.left", {"id": sub.id, "reason": "unsubscribed"}),
    ]
    assert isinstance(peer, str) and peer


def test_a_killed_subscriber_is_announced_as_gone(start_es: Start) -> None:
    """No goodbye from a process killed with -9: the server finds out and says so."""
    es = start_es("--liveness", "2")
    with Subscriber(es.endpoint) as watch:
        watch.subscribe("$es.subscriber.left")
        with subscriber_process("anything", "--es", es.endpoint) as victim:
            victim.kill()
        ((subject, body),) = news(watch, 1)
    assert subject == "$es.subscriber.left"
    assert body["reason"] in ("silent", "disconnected")


def test_news_during_a_stalled_publish_does_not_end_the_stall(start_es: Start) -> None:
    """A publish waits for a full block-mode subscriber; meanwhile another subscriber dies and
    its departure is announced. The announcement must not end the wait: once the full subscriber
    reads again, it still gets the event and the publisher its confirmation. (Liveness 5 s: this
    process is busy publishing, and its own subscribers' heartbeats must not be late enough to
    get them removed.)"""
    es = start_es("--liveness", "5", "--evict-stalled", "0")
    topic = f"meta.{uuid.uuid4().hex[:8]}"
    with (
        Subscriber(es.endpoint) as watch,
        Subscriber(es.endpoint, queue_size=1, max_stall=WAIT) as slow,
        Publisher(es.endpoint, timeout=2 * WAIT) as pub,
    ):
        watch.subscribe("$es.subscriber.left")
        slow.subscribe(topic)
        pub.publish(topic, "warm-up", confirm=True)
        first = slow.next(WAIT)
        assert first is not None and first.msg == "warm-up"
        with subscriber_process("anything", "--es", es.endpoint) as victim:
            sent = 0
            while not es.stats()["server"]["events_dropped"] and sent < 2000:  # fill every buffer
                try:
                    pub.publish(topic, [sent, b"x" * 65536], confirm=True, timeout=0.5)
                except RequestTimeout:
                    break  # this one waits for `slow`: the stall is on
                sent += 1
            victim.kill()
        ((_, body),) = news(watch, 1)  # announced while the publish still waits
        assert body["reason"] in ("silent", "disconnected")
        received = []
        while len(received) < sent + 1 and (event := slow.next(WAIT)) is not None:
            received.append(event.msg[0])
        pub.flush(WAIT)  # the waiting publish was handled, not forgotten
    assert received == list(range(sent + 1))


def test_a_service_that_dies_is_announced_as_gone(start_es: Start) -> None:
    es = start_es("--liveness", "2")
    with Subscriber(es.endpoint) as monitor:
        monitor.subscribe_match(r"^\$es\.service\.")
        args = ("boiler.control", "--name", "boiler", "--es", es.endpoint)
        with subscriber_process(*args) as service:
            came = news(monitor, 1)
            service.kill()
        went = news(monitor, 1)
    assert came[0][0] == "$es.service.available" and came[0][1]["name"] == "boiler"
    assert went[0][0] == "$es.service.gone" and went[0][1]["name"] == "boiler"
    assert went[0][1]["reason"] in ("silent", "disconnected")
