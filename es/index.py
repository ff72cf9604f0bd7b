"""The subscription index: who wants which subject, kept as two maps in step, with a cache.

Invariants:
- `_exact[s]` holds sid exactly when `s in _subs[sid].subjects`; `_patterns[p]` likewise with
  `_subs[sid].patterns`. No map ever holds an empty set: an entry goes when its last member goes.
- Exact subjects are stored folded (case-insensitive); patterns verbatim (case matters in escapes
  such as \\w and \\W), compiled once however many subscribers share them.
- `recipients` returns a set of distinct sids: a subscriber matched by several of its
  subscriptions is in it once.
- The cache maps a folded subject to its recipients; it is bounded (LRU) and every change that
  could alter an entry removes it (exact change: that subject; pattern change: everything).
- A subject seen for the first time is matched against the patterns in a few RE2 sets
  (es.patternsets), each in one pass. A pattern change rebuilds only a small set, or merges a
  few of similar size: never a set of every pattern. The change pays for it, not a publish.
- A pattern is compiled once while anyone holds it: `pattern` hands out the compiled form, so a
  subscription to a pattern already held need not compile it again.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clients.errors import BadPattern, ErrorCode, LimitExceeded
from es.daemon.patterns import Pattern, PatternSet, compile_pattern, compile_set, fold
from es.patternsets import Build, Compiled, PatternSets

__all__ = ["Afford", "SubscriptionIndex", "Subscriptions"]

Afford = Callable[[Compiled], bool]
"""Whether a request may go on compiling, having compiled so much."""


@dataclass
class Subscriptions:
    """One subscriber's subscriptions: folded subjects and patterns as given."""

    subjects: set[str] = field(default_factory=set)
    patterns: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.subjects) + len(self.patterns)


class SubscriptionIndex:
    """Who subscribed to what, and the recipients of a subject (see the module)."""

    def __init__(self, cache_size: int = 10_000, build: Build = compile_set) -> None:
        self._exact: dict[str, set[str]] = {}
        self._patterns: dict[str, set[str]] = {}  # pattern -> sids, as _exact
        self._sets = PatternSets(build)  # the same patterns, compiled, for matching
        self._subs: dict[str, Subscriptions] = {}
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._cache_size = cache_size
        self.cache_hits = 0
        self.cache_misses = 0
        self._compiled = Compiled()
        # When a list, every key that comes or goes is noted in it (is_pattern, added, key), for
        # a node of a cluster to listen on what its subscribers want (es.cluster.interest).
        self.journal: list[tuple[bool, bool, str]] | None = None

    # --- reading -------------------------------------------------------------------------------

    def count(self, sid: str) -> int:
        """How many subscriptions (subjects plus patterns) `sid` has."""
        subs = self._subs.get(sid)
        return len(subs) if subs else 0

    def subscriptions(self, sid: str) -> Subscriptions:
        """What `sid` subscribed to (empty if nothing)."""
        return self._subs.get(sid) or Subscriptions()

    def sids(self) -> list[str]:
        """Every subscriber with at least one subscription."""
        return list(self._subs)

    def has_pattern(self, pattern: str) -> bool:
        """Whether anyone subscribed to `pattern`."""
        return pattern in self._patterns

    def pattern(self, text: str) -> Pattern | None:
        """The compiled form of `text`, if someone subscribed to it."""
        return self._sets.get(text)

    def compile(
        self, texts: Iterable[str], max_bytes: int, afford: Afford | None = None
    ) -> list[tuple[str, Pattern]]:
        """Each pattern compiled, or BadPattern for the first RE2 refuses. A pattern held already
        is not compiled again, nor one given twice. What this compiles is counted, for a bill;
        once `afford` says the count is too dear, LimitExceeded (nothing was added)."""
        known: dict[str, Pattern] = {}
        pairs = []
        for text in texts:
            compiled = known.get(text) or self._sets.get(text)
            if compiled is None:
                try:
                    compiled = compile_pattern(text, max_bytes)
                except BadPattern:
                    self._compiled.refused += 1
                    raise
                self._compiled.patterns += 1
                self._compiled.instructions += compiled.programsize
                if afford is not None and not afford(self._compiled):
                    raise LimitExceeded(
                        ErrorCode.LIMIT_EXCEEDED, "compiling these patterns costs over the budget"
                    )
            known[text] = compiled
            pairs.append((text, compiled))
        return pairs

    def take_compiled(self) -> Compiled:
        """What `compile` compiled since this was last asked."""
        done, self._compiled = self._compiled, Compiled()
        return done

    @property
    def sets(self) -> PatternSets:
        """The patterns as the RE2 sets they are matched in (read it; change the index)."""
        return self._sets

    @property
    def _set(self) -> PatternSet | None:
        """One built RE2 set, if there is one (older tests look for it)."""
        return self._sets.any_set()

    @property
    def subject_count(self) -> int:
        """How many distinct exact subjects are subscribed to."""
        return len(self._exact)

    @property
    def pattern_count(self) -> int:
        """How many distinct patterns are subscribed to."""
        return len(self._patterns)

    @property
    def cache_len(self) -> int:
        """How many subjects the recipients cache holds."""
        return len(self._cache)

    def recipients(self, subject: str) -> frozenset[str]:
        """The distinct sids that want an event on `subject`."""
        key = fold(subject)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.cache_hits += 1
            return cached
        self.cache_misses += 1
        found = set(self._exact.get(key, ()))
        if self._patterns:
            for text in self._sets.match(key):
                found |= self._patterns[text]
        result = frozenset(found)
        if self._cache_size:
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    # --- changing ------------------------------------------------------------------------------

    def add_subjects(self, sid: str, subjects: list[str]) -> int:
        """Subscribe `sid` to exact subjects; return its subscription count."""
        subs = self._subs.setdefault(sid, Subscriptions())
        for subject in subjects:
            key = fold(subject)
            if key not in subs.subjects:
                subs.subjects.add(key)
                members = self._exact.get(key)
                if members is None:
                    members = self._exact[key] = set()
                    self._note(False, True, key)
                members.add(sid)
                self._cache.pop(key, None)
        return len(subs)

    def add_patterns(self, sid: str, patterns: list[tuple[str, Pattern]]) -> int:
        """Subscribe `sid` to compiled patterns; return its subscription count."""
        subs = self._subs.setdefault(sid, Subscriptions())
        new = [(text, compiled) for text, compiled in patterns if text not in self._patterns]
        for text, _ in patterns:
            if text not in subs.patterns:
                subs.patterns.add(text)
                members = self._patterns.get(text)
                if members is None:
                    members = self._patterns[text] = set()
                    self._note(True, True, text)
                members.add(sid)
                self._cache.clear()
        self._sets.add(new)  # one new set for all the new ones (merged with small ones)
        return len(subs)

    def remove(self, sid: str, names: list[str]) -> int:
        """Remove each name as an exact subject and as a pattern, as Pyro's unsubscribe did."""
        subs = self._subs.get(sid)
        if subs is None:
            return 0
        for name in names:
            key = fold(name)
            if key in subs.subjects:
                subs.subjects.discard(key)
                self._discard_subject(key, sid)
                self._cache.pop(key, None)
        gone = [name for name in names if name in subs.patterns]
        subs.patterns.difference_update(gone)
        self._discard_patterns(gone, sid)
        if not subs:
            del self._subs[sid]
        return len(subs)

    def drop(self, sid: str) -> None:
        """Forget everything `sid` subscribed to."""
        subs = self._subs.pop(sid, None)
        if subs is None:
            return
        for key in subs.subjects:
            self._discard_subject(key, sid)
            self._cache.pop(key, None)
        self._discard_patterns(subs.patterns, sid)

    def _note(self, is_pattern: bool, added: bool, key: str) -> None:
        if self.journal is not None:
            self.journal.append((is_pattern, added, key))

    def _discard_subject(self, key: str, sid: str) -> None:
        """`sid` no longer has the exact subject `key`."""
        members = self._exact.get(key)
        if members is not None:
            members.discard(sid)
            if not members:
                del self._exact[key]
                self._note(False, False, key)

    def _discard_patterns(self, texts: Iterable[str], sid: str) -> None:
        """`sid` no longer has these patterns; those nobody has any more leave the sets, all
        at once."""
        unused: list[str] = []
        for text in texts:
            members = self._patterns.get(text)
            if members is not None:
                members.discard(sid)
                if not members:
                    del self._patterns[text]
                    unused.append(text)
                    self._note(True, False, text)
        if texts:
            self._cache.clear()
        self._sets.discard_many(unused)
