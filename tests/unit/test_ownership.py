"""Who may act for a subscriber (SPEC 7.1): the sid is a secret the server never shows, and with
key files it belongs to the client key that made it."""

from __future__ import annotations

from typing import Any

from clients.wire import Ack, Heartbeat, ListSubscribers, Stats, Subscribe, Unsubscribe, encode
from es.actions import Fanout, Open
from tests.unit.storefake import KeptStorage
from tests.unit.test_broker import EP, PEER, err, make, ok

ALICE, BOB = "alice-key", "bob-key"
THIEF = "tcp://127.0.0.1:6666"


def as_(broker: Any, owner: str | None, request: Any) -> list[Any]:
    actions: list[Any] = broker.handle(PEER, encode(request), 1.0, mono=1.0, owner=owner)
    return actions


def test_another_key_cannot_subscribe_unsubscribe_or_heartbeat_for_a_sid() -> None:
    broker = make()
    stream = ok(as_(broker, ALICE, Subscribe(1, "s1", EP, ("a",))))["stream"]
    taken = as_(broker, BOB, Subscribe(2, "s1", THIEF, ("a",)))
    assert err(taken) == "NOT_OWNER" and not [a for a in taken if isinstance(a, Open)]
    assert err(as_(broker, BOB, Unsubscribe(3, "s1", ("a",)))) == "NOT_OWNER"
    assert ok(as_(broker, BOB, Heartbeat(4, "s1"))) == {"known": False}
    assert as_(broker, BOB, Ack(0, "s1", 0)) == []
    state = broker.subscriber("s1")
    assert state is not None and state.endpoint == EP and state.stream == stream
    assert ok(as_(broker, ALICE, Heartbeat(5, "s1"))) == {"known": True, "endpoint": EP}
    assert ok(as_(broker, ALICE, Subscribe(6, "s1", EP, ("b",))))["count"] == 2


def test_without_keys_the_sid_alone_decides_and_the_owner_sees_a_takeover() -> None:
    broker = make()
    as_(broker, None, Subscribe(1, "s1", EP, ("a",)))
    as_(broker, None, Subscribe(2, "s1", THIEF, ("a",)))
    # What the owner's next heartbeat shows it: not its own inbox.
    assert ok(as_(broker, None, Heartbeat(3, "s1")))["endpoint"] == THIEF


def test_the_owner_is_stored_and_restored() -> None:
    store = KeptStorage()
    broker = make(store)
    as_(broker, ALICE, Subscribe(1, "s1", EP, ("a",)))
    assert store.subscriber_records["s1"].owner == ALICE
    again = make(store)
    again.restore(store.subscribers(), [], 2.0, 2.0)
    assert err(as_(again, BOB, Subscribe(2, "s1", THIEF, ("a",)))) == "NOT_OWNER"
    assert ok(as_(again, ALICE, Subscribe(3, "s1", EP, ("b",))))["count"] == 2


def test_introspection_and_meta_events_never_show_a_sid() -> None:
    broker = make()
    secret = "7a4f0e1c9b2d48e6a1c3f5b7d9e0a2c4"
    as_(broker, None, Subscribe(1, "watch", EP, ("$es.subscriber.joined",)))
    joined = as_(broker, None, Subscribe(2, secret, EP, ("a",)))
    listed = as_(broker, None, ListSubscribers(3))
    stats = as_(broker, None, Stats(4))
    for actions in (joined, listed, stats):
        frames = b"".join(
            b"".join(batch.payloads)
            for a in actions
            if isinstance(a, Fanout)
            for batch in a.batches
        )
        frames += b"".join(f for a in actions if hasattr(a, "frames") for f in a.frames)
        assert secret.encode() not in frames
    (entry,) = [s for s in ok(listed)["subscribers"] if s["name"] is None and "a" in s["subjects"]]
    assert "sid" not in entry and len(entry["id"]) == 16
