"""The per-connection token bucket and the bill of each request, with a fake clock."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import (
    Ack,
    Heartbeat,
    ListSubjects,
    Ping,
    PubItem,
    Publish,
    Stats,
    Subscribe,
    SubscribeMatch,
    encode,
)
from es.config import Limits
from es.patternsets import Compiled
from es.ratelimit import RateLimiter, bill


def test_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    assert [limiter.allow(b"a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert not limiter.allow(b"a", 0.05)  # half a token back
    assert limiter.allow(b"a", 0.2)  # one more after a tenth of a second
    assert limiter.allow(b"b", 0.2)  # every connection has its own bucket


def test_full_buckets_are_forgotten() -> None:
    limiter = RateLimiter(rate=10, burst=3)
    limiter.allow(b"a", 0.0)
    limiter.allow(b"b", 0.0)
    limiter.prune(0.05)
    assert len(limiter) == 2  # not refilled yet
    limiter.prune(1.0)
    assert len(limiter) == 0


def test_zero_means_no_limit() -> None:
    limiter = RateLimiter(rate=0)
    assert all(limiter.allow(b"a", 0.0) for _ in range(10_000))
    assert len(limiter) == 0


# --- the bill ----------------------------------------------------------------------------------


def test_a_plain_request_costs_one_unit() -> None:
    for message in (Ping(1), Stats(2), Heartbeat(3, "s"), Ack(0, "s", 5), ListSubjects(4, None)):
        assert bill(encode(message), message) == 1


def test_a_batch_of_1000_small_events_is_well_within_budget() -> None:
    items = tuple(PubItem(("stockquotes.sun",), 1, b"x" * 100) for _ in range(1000))
    for inline in (True, False):
        request = Publish(1, True, items, inline)
        assert bill(encode(request), request) < 200  # of 20,000 a second by default
    single = Publish(1, True, items[:1])
    assert bill(encode(single), single) < 1.1


def test_the_bill_grows_with_the_work() -> None:
    names = tuple(f"n{i}" for i in range(1200))
    sub = Subscribe(1, "s", "tcp://127.0.0.1:1", names)
    assert bill(encode(sub), sub) == pytest.approx(1 + 1200 / 12, abs=1)
    match = SubscribeMatch(1, "s", "tcp://127.0.0.1:1", names[:10])
    compiled = Compiled(patterns=10, instructions=320)
    assert bill(encode(match), match, compiled) == pytest.approx(1 + 10 / 12 + 20 + 10)
    assert bill(encode(match), match, Compiled(refused=1)) > 1000
    frames = [b"\x93\x01\xa3PUB", *[b"p"] * 801]
    assert bill(frames, None) == 1 + 100
    assert bill([b"\xc1" * (4096 + 128 * 64)], None) == 1 + 64  # garbage, by its bytes
    assert bill(encode(Stats(1)), Stats(1), subscribers=300) == 101
    listing = ListSubjects(1, "x")
    assert bill(encode(listing), listing, subjects_seen=600) == 101


def test_a_charge_puts_a_peer_in_debt_until_the_rate_pays_it_back() -> None:
    limiter = RateLimiter(rate=100)
    assert limiter.allow(b"a", 0.0)
    limiter.charge(b"a", 149, 0.0)  # a request of 150 units, with 100 in the bucket
    assert limiter.balance(b"a", 0.0) == -50
    assert not limiter.allow(b"a", 0.5)  # -50 + 50: not a unit yet
    assert limiter.allow(b"a", 0.51)
    assert limiter.allow(b"b", 0.51)  # another peer pays nothing of it
    limiter.prune(0.6)
    assert len(limiter) == 1  # "a" still owes; "b" is full again
    limiter.prune(10.0)
    assert len(limiter) == 0


def test_headroom_is_the_balance_and_one_burst_of_debt() -> None:
    limiter = RateLimiter(rate=100)
    assert limiter.headroom(b"a", 0.0) == 200
    limiter.charge(b"a", 150, 0.0)
    assert limiter.headroom(b"a", 0.0) == 50
    assert RateLimiter(rate=0).headroom(b"a", 0.0) == math.inf
    free = RateLimiter(rate=0)
    free.charge(b"a", 1e9, 0.0)
    assert free.allow(b"a", 0.0) and len(free) == 0


def test_a_publisher_in_a_tight_loop_is_never_refused_at_the_default_rate() -> None:
    """Ten seconds of batches of 1,000 events, one every 2 ms: faster than the server can take
    them (~3.4 ms a batch measured), so no publisher gets closer to its budget than this."""
    items = tuple(PubItem((f"quotes.{i % 7}",), 1, b"x" * 100) for i in range(1000))
    request = Publish(1, False, items, inline=True)
    cost = bill(encode(request), request)
    limiter = RateLimiter(rate=Limits().max_request_rate)
    for n in range(5000):
        assert limiter.allow(b"publisher", n * 0.002)
        limiter.charge(b"publisher", cost - 1, n * 0.002)


class _Bucket:
    """The token bucket by its definition: refilled at the rate, up to the burst, at each use."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst, self.tokens, self.at = rate, burst, burst, 0.0

    def refill(self, mono: float) -> None:
        self.tokens = min(self.burst, self.tokens + max(0.0, mono - self.at) * self.rate)
        self.at = max(self.at, mono)

    def allow(self, mono: float) -> bool:
        self.refill(mono)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def charge(self, units: float, mono: float) -> None:
        if units > 0:
            self.refill(mono)
            self.tokens -= units


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["allow", "charge"]),
            st.sampled_from([0.0, 0.001, 0.5]),
            st.floats(-1, 50),
        ),
        max_size=40,
    )
)
def test_the_bucket_keeps_to_its_definition(steps: list[tuple[str, float, float]]) -> None:
    """What the broker does for each request (allow, then charge the rest at the same time),
    and any other order, leaves the bucket where the definition says."""
    limiter, model, mono = RateLimiter(rate=100, burst=20), _Bucket(100, 20), 0.0
    for what, later, units in steps:
        mono += later
        if what == "allow":
            assert limiter.allow(b"a", mono) == model.allow(mono)
        else:
            limiter.charge(b"a", units, mono)
            model.charge(units, mono)
        model.refill(mono)
        assert limiter.balance(b"a", mono) == pytest.approx(model.tokens)
