"""The roster of other nodes' subscribers, and who announces a lost node (es.cluster.roster).

- The roster follows joined and left meta-events of every node, and ignores what is malformed.
- A lost node's subscribers are announced gone once: by the least-named survivor, and forgotten
  by every survivor; a service's name goes with it.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clients.payload import decode_payload
from es import meta
from es.actions import Fanout
from es.cluster.roster import LOST, Roster, announcer
from tests.unit.brokerkit import deliveries, make, ok, sub

JOINED, LEFT = meta.SUBSCRIBER_JOINED, meta.SUBSCRIBER_LEFT


def test_the_roster_follows_joins_and_leaves_of_each_node() -> None:
    roster = Roster()
    roster.heard(JOINED, {"id": "s1", "node": "a", "name": "svc"})
    roster.heard(JOINED, {"id": "s2", "node": "a"})
    roster.heard(JOINED, {"id": "s3", "node": "b", "name": 7})  # a name that is not one
    roster.heard(LEFT, {"id": "s2", "node": "a", "reason": "unsubscribed"})
    for junk in (None, [], {"id": 1, "node": "a"}, {"id": "x"}):
        roster.heard(JOINED, junk)
    roster.heard(meta.SUBSCRIPTION_ADDED, {"id": "s9", "node": "a"})  # not followed
    assert roster.members("a") == {"s1": "svc"} and roster.members("b") == {"s3": None}
    roster.heard(LEFT, {"id": "s3", "node": "b"})
    assert roster.members("b") == {}


def test_a_lost_node_is_announced_by_its_least_named_survivor_once() -> None:
    roster = Roster()
    roster.heard(JOINED, {"id": "s1", "node": "b", "name": "svc"})
    roster.heard(JOINED, {"id": "s2", "node": "b"})
    assert announcer("a", {"c"}) == "a" and announcer("c", {"a"}) == "a"
    assert roster.lost("b", announce=True) == [
        (LEFT, {"id": "s1", "reason": LOST, "node": "b"}),
        (meta.SERVICE_GONE, {"name": "svc", "id": "s1", "reason": LOST, "node": "b"}),
        (LEFT, {"id": "s2", "reason": LOST, "node": "b"}),
    ]
    assert roster.lost("b", announce=True) == []  # forgotten: never twice
    roster.heard(JOINED, {"id": "s4", "node": "c"})
    assert roster.lost("c", announce=False) == [] and roster.members("c") == {}


@given(st.sets(st.sampled_from("abcdef"), min_size=1), st.sampled_from("abcdef"))
def test_every_survivor_agrees_on_one_announcer(live: set[str], lost: str) -> None:
    survivors = live - {lost}
    chosen = {announcer(me, survivors - {me}) for me in survivors}
    assert len(chosen) <= 1 and chosen <= survivors


def test_the_broker_announces_another_nodes_news_in_that_nodes_name() -> None:
    broker = make()
    broker.core.forward, broker.core.node = [], "a"
    ok(sub(broker, "watcher", meta.SERVICE_GONE))
    news = [(meta.SERVICE_GONE, {"name": "svc", "id": "s1", "reason": LOST, "node": "b"})]
    actions = broker.announce(news, now=5.0)
    fanout = next(a for a in actions if isinstance(a, Fanout))
    event = deliveries(fanout, broker)["watcher"].events[0]
    assert event.time == 5.0 and decode_payload(event.payload, 1)["node"] == "b"
    forwarded = broker.core.forward[-1][0][0]
    assert forwarded.subjects == (meta.SERVICE_GONE,)  # the other nodes hear it too
