"""Retained events with a real server: sent to new subscriptions, exact and by pattern, before
live events, marked as retained; cleared by an empty retained publish; bounded."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest

from clients import Publisher, Subscriber
from clients.errors import LimitExceeded
from tests.integration.conftest import Daemon
from tests.integration.helpers import WAIT

Start = Callable[..., Daemon]


def test_new_subscriptions_get_the_retained_events_first(start_es: Start) -> None:
    es = start_es()
    root = f"plant{uuid.uuid4().hex[:6]}"
    with Publisher(es.endpoint) as pub:
        pub.publish(f"{root}.boiler", {"state": "ok"}, retain=True, confirm=True)
        pub.publish(f"{root}.pump", "off", retain=True, ttl=600, confirm=True)
        pub.publish(f"{root}.fan", "on", confirm=True)  # not retained: nobody gets it later
        with Subscriber(es.endpoint) as exact, Subscriber(es.endpoint) as pattern:
            exact.subscribe(f"{root.upper()}.BOILER")
            pattern.subscribe_match(rf"^{root}\.")
            pub.publish(f"{root}.boiler", {"state": "hot"}, confirm=True)  # live, not retained
            first, live = exact.next(WAIT), exact.next(WAIT)
            got = [pattern.next(WAIT) for _ in range(3)]
    assert first is not None and first.retained and first.msg == {"state": "ok"}
    assert live is not None and not live.retained and live.msg == {"state": "hot"}
    assert all(e is not None for e in got)
    assert [(e.subject, e.retained) for e in got if e is not None] == [
        (f"{root}.boiler", True),
        (f"{root}.pump", True),
        (f"{root}.boiler", False),
    ]


def test_an_empty_retained_publish_clears_it(start_es: Start) -> None:
    es = start_es()
    topic = f"clear.{uuid.uuid4().hex[:6]}"
    with Publisher(es.endpoint) as pub:
        pub.publish(topic, "keep me", retain=True, confirm=True)
        pub.clear_retained(topic, confirm=True)
        pub.publish(topic, "live", confirm=True)
        with Subscriber(es.endpoint) as sub:
            sub.subscribe(topic)
            pub.publish(topic, "after", confirm=True)
            event = sub.next(WAIT)
    assert event is not None and event.msg == "after" and not event.retained
    assert es.stats()["server"]["retained"] == 0


def test_the_number_of_retained_events_is_bounded(start_es: Start) -> None:
    es = start_es("--max-retained", "2")
    with Publisher(es.endpoint) as pub:
        pub.publish("r.a", 1, retain=True, confirm=True)
        pub.publish("r.b", 2, retain=True, confirm=True)
        with pytest.raises(LimitExceeded, match="retained"):
            pub.publish("r.c", 3, retain=True, confirm=True)
        pub.publish("r.a", 4, retain=True, confirm=True)  # replacing one is fine
    assert es.stats()["server"]["retained"] == 2
