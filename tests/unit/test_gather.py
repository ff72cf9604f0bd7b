"""Gathering publishes' fan-outs into one batch per subscriber: pure, driven through the broker."""

from __future__ import annotations

import itertools
from typing import Any

from clients.wire import (
    Options,
    PubItem,
    Publish,
    Subscribe,
    decode_delivery,
    encode,
)
from es.actions import Fanout
from es.broker import Broker
from es.config import ServerConfig
from es.gather import Gather

EP = "tcp://127.0.0.1:5000"


def make() -> Broker:
    streams = itertools.count(100)
    broker = Broker(ServerConfig(), now=0.0, new_stream=lambda: next(streams))
    for sid, subjects in (("s1", ("a",)), ("s2", ("a", "b"))):
        broker.handle(b"p", encode(Subscribe(1, sid, EP, subjects, Options("drop"))), 1.0)
    return broker


def publish(broker: Broker, subject: str, payload: bytes, confirm: bool = False) -> Fanout:
    request = Publish(7, confirm, (PubItem((subject,), 0, payload),))
    actions = broker.handle(b"pub", encode(request), 1.0)
    (fanout,) = [a for a in actions if isinstance(a, Fanout)]
    return fanout


def events(fanout: Fanout) -> dict[str, list[tuple[int, str, bytes]]]:
    found: dict[str, list[tuple[int, str, bytes]]] = {}
    for batch in fanout.batches:
        delivery = decode_delivery(batch.frames())
        assert delivery.sid == batch.sid
        found[batch.sid] = [(e.seq, e.subject, e.payload) for e in delivery.events]
    return found


def test_consecutive_publishes_become_one_batch_per_subscriber_in_order() -> None:
    broker, gather = make(), Gather()
    for i, subject in enumerate(["a", "b", "a"]):
        assert gather.add(publish(broker, subject, b"%d" % i)) is None
    merged = gather.take()
    assert merged is not None and not gather
    assert events(merged) == {
        "s1": [(1, "a", b"0"), (2, "a", b"2")],
        "s2": [(1, "a", b"0"), (2, "b", b"1"), (3, "a", b"2")],
    }
    assert gather.take() is None


def test_confirmations_travel_with_the_merged_events() -> None:
    broker, gather = make(), Gather()
    gather.add(publish(broker, "a", b"x", confirm=True))
    gather.add(publish(broker, "b", b"y"))
    gather.add(publish(broker, "b", b"z", confirm=True))
    merged = gather.take()
    assert merged is not None
    assert [c.sids for c in merged.confirms] == [{"s1", "s2"}, {"s2"}]


def test_a_full_batch_hands_back_what_was_gathered_first() -> None:
    broker, gather = make(), Gather(max_events=3)
    handed: list[Any] = []
    for i in range(7):
        ready = gather.add(publish(broker, "a", b"%d" % i))
        if ready is not None:
            handed.append(ready)
    handed.append(gather.take())
    seqs = [[seq for seq, _, _ in events(f)["s1"]] for f in handed]
    assert seqs == [[1, 2, 3], [4, 5, 6], [7]]  # in order, none lost, none over the limit


def test_bytes_are_bounded_but_one_publish_is_never_split() -> None:
    broker, gather = make(), Gather(max_bytes=10)
    assert gather.add(publish(broker, "b", b"x" * 25)) is None  # alone, whatever its size
    ready = gather.add(publish(broker, "b", b"y"))
    assert ready is not None and events(ready)["s2"] == [(1, "b", b"x" * 25)]
    rest = gather.take()
    assert rest is not None and events(rest)["s2"] == [(2, "b", b"y")]


def test_a_batch_sent_in_between_is_never_merged_across() -> None:
    broker, gather = make(), Gather()
    first = publish(broker, "a", b"1")
    publish(broker, "a", b"2")  # numbered, but handled elsewhere (sent or dropped)
    gather.add(first)
    ready = gather.add(publish(broker, "a", b"3"))
    assert ready is not None and [s for s, _, _ in events(ready)["s1"]] == [1]
