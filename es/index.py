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
- A subject seen for the first time is matched against every pattern in one pass, with an RE2 set
  of all of them. After a pattern change the set is stale: misses scan the patterns one by one
  until _REBUILD_AFTER of them have paid for building it again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from clients.patterns import Pattern, PatternSet, compile_set, fold

__all__ = ["SubscriptionIndex", "Subscriptions"]

# Misses that scan the patterns one by one before the RE2 set is built again: building costs about
# as much as a few scans, so a burst of pattern changes does not rebuild it for each one.
_REBUILD_AFTER = 4


@dataclass
class Subscriptions:
    """One subscriber's subscriptions: folded subjects and patterns as given."""

    subjects: set[str] = field(default_factory=set)
    patterns: set[str] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.subjects) + len(self.patterns)


class SubscriptionIndex:
    """Who subscribed to what, and the recipients of a subject (see the module)."""

    def __init__(self, cache_size: int = 10_000) -> None:
        self._exact: dict[str, set[str]] = {}
        self._patterns: dict[str, tuple[Pattern, set[str]]] = {}
        self._subs: dict[str, Subscriptions] = {}
        self._cache: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._cache_size = cache_size
        self._set: PatternSet | None = None
        self._set_texts: list[str] = []  # the set's patterns, by index
        self._stale_misses = 0  # misses since the patterns changed (the set is stale if > 0)
        self._stale = False
        self.cache_hits = 0
        self.cache_misses = 0

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
        for text in self._matching(key):
            found |= self._patterns[text][1]
        result = frozenset(found)
        if self._cache_size:
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def _matching(self, key: str) -> list[str]:
        """The patterns that match the folded subject `key`."""
        if not self._patterns:
            return []
        if self._stale:
            self._stale_misses += 1
            if self._stale_misses <= _REBUILD_AFTER:
                return [text for text, (c, _) in self._patterns.items() if c.match(key)]
            self._set_texts = list(self._patterns)
            self._set = compile_set(self._set_texts)
            self._stale = False
        if self._set is None:  # RE2 could not build the set: one by one
            return [text for text, (c, _) in self._patterns.items() if c.match(key)]
        return [self._set_texts[i] for i in self._set.Match(key) or ()]

    def _patterns_changed(self) -> None:
        self._cache.clear()
        self._stale, self._stale_misses = True, 0

    # --- changing ------------------------------------------------------------------------------

    def add_subjects(self, sid: str, subjects: list[str]) -> int:
        """Subscribe `sid` to exact subjects; return its subscription count."""
        subs = self._subs.setdefault(sid, Subscriptions())
        for subject in subjects:
            key = fold(subject)
            if key not in subs.subjects:
                subs.subjects.add(key)
                self._exact.setdefault(key, set()).add(sid)
                self._cache.pop(key, None)
        return len(subs)

    def add_patterns(self, sid: str, patterns: list[tuple[str, Pattern]]) -> int:
        """Subscribe `sid` to compiled patterns; return its subscription count."""
        subs = self._subs.setdefault(sid, Subscriptions())
        for text, compiled in patterns:
            if text not in subs.patterns:
                subs.patterns.add(text)
                if text not in self._patterns:
                    self._patterns[text] = (compiled, set())
                    self._patterns_changed()
                self._patterns[text][1].add(sid)
                self._cache.clear()
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
                self._discard(self._exact, key, sid)
                self._cache.pop(key, None)
            if name in subs.patterns:
                subs.patterns.discard(name)
                self._discard_pattern(name, sid)
        if not subs:
            del self._subs[sid]
        return len(subs)

    def drop(self, sid: str) -> None:
        """Forget everything `sid` subscribed to."""
        subs = self._subs.pop(sid, None)
        if subs is None:
            return
        for key in subs.subjects:
            self._discard(self._exact, key, sid)
            self._cache.pop(key, None)
        for text in subs.patterns:
            self._discard_pattern(text, sid)

    @staticmethod
    def _discard(index: dict[str, set[str]], key: str, sid: str) -> None:
        members = index.get(key)
        if members is not None:
            members.discard(sid)
            if not members:
                del index[key]

    def _discard_pattern(self, text: str, sid: str) -> None:
        entry = self._patterns.get(text)
        if entry is not None:
            entry[1].discard(sid)
            self._cache.clear()
            if not entry[1]:
                del self._patterns[text]
                self._patterns_changed()
