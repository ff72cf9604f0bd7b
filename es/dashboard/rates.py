"""Server counters over time: rates a second, and a bounded history for small charts. Pure:
snapshots and their (monotonic) times come in as values.

Invariants:
- A rate is the change of a counter between two snapshots over the seconds between them; a
  counter that went down (the server restarted) starts again from its new value, never a
  negative rate.
- The history keeps the last `keep` points; older ones are forgotten.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["COUNTERS", "Rates"]

COUNTERS = ("events_published", "events_delivered", "events_dropped", "evictions")
"""The server counters (STATS `server`) charted a second."""


@dataclass
class Rates:
    """Rates a second of COUNTERS, from successive STATS snapshots."""

    keep: int = 300
    history: deque[dict[str, float]] = field(default_factory=deque)
    _last: tuple[float, dict[str, int]] | None = None

    def add(self, server: dict[str, Any], at: float) -> dict[str, float]:
        """Take the `server` part of a STATS reply seen at monotonic time `at`; return the rates
        since the one before (all 0 for the first), which also join the history with `at`."""
        now = {name: int(server.get(name, 0)) for name in COUNTERS}
        rates = dict.fromkeys(COUNTERS, 0.0)
        if self._last is not None:
            then, before = self._last
            seconds = at - then
            if seconds > 0:
                for name in COUNTERS:
                    change = now[name] - before[name]
                    rates[name] = change / seconds if change >= 0 else 0.0
        self._last = (at, now)
        point = {"at": at, **rates}
        self.history.append(point)
        while len(self.history) > self.keep:
            self.history.popleft()
        return rates
