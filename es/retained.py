"""Retained events: the latest event of each subject, kept for new subscriptions (as MQTT keeps
retained messages; OSE netsvc's reports had a lifetime too).

Pure: times are passed in. `expires` is monotonic; `time` is the publish's wall-clock time, which
the retained event keeps when it is delivered later. Bounded in count and in total payload size.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from es.daemon.patterns import fold

__all__ = ["Retained", "RetainedStore"]


@dataclass(frozen=True, slots=True)
class Retained:
    """A retained event: the latest of its subject, kept for new subscriptions."""

    subject: str
    fmt: int
    payload: bytes
    time: float
    expires: float | None  # monotonic; None: until replaced or cleared


class RetainedStore:
    """Retained events by folded subject, bounded in count and bytes."""

    def __init__(self, max_count: int, max_bytes: int) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._events: dict[str, Retained] = {}  # folded subject -> event
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._events)

    def fits(self, changes: Iterable[tuple[str, int]]) -> bool:
        """Whether setting these (subject, payload size) pairs keeps within the bounds; size 0
        clears the subject."""
        sizes = {fold(s): self._size(fold(s)) for s, _ in changes}
        count, total = len(self._events), self.bytes
        for subject, size in changes:
            key = fold(subject)
            old = sizes[key]
            count += (size > 0) - (old > 0)
            total += size - old
            sizes[key] = size
        return count <= self.max_count and total <= self.max_bytes

    def _size(self, key: str) -> int:
        event = self._events.get(key)
        return 0 if event is None else max(1, len(event.payload))

    def put(self, event: Retained) -> None:
        """Keep `event` for its subject; an empty payload clears the subject instead."""
        key = fold(event.subject)
        old = self._events.pop(key, None)
        if old is not None:
            self.bytes -= len(old.payload)
        if event.payload:
            self._events[key] = event
            self.bytes += len(event.payload)

    def get(self, subject: str, mono: float) -> Retained | None:
        """The live retained event of `subject`, if any."""
        event = self._events.get(fold(subject))
        return event if event is not None and _alive(event, mono) else None

    def alive(self, mono: float) -> list[Retained]:
        """Every live retained event."""
        return [e for e in self._events.values() if _alive(e, mono)]

    def expire(self, mono: float) -> list[str]:
        """Forget every event whose lifetime is over; their (folded) subjects."""
        dead = [key for key, event in self._events.items() if not _alive(event, mono)]
        for key in dead:
            self.bytes -= len(self._events.pop(key).payload)
        return dead


def _alive(event: Retained, mono: float) -> bool:
    return event.expires is None or mono < event.expires
