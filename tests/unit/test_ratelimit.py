"""The per-connection token bucket, with a fake clock."""

from __future__ import annotations

from es.ratelimit import RateLimiter


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
