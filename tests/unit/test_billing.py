"""Work the bill of es.ratelimit does not see in a request's fields: retained events a SUBMATCH
matches, frames of a request refused unread."""

from __future__ import annotations

from clients.wire import Ok, Options, Ping, PubItem, Publish, SubscribeMatch, decode_reply, encode
from es.actions import Close, Fanout, Reply
from es.config import Limits
from tests.unit.test_broker import EP, make


def test_retained_events_are_matched_once_per_new_pattern_set_and_billed() -> None:
    broker = make(limits=Limits(max_request_rate=200))
    for k in range(2):  # 2,000 retained events, from a publisher of their own
        items = tuple(PubItem((f"kept.{k}.{i}",), 1, b"v", retain=True) for i in range(1000))
        broker.handle(b"publisher", encode(Publish(k + 1, False, items)), 1.0, mono=1.0)
    watch = SubscribeMatch(3, "s1", EP, (r"^kept\.1\.99",), Options())
    first = broker.handle(b"watcher", encode(watch), 1.0, mono=1.0)
    sent = [b for a in first if isinstance(a, Fanout) for b in a.batches]
    assert [b.count for b in sent] == [11]  # kept.1.99 and kept.1.990 to kept.1.999
    # Matching 2,000 retained events cost 333 units: the next request waits out the debt.
    (refused,) = broker.handle(b"watcher", encode(Ping(4)), 1.0, mono=1.0)
    assert isinstance(refused, Reply)
    assert decode_reply(refused.frames).code == "LIMIT_EXCEEDED"  # type: ignore[union-attr]
    # Sent again once the debt is paid: nothing new, nothing matched, nothing billed past 1.
    again = broker.handle(b"watcher", encode(watch), 1.0, mono=4.0)
    assert not [a for a in again if isinstance(a, Fanout)]
    (pong,) = broker.handle(b"watcher", encode(Ping(5)), 1.0, mono=4.0)
    assert isinstance(pong, Reply) and isinstance(decode_reply(pong.frames), Ok)


def test_a_request_refused_unread_is_still_billed_for_the_frames_it_took_to_receive() -> None:
    broker = make(limits=Limits(max_request_rate=10))
    for rid in range(1, 11):  # the bucket of 10 units, spent
        broker.handle(b"greedy", encode(Ping(rid)), 1.0, mono=1.0)
    frames = [*encode(Ping(11)), *([b""] * 1000)]  # 1,000 frames too many: 125 units to take in
    (refused,) = broker.handle(b"greedy", frames, 1.0, mono=1.0)
    assert decode_reply(refused.frames).code == "LIMIT_EXCEEDED"  # type: ignore[union-attr]
    # Ten seconds would pay for a PING; not for the frames it was sent with.
    (still,) = broker.handle(b"greedy", encode(Ping(12)), 1.0, mono=11.0)
    assert decode_reply(still.frames).code == "LIMIT_EXCEEDED"  # type: ignore[union-attr]
    (pong,) = broker.handle(b"greedy", encode(Ping(13)), 1.0, mono=15.0)
    assert isinstance(decode_reply(pong.frames), Ok)  # type: ignore[union-attr]


def test_a_sweep_removes_a_bounded_number_of_subscriptions_the_rest_at_the_next() -> None:
    broker = make(liveness=10, limits=Limits(max_request_rate=0))
    for k in range(3):  # three silent subscribers of 6,000 patterns each
        for start in range(0, 6000, 1000):
            patterns = tuple(rf"^many\.{k}\.{i}$" for i in range(start, start + 1000))
            broker.handle(b"p", encode(SubscribeMatch(1, f"s{k}", EP, patterns, Options())), 1.0)
    first = [a for a in broker.sweep(100.0) if isinstance(a, Close)]
    assert len(first) == 2  # 12,000 subscriptions: past SWEEP_SUBSCRIPTIONS after the second
    second = [a for a in broker.sweep(100.5) if isinstance(a, Close)]
    assert second == [Close("s2")] and broker.index.pattern_count == 0
