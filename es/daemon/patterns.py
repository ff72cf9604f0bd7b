"""Patterns: RE2 regular expressions, anchored at the start only, for subjects and for names.

Invariants:
- Matching time is linear in the subject's length whatever the pattern (RE2 has no backtracking),
  so no subscriber can stall the server with a pattern.
- A pattern RE2 cannot compile is refused with BAD_PATTERN and RE2's own reason.
- Patterns match the case-folded subject, as exact subscriptions do, so one cache key serves both.
"""

from __future__ import annotations

from typing import Protocol

import re2

from clients.errors import BadPattern, ErrorCode

__all__ = ["Pattern", "PatternSet", "compile_pattern", "compile_set", "fold"]

# RE2 compiles into a bounded program; 2 MiB admits any sane pattern and refuses exploding
# repetitions such as (a{1000}){1000} with a clear error instead of eating memory.
_MAX_PATTERN_MEMORY = 2 << 20
# One set of patterns: 10,000 simple ones take about 8 MiB, and the server builds none of more
# than 65,536 instructions (es.patternsets), far below. Past this bound the set is not built (the
# server then builds halves instead).
_MAX_SET_MEMORY = 64 << 20


class Pattern(Protocol):
    """A compiled pattern: `match(text)` is truthy when it matches at the start of `text`."""

    def match(self, text: str) -> object:
        """Truthy when the pattern matches at the start of `text`."""
        ...

    @property
    def programsize(self) -> int:
        """RE2's size of its program: compiling it, alone or in a set, costs time in proportion."""
        ...


def fold(subject: str) -> str:
    """The form subjects are compared in: Unicode lower case, as Pyro's event server did."""
    return subject.lower()


def _options(case_sensitive: bool, max_mem: int = _MAX_PATTERN_MEMORY) -> object:
    options = re2.Options()
    options.case_sensitive = case_sensitive
    options.log_errors = False
    options.max_mem = max_mem
    return options


_OPTIONS = {True: _options(True), False: _options(False)}


def compile_pattern(text: str, max_bytes: int, case_sensitive: bool = False) -> Pattern:
    """Compile a pattern (case-insensitive unless asked), or raise BadPattern saying why."""
    if not text:
        raise BadPattern(ErrorCode.BAD_PATTERN, "empty pattern")
    if len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BadPattern(ErrorCode.BAD_PATTERN, f"pattern longer than {max_bytes} bytes")
    try:
        compiled: Pattern = re2.compile(text, _OPTIONS[case_sensitive])
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "unknown error"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise BadPattern(
            ErrorCode.BAD_PATTERN,
            f"RE2 cannot compile {text[:60]!r}: {reason} (RE2 has no backreferences or lookaround)",
        ) from None
    return compiled


class PatternSet(Protocol):
    """Many compiled patterns at once: `Match(text)` lists the indices of those that match."""

    def Match(self, text: str) -> list[int] | None:  # noqa: N802 - RE2's own name
        """The indices of the patterns that match at the start of `text`, or None."""
        ...


def compile_set(texts: list[str], case_sensitive: bool = False) -> PatternSet | None:
    """Patterns already accepted by compile_pattern, as one RE2 set: `Match(subject)` lists the
    indices of every pattern matching at the start of `subject`, in one pass over it, however
    many patterns there are. None if RE2 cannot build it (its memory budget)."""
    try:
        patterns = re2.Set.MatchSet(_options(case_sensitive, _MAX_SET_MEMORY))
        for text in texts:
            patterns.Add(text)
        patterns.Compile()
    except (re2.error, re2._re2.Error):  # a pattern RE2 now refuses, or over its memory budget
        return None
    compiled: PatternSet = patterns
    return compiled
