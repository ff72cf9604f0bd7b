"""Retained events: the store with a fake clock, and the broker delivering them to new
subscriptions."""

from __future__ import annotations

from typing import Any

from clients.wire import (
    Options,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    encode,
)
from es.actions import Fanout
from es.broker import Broker
from es.config import Limits, ServerConfig
from es.retained import Retained, RetainedStore
from tests.unit.brokerkit import delivered

EP = "tcp://127.0.0.1:5000"
PEER = b"peer"


def test_the_latest_event_per_subject_any_case_and_empty_clears() -> None:
    store = RetainedStore(max_count=10, max_bytes=100)
    store.put(Retained("Boiler", 1, b"old", 1.0, None))
    store.put(Retained("boiler", 1, b"new", 2.0, None))
    event = store.get("BOILER", mono=0.0)
    assert event is not None and (event.subject, event.payload) == ("boiler", b"new")
    assert (len(store), store.bytes) == (1, 3)
    store.put(Retained("boiler", 0, b"", 3.0, None))
    assert store.get("boiler", 0.0) is None and (len(store), store.bytes) == (0, 0)


def test_a_lifetime_ends_it() -> None:
    store = RetainedStore(max_count=10, max_bytes=100)
    store.put(Retained("a", 1, b"x", 1.0, expires=50.0))
    store.put(Retained("b", 1, b"y", 1.0, expires=None))
    assert store.get("a", 49.9) is not None
    assert store.get("a", 50.0) is None  # gone for readers at once
    assert [e.subject for e in store.alive(60.0)] == ["b"]
    assert store.expire(60.0) == ["a"] and len(store) == 1 and store.bytes == 1


def test_the_bounds_count_replacements_and_clears() -> None:
    store = RetainedStore(max_count=2, max_bytes=10)
    store.put(Retained("a", 1, b"12345", 1.0, None))
    assert store.fits([("b", 5)])
    assert not store.fits([("b", 6)])  # 11 bytes
    assert store.fits([("a", 9)])  # a replacement: 9 bytes in all
    assert not store.fits([("b", 1), ("c", 1)])  # three subjects
    assert store.fits([("a", 0), ("b", 1), ("c", 1)])  # one cleared, two added


def make(**limits: Any) -> Broker:
    return Broker(ServerConfig(limits=Limits(**limits)), now=0.0)


def publish(broker: Broker, subject: str, payload: bytes, now: float, **item: Any) -> list[Any]:
    request = Publish(1, True, (PubItem((subject,), 1, payload, **item),))
    return broker.handle(PEER, encode(request), now, mono=now)


def retained_events(actions: list[Any]) -> list[tuple[str, bytes, float, int]]:
    found = []
    for action in actions:
        if isinstance(action, Fanout) and not action.confirms:  # not a (confirmed) publish
            for batch in action.batches:
                assert not batch.block
                for event in delivered(batch).events:
                    assert event.retained and not event.resumed
                    found.append((event.subject, event.payload, event.time, event.seq))
    return found


def test_a_new_subscription_gets_the_retained_events_it_matches_first() -> None:
    broker = make()
    publish(broker, "status.boiler", b"\xa2ok", 1.0, retain=True)
    publish(broker, "status.pump", b"\xa3off", 2.0, retain=True)
    publish(broker, "status.fan", b"\xa2on", 3.0)  # not retained
    exact = broker.handle(PEER, encode(Subscribe(2, "s1", EP, ("STATUS.PUMP",), Options())), 4.0)
    assert retained_events(exact) == [("status.pump", b"\xa3off", 2.0, 1)]  # its own time
    pattern = SubscribeMatch(3, "s2", EP, (r"^status\.", r"^status\.b"), Options())
    matched = broker.handle(PEER, encode(pattern), 4.0)
    assert [e[0] for e in retained_events(matched)] == ["status.boiler", "status.pump"]  # once each
    again = broker.handle(PEER, encode(Subscribe(4, "s1", EP, ("status.pump",), Options())), 5.0)
    assert retained_events(again) == []  # not a new subscription


def test_a_retained_event_reaches_a_subscriber_once_however_many_subscriptions_match() -> None:
    broker = make()
    publish(broker, "STATUS.BOILER", b"\xa2ok", 1.0, retain=True)
    exact = broker.handle(PEER, encode(Subscribe(2, "s1", EP, ("status.boiler",), Options())), 2.0)
    assert [e[3] for e in retained_events(exact)] == [1]
    pattern = broker.handle(
        PEER, encode(SubscribeMatch(3, "s1", EP, (r"status\.",), Options())), 3.0
    )
    assert retained_events(pattern) == []  # its subject subscription got it already
    broker.handle(PEER, encode(SubscribeMatch(4, "s2", EP, (r"status\.",), Options())), 4.0)
    other = broker.handle(PEER, encode(SubscribeMatch(5, "s2", EP, (r"^STATUS",), Options())), 5.0)
    assert retained_events(other) == []  # nor a second pattern that matches it
    broker.handle(PEER, encode(SubscribeMatch(6, "s3", EP, (r"^pump",), Options())), 6.0)
    new = broker.handle(PEER, encode(SubscribeMatch(7, "s3", EP, (r"^status",), Options())), 7.0)
    assert [e[0] for e in retained_events(new)] == ["STATUS.BOILER"]  # new to it: sent


def test_clearing_and_lifetimes_in_the_broker() -> None:
    broker = make()
    publish(broker, "a", b"\x01", 1.0, retain=True)
    publish(broker, "b", b"\x02", 1.0, retain=True, ttl=10.0)
    publish(broker, "a", b"", 2.0, retain=True)  # cleared
    late = broker.handle(
        PEER, encode(SubscribeMatch(2, "s1", EP, ("^[ab]$",), Options())), 20.0, 20.0
    )
    assert retained_events(late) == []  # a cleared, b expired at 11
    assert broker.stats(20.0)["server"]["retained"] == 1  # b is swept later, not here
    broker.sweep(20.0)
    assert broker.stats(20.0)["server"]["retained"] == 0


def test_over_the_bounds_a_retained_publish_is_refused_whole() -> None:
    broker = make(max_retained=1)
    publish(broker, "a", b"\x01", 1.0, retain=True)
    refused = publish(broker, "b", b"\x02", 1.0, retain=True)
    assert len(refused) == 1 and b"LIMIT_EXCEEDED" in refused[0].frames[0]
    replacing = publish(broker, "a", b"\x03", 1.0, retain=True)
    assert any(isinstance(a, Fanout) for a in replacing)  # replacing one is fine
