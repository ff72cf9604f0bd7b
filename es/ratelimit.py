"""Requests per second per connection: a token bucket for each control peer.

Pure: time is a monotonic reading passed in. Memory is bounded by the peers seen recently: a
bucket that has refilled completely says nothing a new one would not, so `prune` drops it.
"""

from __future__ import annotations

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most `rate` requests a second from each peer, `burst` at once; rate 0 = no limit."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._buckets: dict[bytes, tuple[float, float]] = {}  # peer -> (tokens, at)

    def allow(self, peer: bytes, mono: float) -> bool:
        """Take one token from `peer`'s bucket; False if it is empty (the request is refused)."""
        if self.rate <= 0:
            return True
        tokens, at = self._buckets.get(peer, (self.burst, mono))
        tokens = min(self.burst, tokens + max(0.0, mono - at) * self.rate)
        if tokens < 1:
            self._buckets[peer] = (tokens, max(at, mono))
            return False
        self._buckets[peer] = (tokens - 1, max(at, mono))
        return True

    def prune(self, mono: float) -> None:
        """Forget every peer whose bucket is full again."""
        if self.rate <= 0:
            return
        full = [
            peer
            for peer, (tokens, at) in self._buckets.items()
            if tokens + (mono - at) * self.rate >= self.burst
        ]
        for peer in full:
            del self._buckets[peer]

    def __len__(self) -> int:
        return len(self._buckets)
