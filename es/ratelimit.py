"""What a connection's requests cost, in units, and a token bucket of units for each control peer.

A request costs 1 unit, plus shares for the work it makes (`bill`): its events, frames and header
bytes, the subjects, patterns or names it lists, the patterns compiled for it, the entries a
listing scans. A unit is what a PING costs (11 to 19 us of CPU on the 2-core CI machine, quiet to
busy), and each share is a unit over what its work was measured to cost there, so a connection's
budget of units a second is a budget of server time (SPEC 9 derives the bound from it): a
request that makes much work is billed for it, not counted once.

The one exception is publishing: an event is billed less than it costs (a thirty-second of a
unit, for 2.5 us or more), so that a publisher in a tight loop is never refused: its events are
the server's job.

A connection is served while its bucket holds a unit; the rest of a request's bill is taken once
it has been handled, and may leave the bucket below zero: a debt its next requests wait out.
`headroom` says how far: one burst below zero at most.

Pure: time is a monotonic reading passed in. Memory is bounded by the peers seen recently: a
bucket that has refilled completely says nothing a new one would not, so `prune` drops it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from clients.wire import (
    ListSubjects,
    ListSubscribers,
    NumSub,
    Publish,
    Request,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
)
from es.patternsets import Compiled

__all__ = ["HISTORY_SCANNED", "STORED", "RateLimiter", "bill", "compiling", "received"]

# Each share is a unit (a PING) over what its work was measured to cost, quiet to busy.
EVENT = 1 / 32  # an event of a PUB: 2.5-4 us (to no subscriber); under-billed on purpose, above
FRAME = 1 / 8  # a frame after the first two: ~1.5 us to receive, before the broker sees it
HEADER_BYTE = 1 / 16384  # decoding a header that decodes: its elements are billed besides
FREE_BYTES = 4096  # header bytes any request may take for its 1 unit: a plain request costs 1
GARBAGE_BYTE = 1 / 128  # a header that does not decode (680 KB of nested arrays: ~66 ms), or
# is refused for its counts (cheap to refuse, but no client of good faith sends one)
NAME = 1 / 12  # a subject, pattern or name a SUB, SUBMATCH, UNSUB or NUMSUB lists: ~1.2 us
COMPILE = 2.0  # compiling a pattern not held: ~30 us
INSTRUCTION = 1 / 32  # an instruction of its RE2 program: ~0.4 us, built into O(log n) sets
REFUSED = 1024.0  # a pattern RE2 refuses: past its 2 MiB budget, finding out takes ~10 ms
SUBJECT_SEEN = 1 / 6  # a remembered subject SUBJECTS sorts and matches: ~2.4 us
SUBSCRIBER = 1 / 3  # a subscriber STATS or SUBSCRIBERS describes: ~4.4 us
STORED = 1 / 16  # a subscription written to sqlite with its subscriber's record: ~0.5 us
RETAINED = 1 / 6  # a retained event matched against one RE2 set of a SUBMATCH's new patterns:
# ~2.5 us (10,000 retained events against 1 to 1,000 new patterns, one to a few sets)
HISTORY_SCANNED = 1 / 64  # an event of the history a replay looks at: 0.1-0.15 us (100,000)


def compiling(compiled: Compiled) -> float:
    """The units of compiling patterns: each, its instructions, and each RE2 refused."""
    units = compiled.patterns * COMPILE + compiled.instructions * INSTRUCTION
    return units + compiled.refused * REFUSED


def received(frames: Sequence[bytes]) -> float:
    """The units of receiving a request's frames past the first two: billed even when the
    request is refused unread, since the server had to take it off the socket all the same."""
    return max(0, len(frames) - 2) * FRAME


def bill(
    frames: Sequence[bytes],
    request: Request | None,
    compiled: Compiled | None = None,
    subjects_seen: int = 0,
    subscribers: int = 0,
    retained: int = 0,
) -> float:
    """The units a request costs: `request` None if it did not decode; what was `compiled` for
    it; a listing scans the `subjects_seen` (SUBJECTS) or the `subscribers` (STATS); a SUBMATCH
    matched its new patterns against `retained` events."""
    header = max(0, len(frames[0]) - FREE_BYTES) if frames else 0
    units = 1 + received(frames)  # the header and one payload come with the unit
    if type(request) is Publish and compiled is None and not retained:  # the hot path
        return (
            units
            + sum([len(item.subjects) for item in request.items]) * EVENT
            + header * HEADER_BYTE
        )
    units += retained * RETAINED
    if compiled is not None:
        units += compiling(compiled)
    match request:
        case None:
            return units + header * GARBAGE_BYTE
        case Publish(items=items):
            units += sum([len(item.subjects) for item in items]) * EVENT
        case Subscribe(subjects=names) | Unsubscribe(subjects=names) | NumSub(subjects=names):
            units += len(names) * NAME
        case SubscribeMatch(patterns=patterns):
            units += len(patterns) * NAME
        case ListSubjects():
            units += subjects_seen * SUBJECT_SEEN
        case Stats() | ListSubscribers():  # a prefix is matched against every subscriber
            units += subscribers * SUBSCRIBER
    return units + header * HEADER_BYTE


class RateLimiter:
    """At most `rate` units a second from each peer, `burst` at once; rate 0 = no limit."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else rate
        self._buckets: dict[bytes, tuple[float, float]] = {}  # peer -> (tokens, at)

    def _refilled(self, peer: bytes, mono: float) -> tuple[float, float]:
        tokens, at = self._buckets.get(peer, (self.burst, mono))
        return min(self.burst, tokens + max(0.0, mono - at) * self.rate), max(at, mono)

    def allow(self, peer: bytes, mono: float) -> bool:
        """Take one unit from `peer`'s bucket; False if it holds less (the request is refused)."""
        if self.rate <= 0:
            return True
        tokens, at = self._refilled(peer, mono)
        if tokens < 1:
            self._buckets[peer] = (tokens, at)
            return False
        self._buckets[peer] = (tokens - 1, at)
        return True

    def charge(self, peer: bytes, units: float, mono: float) -> None:
        """Take `units` more from `peer`'s bucket, for work done: it may go below zero."""
        if self.rate <= 0 or units <= 0:
            return
        bucket = self._buckets.get(peer)
        if bucket is not None and bucket[1] == mono:  # allow() refilled it at this very time
            self._buckets[peer] = (bucket[0] - units, mono)
            return
        tokens, at = self._refilled(peer, mono)
        self._buckets[peer] = (tokens - units, at)

    def balance(self, peer: bytes, mono: float) -> float:
        """The units in `peer`'s bucket now (below zero: a debt)."""
        return self._refilled(peer, mono)[0]

    def headroom(self, peer: bytes, mono: float) -> float:
        """The most `peer`'s request at hand may still cost: its bucket may end one burst below
        zero, no further (infinite without a limit)."""
        if self.rate <= 0:
            return math.inf
        return self.balance(peer, mono) + self.burst

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
