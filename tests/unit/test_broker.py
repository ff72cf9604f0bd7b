"""The broker core, driven with frames and a fake clock: no network."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest

from clients.errors import ErrorCode
from clients.wire import (
    Ack,
    Err,
    Heartbeat,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_reply,
    encode,
    peek_command,
)
from es.actions import Close, Open, Progress, Reply
from es.config import Limits
from es.flow import AT_ONCE, Flow
from es.outcomes import Full, Linked, Stalled
from tests.unit.brokerkit import (
    EP,
    PEER,
    deliveries,
    err,
    make,
    ok,
    pub,
    reply_of,
    sub,
)
from tests.unit.storefake import KeptStorage


def test_first_subscribe_opens_a_socket_and_replies_with_count_and_stream() -> None:
    broker = make()
    actions = sub(broker, "s1", "a", "b")
    assert actions[0] == Open("s1", EP, 1000, PEER, 1)
    assert ok(actions) == {"count": 2, "stream": 100, "heartbeat": 10.0 / 3, "queue": 1000}
    assert ok(sub(broker, "s1", "c"))["count"] == 3  # same socket, no Open


def test_unsubscribing_the_last_subject_closes_the_socket() -> None:
    broker = make()
    sub(broker, "s1", "a")
    actions = broker.handle(PEER, encode(Unsubscribe(2, "s1", ("A",))), 1.0)
    assert actions[0] == Close("s1")
    assert ok(actions) == {"count": 0}
    assert broker.subscriber("s1") is None


def test_unsubscribe_of_unknown_sid_is_a_harmless_zero() -> None:
    assert ok(make().handle(PEER, encode(Unsubscribe(2, "nobody", ("a",))), 1.0)) == {"count": 0}


def test_publish_numbers_events_per_subscriber_with_one_server_time() -> None:
    broker = make()
    sub(broker, "s1", "a", "b")
    sub(broker, "s2", "b")
    fanout = pub(broker, "a", "B", now=7.5)
    got = deliveries(fanout, broker)
    assert [(e.seq, e.subject, e.time) for e in got["s1"].events] == [(1, "a", 7.5), (2, "B", 7.5)]
    assert [(e.seq, e.subject) for e in got["s2"].events] == [(1, "B")]
    assert got["s1"].stream == 100 and got["s2"].stream == 101


def test_publish_to_nobody_has_no_batches() -> None:
    assert pub(make(), "nobody.listens").batches == []


def test_policies_reach_the_batches() -> None:
    broker = make()
    sub(broker, "slow", "a", options=Options("block", 10, 0.5))
    sub(broker, "fast", "a", options=Options("drop", 20))
    batches = {b.sid: b for b in pub(broker, "a").batches}
    assert (batches["slow"].block, batches["slow"].max_stall) == (True, 0.5)
    assert (batches["fast"].block, batches["fast"].max_stall) == (False, 5.0)


def test_server_default_policy_applies() -> None:
    broker = make(policy="drop", queue_size=7)
    actions = sub(broker, "s1", "a")
    assert actions[0] == Open("s1", EP, 7, PEER, 1)
    assert pub(broker, "a").batches[0].block is False


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (Options(queue_size=0), ErrorCode.BAD_POLICY),
        (Options(queue_size=10**9), ErrorCode.BAD_POLICY),
        (Options(max_stall=3600.0), ErrorCode.BAD_POLICY),
    ],
)
def test_options_outside_server_limits_are_refused(options: Options, code: str) -> None:
    assert err(sub(make(), "s1", "a", options=options)) == code


def test_queue_size_cannot_change_while_subscribed() -> None:
    broker = make()
    sub(broker, "s1", "a", options=Options(queue_size=10))
    assert err(sub(broker, "s1", "b", options=Options(queue_size=20))) == ErrorCode.BAD_POLICY
    assert ok(sub(broker, "s1", "b", options=Options(policy="drop")))["count"] == 2


def test_changed_endpoint_reopens_the_socket_with_a_new_stream() -> None:
    store = KeptStorage()
    broker = make(store)
    sub(broker, "s1", "a")
    actions = broker.handle(PEER, encode(Subscribe(2, "s1", "tcp://127.0.0.1:6000", ("a",))), 1.0)
    assert [type(a) for a in actions] == [Close, Open, Reply]
    assert ok(actions)["stream"] == 101
    assert store.subscriber_records["s1"].endpoint == "tcp://127.0.0.1:6000"  # written too


@pytest.mark.parametrize(
    "endpoint",
    [
        "ipc:///tmp/x",
        "tcp://localhost:5000",
        "tcp://127.0.0.1",
        "tcp://127.0.0.1:0",
        "tcp://0.0.0.0:5000",
        "tcp://*:5000",
        "tcp://127.0.0.1:5000/path",
        "tcp://127.0.0.1:99999",
        "tcp://[::1:5000",
        "",
    ],
)
def test_bad_endpoints_are_refused(endpoint: str) -> None:
    actions = make().handle(PEER, encode(Subscribe(1, "s1", endpoint, ("a",))), 1.0)
    assert err(actions) == ErrorCode.BAD_ENDPOINT


def test_ipv6_endpoint_is_accepted() -> None:
    assert ok(make().handle(PEER, encode(Subscribe(1, "s1", "tcp://[::1]:5000", ("a",))), 1.0))


def test_bad_pattern_names_the_reason() -> None:
    actions = make().handle(PEER, encode(SubscribeMatch(1, "s1", EP, (r"(a)\1",))), 1.0)
    reply = reply_of(actions)
    assert isinstance(reply, Err) and reply.code == ErrorCode.BAD_PATTERN
    assert "backreferences" in reply.message


def test_a_refused_subscribe_changes_nothing() -> None:
    broker = make()
    actions = broker.handle(PEER, encode(SubscribeMatch(1, "s1", EP, ("ok", "(?=bad)"))), 1.0)
    assert err(actions) == ErrorCode.BAD_PATTERN
    assert broker.subscriber("s1") is None and broker.index.pattern_count == 0


@pytest.mark.parametrize(
    ("subject", "code"), [("", ErrorCode.BAD_SUBJECT), ("x" * 300, ErrorCode.BAD_SUBJECT)]
)
def test_bad_subjects_are_refused(subject: str, code: str) -> None:
    assert err(sub(make(), "s1", subject)) == code
    assert (
        err(make().handle(PEER, encode(Publish(1, True, (PubItem((subject,), 1, b""),))), 1.0))
        == code
    )


def test_subscribe_with_no_subjects_is_refused() -> None:
    assert err(sub(make(), "s1")) == ErrorCode.BAD_SUBJECT


def test_publish_limits() -> None:
    broker = make(
        limits=Limits(max_subjects_per_item=2, max_message_bytes=4, max_items_per_publish=256)
    )
    many = encode(Publish(1, False, (PubItem(("a", "b", "c"), 1, b""),)))
    assert err(broker.handle(PEER, many, 1.0)) == ErrorCode.LIMIT_EXCEEDED
    big = encode(Publish(1, False, (PubItem(("a",), 1, b"12345"),)))
    assert err(broker.handle(PEER, big, 1.0)) == ErrorCode.TOO_LARGE
    items = tuple(PubItem(("a",), 1, b"") for _ in range(257))
    assert (
        err(broker.handle(PEER, encode(Publish(1, False, items)), 1.0)) == ErrorCode.LIMIT_EXCEEDED
    )


def test_subscription_and_subscriber_limits() -> None:
    broker = make(limits=Limits(max_subscriptions=2, max_subscribers=1))
    assert ok(sub(broker, "s1", "a", "b"))["count"] == 2
    assert ok(sub(broker, "s1", "A"))["count"] == 2  # already there: no new subscription
    assert err(sub(broker, "s1", "c")) == ErrorCode.LIMIT_EXCEEDED
    assert err(sub(broker, "s2", "a")) == ErrorCode.LIMIT_EXCEEDED


def test_garbage_gets_a_coded_error_not_an_exception() -> None:
    assert err(make().handle(PEER, [b"\xc1"], 1.0)) == ErrorCode.BAD_REQUEST
    assert err(make().handle(PEER, [], 1.0)) == ErrorCode.BAD_REQUEST
    assert (
        err(make().handle(PEER, [msgpack.packb([1, "NOPE", 4])], 1.0)) == ErrorCode.UNKNOWN_COMMAND
    )


def test_ack_moves_depth_and_never_replies() -> None:
    broker = make()
    flow = Flow()
    flow.route(sub(broker, "s1", "a"), 1.0)
    for _ in range(5):
        flow.route([pub(broker, "a")], 1.0)
    flow.flush()
    assert broker.handle(PEER, encode(Ack(0, "s1", 2)), 1.0) == [Progress("s1")]
    assert broker.handle(PEER, encode(Ack(0, "s1", 99)), 1.0) == []  # beyond what was sent: ignored
    assert broker.handle(PEER, encode(Ack(0, "s1", 1)), 1.0) == []  # old news
    assert ok(broker.handle(PEER, encode(Stats(3)), 1.0))["subscribers"][0]["depth"] == 3


@pytest.mark.parametrize(
    "header",
    [[1, "ACK", 0, "s1", "42"], [1, "ACK", 5, "", 1], [1, "ACK", 0, "s1"], [1, "ACK", -1, "s1", 1]],
)
def test_a_malformed_ack_is_not_answered_either(header: list[Any]) -> None:
    """ACK is never answered, whatever its rid, even when the decoder refuses it (SPEC 3)."""
    broker = make()
    assert broker.handle(PEER, [msgpack.packb(header)], 1.0) == []
    assert broker.handle(PEER, [msgpack.packb(header), b""], 1.0) == []  # a frame too many
    assert err(broker.handle(PEER, [msgpack.packb([1, "HEARTBEAT", 5, ""])], 1.0)) == "BAD_REQUEST"


def test_confirmation_counts_receivers() -> None:
    broker, flow = make(), Flow()
    flow.route(sub(broker, "s1", "a"), 1.0)
    flow.route(sub(broker, "s2", "b"), 1.0)
    fanout = pub(broker, "a", "b", confirm=True)
    (confirm,) = fanout.confirms
    assert confirm.sids == {"s1", "s2"}
    flow.route([fanout], 1.0)
    (reply,) = [a for a in flow.flush() if isinstance(a, Reply)]
    assert decode_reply(reply.frames) == Ok(5, {"receivers": 2})


def test_ping_and_stats() -> None:
    broker = make()
    sub(broker, "s1", "a")
    broker.handle(PEER, encode(SubscribeMatch(2, "s1", EP, ("b.*",))), 1.0)
    pong = ok(broker.handle(PEER, encode(Ping(4)), 3.0))
    assert pong["time"] == 3.0 and pong["limits"]["max_message_bytes"] == 1 << 20
    body = ok(broker.handle(PEER, encode(Stats(5)), 10.0))
    assert body["server"]["subscribers"] == 1 and body["server"]["uptime"] == 10.0
    entry = body["subscribers"][0]
    assert (entry["subjects"], entry["patterns"], entry["policy"], entry["queue"]) == (
        ["a"],
        ["b.*"],
        "block",
        1000,
    )


def test_stats_listing_is_bounded() -> None:
    broker = make(limits=Limits(max_subscriptions=20_000))
    names = [f"subject.{i:05d}.{'x' * 200}" for i in range(2000)]
    for i in range(3):
        broker.handle(PEER, encode(Subscribe(1, f"s{i}", EP, tuple(names))), 1.0)
    body = ok(broker.handle(PEER, encode(Stats(5)), 1.0))
    assert body["truncated"] is True and body["server"]["subscribers"] == 3


def test_stats_is_recognised_as_read_only() -> None:
    assert peek_command(encode(Stats(1))) in AT_ONCE
    assert peek_command(encode(Heartbeat(1, "s"))) in AT_ONCE
    assert peek_command(encode(Ping(1))) not in AT_ONCE  # PING proves order: it waits its turn
    assert peek_command([b"\xc1"]) not in AT_ONCE


def test_heartbeat_says_whether_the_subscriber_is_known() -> None:
    broker = make()
    sub(broker, "s1", "a")
    known = ok(broker.handle(PEER, encode(Heartbeat(7, "s1")), 1.0, mono=5.0))
    assert known == {"known": True, "endpoint": EP}
    assert ok(broker.handle(PEER, encode(Heartbeat(8, "never")), 1.0)) == {"known": False}


def test_a_silent_subscriber_is_evicted_and_told_why_at_its_next_heartbeat() -> None:
    broker = make(liveness=10.0)
    broker.handle(PEER, encode(Subscribe(1, "s1", EP, ("a",))), 1.0, mono=100.0)
    broker.hear([Linked("s1", True)], 100.0)
    broker.handle(PEER, encode(Heartbeat(2, "s1")), 1.0, mono=108.0)
    assert broker.sweep(117.0) == []  # heard 9 s ago
    assert broker.sweep(118.5) == [Close("s1")]
    assert broker.subscriber("s1") is None and broker.index.subject_count == 0
    reply = ok(broker.handle(PEER, encode(Heartbeat(3, "s1")), 1.0, mono=119.0))
    assert reply == {"known": False, "evicted": "silent"}


def test_an_unreachable_or_disconnected_subscriber_is_evicted() -> None:
    broker = make(liveness=10.0)
    broker.handle(PEER, encode(Subscribe(1, "never", EP, ("a",))), 1.0, mono=0.0)
    broker.handle(PEER, encode(Subscribe(1, "gone", EP, ("a",))), 1.0, mono=0.0)
    broker.hear([Linked("gone", True)], 1.0)
    broker.hear([Linked("gone", False)], 5.0)
    for mono in (4.0, 8.0):  # both keep sending heartbeats
        for sid in ("never", "gone"):
            broker.handle(PEER, encode(Heartbeat(2, sid)), 1.0, mono=mono)
    assert broker.sweep(10.5) == [Close("never")]
    assert broker.sweep(15.5) == [Close("gone")]


def test_a_subscriber_full_for_too_long_is_evicted_but_consuming_resets_the_clock() -> None:
    broker = make(liveness=1000.0, evict_stalled=30.0)
    flow = Flow()
    flow.route(broker.handle(PEER, encode(Subscribe(1, "s1", EP, ("a",))), 1.0, mono=0.0), 0.0)
    broker.hear([Linked("s1", True)], 0.0)
    broker.hear([Stalled("s1")], 10.0)
    flow.route([pub(broker, "a")], 11.0)
    flow.flush()
    broker.handle(PEER, encode(Ack(0, "s1", 1)), 1.0, mono=15.0)  # it consumed: room again
    broker.hear([Full("s1")], 20.0)
    assert broker.sweep(45.0) == []
    assert broker.sweep(50.5) == [Close("s1")]
    assert ok(broker.handle(PEER, encode(Heartbeat(2, "s1")), 1.0))["evicted"] == "stalled"


def test_a_stall_that_ran_out_is_not_waited_on_again_until_it_consumes() -> None:
    broker = make(queue_size=1)
    flow = Flow()
    flow.route(sub(broker, "s1", "a"), 0.0)
    lane = broker.subscriber("s1").lane  # type: ignore[union-attr]
    assert not lane.may_wait  # not connected yet: nobody waits for it
    flow.route(broker.hear([Linked("s1", True)], 0.0), 0.0)
    assert lane.may_wait
    flow.route([pub(broker, "a"), pub(broker, "a")], 1.0)  # the second waits for room
    assert flow.stalled
    flow.expire(1.0 + 5.0)
    assert not flow.stalled and not lane.may_wait  # dead slow: later ones drop at once
    flow.route([pub(broker, "a")], 7.0)
    assert not flow.stalled and lane.dropped == 2
    flow.flush()
    broker.handle(PEER, encode(Ack(0, "s1", 1)), 1.0)  # it read again
    assert lane.may_wait


def test_stalled_eviction_can_be_turned_off() -> None:
    broker = make(liveness=1000.0, evict_stalled=0.0)
    broker.handle(PEER, encode(Subscribe(1, "s1", EP, ("a",))), 1.0, mono=0.0)
    broker.hear([Linked("s1", True)], 0.0)
    broker.hear([Stalled("s1")], 1.0)
    assert broker.sweep(900.0) == []


def test_requests_over_the_rate_of_one_connection_are_refused_and_others_go_on() -> None:
    broker = make(limits=Limits(max_request_rate=2))
    ping = encode(Ping(9))
    assert isinstance(reply_of(broker.handle(PEER, ping, 0.0, mono=10.0)), Ok)
    assert isinstance(reply_of(broker.handle(PEER, ping, 0.0, mono=10.0)), Ok)
    refused = reply_of(broker.handle(PEER, ping, 0.0, mono=10.0))
    assert isinstance(refused, Err) and refused.code == "LIMIT_EXCEEDED" and refused.rid == 9
    assert isinstance(reply_of(broker.handle(b"other", ping, 0.0, mono=10.0)), Ok)
    assert isinstance(reply_of(broker.handle(PEER, ping, 0.0, mono=10.5)), Ok)  # refilled
    assert broker.stats(0.0)["server"]["requests_over_budget"] == 1


def test_no_request_rate_limit_when_it_is_zero() -> None:
    broker = make(limits=Limits(max_request_rate=0))
    for _ in range(1000):
        assert isinstance(reply_of(broker.handle(PEER, encode(Ping(1)), 0.0, mono=1.0)), Ok)


# --- meta-events ------------------------------------------------------------------------------
