"""The server's history (SPEC 7.11): events kept by retention rules, to replay to subscriptions
that ask for them.

Pure: no sockets, no clock, no storage. The events themselves wait in the durable log
(es.durablelog) under the name HISTORY; here is what decides: which rule keeps an event, its seq
in the history's stream, what the rules' bounds drop, and which events a request asks for.

Invariants (tests/unit/test_history.py):
- Every event a rule keeps takes the next seq of the history's stream; seqs only grow, also
  across restarts with sqlite storage (the stream is kept with the log).
- Each event is kept by the first rule whose pattern matches its subject, in the order the rules
  were given, and counts against that rule's bounds only.
- A rule holds at most `max_events` events and `max_bytes` bytes (payloads and packed events),
  none older than `max_age` seconds (0: no age limit): keeping one more drops that rule's oldest
  first, and `expire` drops the old ones.
- `entries` holds exactly the events kept, oldest first.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from clients.wire import Replay
from es.daemon.patterns import Pattern, compile_pattern

__all__ = ["HISTORY", "MAX_RULES", "Entry", "History", "Rule", "RuleError", "parse_rule"]

HISTORY = "$history"
"""The history's name in the durable log (durable names starting with `$` are refused)."""

MAX_RULES = 64
"""Rules one server takes: each subject is matched against them until one matches."""

# Subjects whose rule is remembered between publishes.
_CACHED = 10_000
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_BYTES = {"b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "kb": 1000, "mb": 10**6}
_BYTES |= {"gb": 10**9}
_LIMIT = re.compile(r"(\d+(?:\.\d+)?)\s*([a-zA-Z]*)")


class RuleError(ValueError):
    """A history rule that does not make sense, and why."""


@dataclass(frozen=True)
class Rule:
    """One retention rule: the subjects its pattern matches, kept within its bounds."""

    pattern: str
    compiled: Pattern = field(compare=False, repr=False)
    max_age: float = 0.0
    max_events: int = 100_000
    max_bytes: int = 64 << 20

    def describe(self) -> str:
        """The rule as `es serve --history` takes it."""
        age = f"{self.max_age:g}s," if self.max_age else ""
        return f"{self.pattern}={age}{self.max_events},{self.max_bytes}B"


def parse_rule(text: str, max_pattern_bytes: int = 1024) -> Rule:
    """A rule from `PATTERN=LIMIT[,LIMIT...]`: each limit an age (`30s`, `15m`, `12h`, `7d`), a
    number of events (`100000`) or a size (`64MiB`, `500MB`, `1000B`). What is not given is 100,000
    events, 64 MiB and no age limit."""
    pattern, sep, limits = text.rpartition("=")
    if not sep or not pattern:
        example = "'orders\\..*=1d,100000'"
        raise RuleError(f"history rule {text!r} must be PATTERN=LIMITS, e.g. {example}")
    try:
        compiled = compile_pattern(pattern, max_pattern_bytes)
    except ValueError as exc:
        raise RuleError(f"history rule {text!r}: {exc}") from None
    found: dict[str, float] = {}
    for part in limits.split(","):
        kind, value = _limit(part.strip(), text)
        if kind in found:
            raise RuleError(f"history rule {text!r} gives its {kind} twice")
        found[kind] = value
    rule = Rule(pattern, compiled)
    return Rule(
        pattern,
        compiled,
        found.get("age", rule.max_age),
        int(found.get("events", rule.max_events)),
        int(found.get("bytes", rule.max_bytes)),
    )


def _limit(part: str, text: str) -> tuple[str, float]:
    match = _LIMIT.fullmatch(part)
    if match is None:
        raise RuleError(f"history rule {text!r}: {part!r} is not an age, a count or a size")
    number, unit = float(match[1]), match[2].lower()
    if not unit and number == int(number) and number >= 1:
        return "events", number
    if unit in _UNITS and number > 0 and math.isfinite(number):
        return "age", number * _UNITS[unit]
    if unit in _BYTES and number >= 1:
        return "bytes", number * _BYTES[unit]
    raise RuleError(f"history rule {text!r}: {part!r} is not an age, a count or a size")


@dataclass(slots=True)
class Entry:
    """One event the history keeps: its seq, subject (folded), publish time, size and rule."""

    seq: int
    subject: str
    time: float
    size: int
    rule: int


class History:
    """The rules, and what they keep (see the module)."""

    def __init__(self, rules: Iterable[Rule], stream: int, next_seq: int = 1) -> None:
        self.rules = tuple(rules)
        self.stream = stream
        self.next_seq = next_seq
        self.entries: dict[int, Entry] = {}  # seq -> entry, oldest first
        self.size = 0
        self._kept: list[deque[Entry]] = [deque() for _ in self.rules]
        self._bytes = [0] * len(self.rules)
        self._rule_of: dict[str, int] = {}

    def rule_for(self, folded: str) -> int:
        """The rule that keeps events on subject `folded`, or -1 when none does."""
        found = self._rule_of.get(folded)
        if found is None:
            found = next((i for i, r in enumerate(self.rules) if r.compiled.match(folded)), -1)
            if len(self._rule_of) >= _CACHED:
                self._rule_of.clear()
            self._rule_of[folded] = found
        return found

    def keep(self, folded: str, time: float, size: int, rule: int) -> tuple[int, list[int]]:
        """Keep one event of `rule` (its next seq); returns that seq and the seqs its rule's
        bounds drop for it, oldest first (possibly itself, when it alone is too large)."""
        seq = self.next_seq
        self.next_seq += 1
        entry = Entry(seq, folded, time, size, rule)
        self.entries[seq] = entry
        self._kept[rule].append(entry)
        self._bytes[rule] += size
        self.size += size
        return seq, self._trim(rule)

    def restore(self, seq: int, folded: str, time: float, size: int, rule: int) -> list[int]:
        """Take back an event storage kept (in seq order, below `next_seq`); returns the seqs its
        rule's bounds drop for it, as `keep` does."""
        entry = Entry(seq, folded, time, size, rule)
        self.entries[seq] = entry
        self._kept[rule].append(entry)
        self._bytes[rule] += size
        self.size += size
        self.next_seq = max(self.next_seq, seq + 1)
        return self._trim(rule)

    def _trim(self, rule: int) -> list[int]:
        bounds, kept = self.rules[rule], self._kept[rule]
        dropped: list[int] = []
        while kept and (len(kept) > bounds.max_events or self._bytes[rule] > bounds.max_bytes):
            dropped.append(self._pop(rule))
        return dropped

    def _pop(self, rule: int) -> int:
        entry = self._kept[rule].popleft()
        del self.entries[entry.seq]
        self._bytes[rule] -= entry.size
        self.size -= entry.size
        return entry.seq

    def expire(self, now: float) -> list[int]:
        """Drop the events older than their rule's max_age at wall time `now`; their seqs."""
        dropped: list[int] = []
        for i, rule in enumerate(self.rules):
            if not rule.max_age:
                continue
            kept, before = self._kept[i], now - rule.max_age
            while kept and kept[0].time < before:
                dropped.append(self._pop(i))
        return dropped

    def select(self, wanted: Callable[[str], object], replay: Replay) -> list[int]:
        """The seqs of the events kept that `replay` asks for and whose subject `wanted` takes,
        oldest first: the last `last` of them, those published at or after `since`, or those
        from seq `start` on (all of them when `stream` names another history's stream)."""
        start = 1
        if replay.start is not None and replay.stream in (None, self.stream):
            start = replay.start
        since = -math.inf if replay.since is None else replay.since
        verdicts: dict[str, bool] = {}
        chosen: list[int] = []
        for seq, entry in self.entries.items():
            if seq < start or entry.time < since:
                continue
            ok = verdicts.get(entry.subject)
            if ok is None:
                ok = verdicts[entry.subject] = bool(wanted(entry.subject))
            if ok:
                chosen.append(seq)
        if replay.last is not None:
            return chosen[max(0, len(chosen) - replay.last) :] if replay.last else []
        return chosen

    def counts(self) -> list[tuple[int, int, float | None]]:
        """For each rule: its events, their bytes, and the publish time of its oldest."""
        return [
            (len(kept), self._bytes[i], kept[0].time if kept else None)
            for i, kept in enumerate(self._kept)
        ]
