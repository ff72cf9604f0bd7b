"""The broker's meta-events and reports: who comes and goes, what was published, who
subscribes to what (SPEC 3.6, 3.9, 7.7). No network, a fake clock."""

from __future__ import annotations

from typing import Any

import msgpack

from clients.wire import (
    Ack,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    NumSub,
    Options,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    encode,
    peek_command,
    public_id,
)
from es.actions import Close, Fanout
from es.broker import Broker
from es.flow import AT_ONCE, Flow
from es.outcomes import Linked, Stalled
from tests.unit.brokerkit import (
    EP,
    PEER,
    S1,
    delivered,
    err,
    make,
    ok,
    pub,
    sub,
)


def meta_events(actions: list[Any], sid: str) -> list[tuple[str, Any]]:
    """(subject, body) of every meta-event in `actions` for subscriber `sid`."""
    found = []
    for action in actions:
        if isinstance(action, Fanout) and not action.confirms:
            for batch in action.batches:
                if batch.sid == sid:
                    delivery = delivered(batch)
                    events = [e for e in delivery.events if e.subject.startswith("$es.")]
                    assert not events or not batch.block  # the server never waits on its news
                    for event in events:
                        found.append((event.subject, msgpack.unpackb(event.payload)))
    return found


def watcher(broker: Broker) -> None:
    broker.handle(PEER, encode(SubscribeMatch(1, "watch", EP, (r"^\$es\.",), Options())), 1.0)


def test_subscribers_and_subscriptions_coming_and_going_are_announced() -> None:
    broker = make()
    watcher(broker)
    joined = sub(broker, "s1", "a", "b")
    assert meta_events(joined, "watch") == [
        ("$es.subscriber.joined", {"id": S1, "endpoint": EP, "policy": "block", "queue": 1000}),
        ("$es.subscription.added", {"id": S1, "subjects": ["a", "b"]}),
    ]
    again = sub(broker, "s1", "c")
    assert meta_events(again, "watch") == [
        ("$es.subscription.added", {"id": S1, "subjects": ["c"]})
    ]
    partly = broker.handle(PEER, encode(Unsubscribe(3, "s1", ("a",))), 1.0)
    assert meta_events(partly, "watch") == [
        ("$es.subscription.removed", {"id": S1, "names": ["a"], "count": 2})
    ]
    gone = broker.handle(PEER, encode(Unsubscribe(4, "s1", ("b", "c"))), 1.0)
    assert meta_events(gone, "watch") == [
        ("$es.subscription.removed", {"id": S1, "names": ["b", "c"], "count": 0}),
        ("$es.subscriber.left", {"id": S1, "reason": "unsubscribed"}),
    ]


def test_an_evicted_subscriber_is_announced_with_the_reason() -> None:
    broker = make(liveness=10)
    broker.handle(
        PEER, encode(SubscribeMatch(1, "watch", EP, (r"^\$es\.sub",), Options())), 1.0, 100.0
    )
    broker.handle(PEER, encode(Subscribe(1, "quiet", EP, ("a",), Options())), 1.0, mono=100.0)
    broker.hear([Linked("quiet", True)], 100.0)
    broker.hear([Linked("watch", True)], 100.0)
    broker.handle(PEER, encode(Heartbeat(2, "watch")), 1.0, mono=109.0)
    actions = broker.sweep(111.0, now=5.0)
    assert Close("quiet") in actions
    assert meta_events(actions, "watch") == [
        ("$es.subscriber.left", {"id": public_id("quiet"), "reason": "silent"})
    ]


def test_a_publishers_first_publish_is_announced_once() -> None:
    broker = make()
    watcher(broker)
    first = broker.handle(b"pub-1", encode(Publish(5, False, (PubItem(("x",), 1, b"m"),))), 2.0)
    second = broker.handle(b"pub-1", encode(Publish(6, False, (PubItem(("x",), 1, b"m"),))), 2.0)
    assert meta_events(first, "watch") == [("$es.publisher.seen", {"peer": b"pub-1".hex()})]
    assert meta_events(second, "watch") == []


def test_nobody_but_the_server_publishes_on_the_reserved_prefix() -> None:
    broker = make()
    watcher(broker)
    for subject in ("$es.subscriber.joined", "$ES.anything"):
        refused = broker.handle(
            PEER, encode(Publish(7, True, (PubItem((subject,), 1, b"m"),))), 2.0
        )
        assert err(refused) == "BAD_SUBJECT"
    allowed = broker.handle(PEER, encode(Publish(8, True, (PubItem(("$esx",), 1, b"m"),))), 2.0)
    assert isinstance(allowed[0], Fanout)  # only "$es." itself is reserved


# --- introspection -----------------------------------------------------------------------------


def test_subjects_published_on_most_recent_first_with_counts() -> None:
    broker = make()
    for now, subject in [(2.0, "Stock.SUN"), (3.0, "news.x"), (4.0, "stock.sun")]:
        item = PubItem((subject,), 1, b"m", retain=subject == "news.x")
        broker.handle(PEER, encode(Publish(5, False, (item,))), now)
    body = ok(broker.handle(PEER, encode(ListSubjects(9)), 5.0))
    assert body == {
        "subjects": [  # as first spelled, any case; whether it has a retained event now
            {"subject": "Stock.SUN", "events": 2, "last": 4.0, "retained": False},
            {"subject": "news.x", "events": 1, "last": 3.0, "retained": True},
        ],
        "truncated": False,
    }
    only = ok(broker.handle(PEER, encode(ListSubjects(9, r"^STOCK\.")), 5.0))
    assert [s["subject"] for s in only["subjects"]] == ["Stock.SUN"]
    assert err(broker.handle(PEER, encode(ListSubjects(9, "(a)\\1")), 5.0)) == "BAD_PATTERN"


def test_numsub_counts_exact_and_pattern_subscribers() -> None:
    broker = make()
    sub(broker, "s1", "stock.sun")
    sub(broker, "s2", "STOCK.SUN", "other")
    broker.handle(PEER, encode(SubscribeMatch(1, "s3", EP, (r"^stock\.",), Options())), 1.0)
    body = ok(broker.handle(PEER, encode(NumSub(9, ("stock.sun", "stock.ibm", "nothing"))), 1.0))
    assert body == {"counts": [3, 1, 0]}
    assert err(broker.handle(PEER, encode(NumSub(9, ("",))), 1.0)) == "BAD_SUBJECT"


def test_subscribers_in_detail_with_lag_and_stall() -> None:
    broker = make()
    flow = Flow()
    subscribed = broker.handle(PEER, encode(Subscribe(1, "s1", EP, ("a",), Options())), 1.0, 10.0)
    flow.route(subscribed, 10.0)
    flow.route([pub(broker, "a")], 11.0)
    flow.flush()
    broker.hear([Stalled("s1")], 12.0)
    (entry,) = ok(broker.handle(PEER, encode(ListSubscribers(9, S1[:5])), 1.0, mono=15.0))[
        "subscribers"
    ]
    assert (entry["id"], entry["depth"], entry["behind"], entry["stalled_for"]) == (
        S1,
        1,
        5.0,  # nothing acknowledged since it subscribed at 10.0
        3.0,  # full since 12.0
    )
    broker.handle(PEER, encode(Ack(0, "s1", 1)), 1.0, mono=16.0)
    (caught_up,) = ok(broker.handle(PEER, encode(ListSubscribers(9)), 1.0, mono=17.0))[
        "subscribers"
    ]
    assert (caught_up["depth"], caught_up["behind"], caught_up["stalled_for"]) == (0, 0.0, 0.0)
    nobody = "0" if not S1.startswith("0") else "1"
    assert ok(broker.handle(PEER, encode(ListSubscribers(9, nobody)), 1.0)) == {
        "subscribers": [],
        "truncated": False,
    }
    assert peek_command(encode(ListSubscribers(9))) in AT_ONCE


def test_a_named_service_is_announced_when_it_comes_and_goes() -> None:
    broker = make(liveness=10)
    watch = SubscribeMatch(1, "watch", EP, (r"^\$es\.service\.",), Options())
    broker.handle(PEER, encode(watch), 1.0, mono=100.0)
    named = Subscribe(2, "s1", EP, ("boiler.control",), Options(name="boiler"))
    came = broker.handle(PEER, encode(named), 1.0, mono=100.0)
    assert meta_events(came, "watch") == [("$es.service.available", {"name": "boiler", "id": S1})]
    renamed = Subscribe(3, "s1", EP, ("x",), Options(name="pump"))
    assert err(broker.handle(PEER, encode(renamed), 1.0, mono=100.0)) == "BAD_REQUEST"
    more = broker.handle(PEER, encode(Subscribe(4, "s1", EP, ("y",), Options())), 1.0, mono=100.0)
    assert meta_events(more, "watch") == []  # the same service, not a new arrival
    broker.hear([Linked("watch", True)], 100.0)
    broker.hear([Linked("s1", True)], 100.0)
    broker.handle(PEER, encode(Heartbeat(5, "watch")), 1.0, mono=109.0)
    gone = broker.sweep(111.0, now=2.0)  # it died without a word
    assert meta_events(gone, "watch") == [
        ("$es.service.gone", {"name": "boiler", "id": S1, "reason": "silent"})
    ]
