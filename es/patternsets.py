"""Patterns matched in a few RE2 sets of growing size, so that no change rebuilds them all.

One RE2 set of every pattern matches a subject in one pass, but building it costs time in
proportion to all the patterns (RE2 has no way to add to a built set): rebuilt for every change,
10,000 patterns cost hundreds of milliseconds a change. Here the patterns are kept in segments,
each an RE2 set of some of them, arranged like a binomial heap (the "logarithmic method"):

- New patterns form a segment of their own. A segment's level is the bit length of its weight,
  RE2's program size of its patterns (what building its set costs); while a segment of a level
  no higher than the new one's exists, the two are merged into one set. Merged patterns always
  move to a higher level, so each is built into a set at most once per level: adding n patterns,
  in any order, costs O(n log n) set building in all, never a rebuild of every pattern.
- No set is built heavier than `cap` instructions (a bound on any one build, ~25 ms for 65,536):
  past it, segments are left as they are, and a subject is matched against each.
- A removed pattern leaves a tombstone in its segment; the segment is rebuilt from what is left
  once the tombstones weigh as much as the live patterns (each removal pays for its own share).
- A set RE2 cannot build (over its memory budget) is split in halves, each built on its own, and
  the cap is lowered below what failed, so it is not tried again. Only a single pattern that RE2
  refuses as a set is tried on its own (and never merged again): the one-by-one path covers
  single patterns, never many.

Pure: no clock and no I/O; `build` (RE2's set compiler by default) can be replaced for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from es.daemon.patterns import Pattern, PatternSet, compile_set

__all__ = ["CAP", "Compiled", "PatternSets"]

CAP = 1 << 16
"""Heaviest set built, in RE2 instructions: building one takes about 25 ms (0.4 us an instruction
measured), and 10,000 simple patterns (about 21 instructions each) fit in four."""

Build = Callable[[list[str]], PatternSet | None]


@dataclass
class Compiled:
    """Compiling done for a request: patterns compiled, their RE2 instructions in all, and the
    patterns RE2 refused (finding that out may take as long as RE2's memory budget allows)."""

    patterns: int = 0
    instructions: int = 0
    refused: int = 0


def weight(pattern: Pattern) -> int:
    """What a pattern adds to a set's build: RE2's program size (at least 1)."""
    return max(1, int(pattern.programsize))


@dataclass(eq=False)
class _Segment:
    """Some patterns and their set: `texts[i]` is what the set's index i stands for (None: a
    tombstone); `matcher` None means RE2 would not build it (then it holds one pattern)."""

    texts: list[str | None]
    matcher: PatternSet | None
    live: int  # weight of the live patterns
    dead: int = 0  # weight of the tombstones

    @property
    def level(self) -> int:
        """Segments of one level weigh within a factor of two of each other."""
        return self.live.bit_length()


class PatternSets:
    """The patterns, matched through a few sets (see the module)."""

    def __init__(self, build: Build = compile_set, cap: int = CAP) -> None:
        self._build = build
        self.cap = cap
        self._compiled: dict[str, Pattern] = {}
        self._where: dict[str, tuple[_Segment, int]] = {}  # text -> its segment, its index there
        self._segments: list[_Segment] = []
        self.builds = 0
        """Sets built or attempted (for tests and statistics)."""
        self.built_weight = 0
        """Instructions built into sets in all: the work, summed over every build."""

    def __len__(self) -> int:
        return len(self._compiled)

    def __contains__(self, text: object) -> bool:
        return text in self._compiled

    def get(self, text: str) -> Pattern | None:
        """The compiled form of a pattern held, if it is."""
        return self._compiled.get(text)

    @property
    def segments(self) -> int:
        """How many sets a subject is matched against."""
        return len(self._segments)

    @property
    def one_by_one(self) -> int:
        """How many patterns are tried one by one (each alone in a segment RE2 would not build)."""
        return sum(1 for s in self._segments if s.matcher is None for t in s.texts if t is not None)

    def any_set(self) -> PatternSet | None:
        """One of the built sets, or None if there is none."""
        return next((s.matcher for s in self._segments if s.matcher is not None), None)

    def match(self, key: str) -> list[str]:
        """The live patterns that match (at the start of) the folded subject `key`."""
        found: list[str] = []
        for segment in self._segments:
            texts = segment.texts
            if segment.matcher is not None:
                hits = segment.matcher.Match(key) or ()
                found += [t for i in hits if (t := texts[i]) is not None]
            else:
                found += [t for t in texts if t is not None and self._compiled[t].match(key)]
        return found

    def add(self, patterns: Iterable[tuple[str, Pattern]]) -> None:
        """Add patterns not held yet (those held are skipped): one new segment for them all."""
        new: list[str] = []
        for text, compiled in patterns:
            if text not in self._compiled:
                self._compiled[text] = compiled
                new.append(text)
        if new:
            self._push(new)

    def discard(self, text: str) -> None:
        """Remove a pattern, if held."""
        self.discard_many([text])

    def discard_many(self, texts: Iterable[str]) -> None:
        """Remove patterns, those held: every tombstone first, then each segment they leave
        mostly dead is rebuilt once from what is left (so removing a subscriber's thousands of
        patterns never rebuilds a segment again and again on the way)."""
        touched: dict[int, _Segment] = {}
        for text in texts:
            compiled = self._compiled.pop(text, None)
            if compiled is None:
                continue
            segment, index = self._where.pop(text)
            segment.texts[index] = None
            heavy = weight(compiled)
            segment.live -= heavy
            segment.dead += heavy
            touched[id(segment)] = segment
        left: list[str] = []
        for segment in touched.values():
            if segment.live <= 0 or segment.dead >= segment.live:
                self._segments.remove(segment)
                left += [t for t in segment.texts if t is not None]
        if left:  # after every removal: pushing may merge segments, touched ones among them
            self._push(left)

    # --- building ------------------------------------------------------------------------------

    def _weigh(self, texts: list[str]) -> int:
        return sum(weight(self._compiled[t]) for t in texts)

    def _push(self, texts: list[str]) -> None:
        """Make segments of `texts`, merging each with the lighter ones it may absorb."""
        for chunk in self._chunks(texts):
            heavy = self._weigh(chunk)
            while True:
                level = heavy.bit_length()
                lighter = [
                    s
                    for s in self._segments
                    if s.level <= level and heavy + s.live <= self.cap and s.matcher is not None
                ]
                if not lighter:
                    break
                lightest = min(lighter, key=lambda s: s.live)
                self._segments.remove(lightest)
                chunk = [t for t in lightest.texts if t is not None] + chunk
                heavy += lightest.live
            self._install(chunk, heavy)

    def _chunks(self, texts: list[str]) -> list[list[str]]:
        """`texts` in runs of at most `cap` weight (a heavier pattern makes a run alone)."""
        chunks: list[list[str]] = [[]]
        heavy = 0
        for text in texts:
            each = weight(self._compiled[text])
            if chunks[-1] and heavy + each > self.cap:
                chunks.append([])
                heavy = 0
            chunks[-1].append(text)
            heavy += each
        return chunks

    def _install(self, texts: list[str], heavy: int) -> None:
        """Build one set of `texts`; if RE2 cannot, lower the cap and build halves instead."""
        self.builds += 1
        self.built_weight += heavy
        matcher = self._build(texts)
        if matcher is None and len(texts) > 1:
            self.cap = max(1, min(self.cap, heavy // 2))
            half = len(texts) // 2
            for part in (texts[:half], texts[half:]):
                self._install(part, self._weigh(part))
            return
        segment = _Segment(list(texts), matcher, heavy)
        self._segments.append(segment)
        for index, text in enumerate(texts):
            self._where[text] = (segment, index)
