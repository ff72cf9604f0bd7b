"""The broker and its storage: a write that fails fails the request and changes nothing; what is
stored is always what the broker acts on."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.errors import ErrorCode
from clients.wire import NumSub, Ok, PubItem, Publish, Subscribe, Unsubscribe, decode_reply, encode
from es.actions import Close, Fanout, Open, Reply
from es.broker import Broker
from tests.unit.storefake import KeptStorage
from tests.unit.test_broker import EP, PEER, err, make, ok, sub

FULL = ErrorCode.STORAGE_FAILED


def retain(broker: Broker, subject: str, payload: bytes, rid: int = 9) -> list[Any]:
    item = PubItem((subject,), 1, payload, retain=True)
    return broker.handle(PEER, encode(Publish(rid, True, (item,))), 3.0)


def numsub(broker: Broker, *subjects: str) -> list[int]:
    (reply,) = broker.handle(PEER, encode(NumSub(4, subjects)), 3.0)
    assert isinstance(reply, Reply)
    decoded = decode_reply(reply.frames)
    assert isinstance(decoded, Ok)
    counts: list[int] = decoded.body["counts"]
    return counts


def test_a_new_subscriber_that_cannot_be_stored_is_refused_and_not_opened() -> None:
    store = KeptStorage()
    broker = make(store)
    store.full = True
    actions = sub(broker, "s1", "a")
    assert err(actions) == FULL
    assert not [a for a in actions if isinstance(a, Open)]
    assert broker.subscriber("s1") is None and numsub(broker, "a") == [0]
    store.full = False
    assert ok(sub(broker, "s1", "a"))["count"] == 1
    assert store.subscriber_records["s1"].subjects == ("a",)


def test_a_subscription_or_unsubscription_that_cannot_be_stored_changes_nothing() -> None:
    store = KeptStorage()
    broker = make(store)
    sub(broker, "s1", "a")
    store.full = True
    assert err(sub(broker, "s1", "b")) == FULL
    unsub = broker.handle(PEER, encode(Unsubscribe(3, "s1", ("a",))), 1.0)
    assert err(unsub) == FULL
    assert not [a for a in unsub if isinstance(a, Close)]
    assert numsub(broker, "a", "b") == [1, 0]
    assert store.subscriber_records["s1"].subjects == ("a",)


def test_a_retained_publish_that_cannot_be_stored_is_refused_whole() -> None:
    store = KeptStorage()
    broker = make(store)
    sub(broker, "s1", "status")
    store.full = True
    actions = retain(broker, "status", b"hot")
    assert err(actions) == FULL
    assert not [a for a in actions if isinstance(a, Fanout)]  # not delivered either
    assert broker.stats(3.0)["server"]["retained"] == 0
    # What needs no disk goes on: an ordinary publish is delivered.
    plain = broker.handle(PEER, encode(Publish(10, False, (PubItem(("status",), 1, b"x"),))), 3.0)
    assert [type(a) for a in plain] == [Fanout]
    store.full = False
    (fanout,) = retain(broker, "status", b"hot")
    assert isinstance(fanout, Fanout) and fanout.confirms  # the flow confirms it once sent
    assert list(store.retained_events) == ["status"]


def test_removals_nobody_waits_on_still_happen_and_are_counted_when_not_stored() -> None:
    store = KeptStorage()
    broker = make(store, liveness=10.0)
    sub(broker, "s1", "a")
    store.full = True
    assert broker.sweep(100.0) == [Close("s1")]
    assert broker.storage_errors == 1 and "s1" in store.subscriber_records  # stale, logged


steps = st.lists(
    st.tuples(
        st.sampled_from(["sub", "unsub", "retain", "clear"]),
        st.sampled_from(["s1", "s2"]),
        st.sampled_from(["a", "B", "c"]),
        st.booleans(),  # whether the disk is full for this step
    ),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_what_is_stored_is_always_what_the_broker_acts_on(plan: list[Any]) -> None:
    store = KeptStorage()
    broker = make(store)
    for n, (op, sid, subject, full) in enumerate(plan, start=1):
        store.full = full
        if op == "sub":
            actions = broker.handle(PEER, encode(Subscribe(n, sid, EP, (subject,))), 1.0)
        elif op == "unsub":
            actions = broker.handle(PEER, encode(Unsubscribe(n, sid, (subject,))), 1.0)
        else:
            actions = retain(broker, subject, b"v" if op == "retain" else b"", rid=n)
        replies = [decode_reply(a.frames) for a in actions if isinstance(a, Reply)]
        refused = [r for r in replies if not isinstance(r, Ok)]
        assert all(r.code == FULL for r in refused)
        assert not refused or full
        for s in ("s1", "s2"):
            state = broker.subscriber(s)
            kept = store.subscriber_records.get(s)
            if state is None:
                assert kept is None
                continue
            assert kept is not None and kept.endpoint == state.endpoint
            subs = broker.index.subscriptions(s)
            assert set(kept.subjects) == subs.subjects
        assert len(store.retained_events) == broker.stats(1.0)["server"]["retained"]
