"""What a subscriber expects next in each delivery stream, and the loss each delivery tells.

Pure: no sockets, no clock. The subscriber hands it each EV and LOST it reads (SPEC 5, 7.3).

Invariants:
- The loss reported for a delivery is the larger of what the server told (`lost`) and the gap
  in seq the subscriber sees: they differ only when events were lost on the way (a broken
  connection), and then the gap is the truth.
- After a delivery the next seq expected is one past its last event (or past a LOST's seq);
  never earlier than before, so an old, late message cannot make a loss be counted twice.
- Events below the seq expected were had already: a durable subscriber's events are sent
  again after a reconnection or a server restart (at least once), and dropped here, so that
  the program sees each once.
- At most `kept` streams are remembered, the least recently heard forgotten first: a subscriber
  that re-subscribes often does not grow this without bound.
"""

from __future__ import annotations

__all__ = ["STREAMS_KEPT", "Streams"]

STREAMS_KEPT = 8
"""Streams whose next seq is remembered (events of an older one may still arrive, SPEC 7.3)."""


class Streams:
    """The next seq expected in each recent stream (see the module)."""

    def __init__(self, kept: int = STREAMS_KEPT, durable: bool = False) -> None:
        self.kept = kept
        self.durable = durable
        self._next: dict[int, int] = {}

    def batch(self, stream: int, first: int, last: int, lost: int) -> tuple[int, int]:
        """Events `first` to `last` arrived, `lost` told before them: the loss to report, and
        how many of them (from the first) were had already. A batch that starts below the seq
        expected is sent again (a durable subscriber's, SPEC 7.10): its events below it are
        duplicates, and the loss before it was reported when it was first told. A durable
        subscriber's stream may be new to this program yet far along (an earlier program
        consumed its start): its first batch counts only the loss the server tells."""
        default = first - lost if self.durable else 1
        expected = self._next.pop(stream, default)
        self._expect(stream, max(expected, last + 1))
        if first < expected:
            return 0, min(expected, last + 1) - first
        return max(lost, first - expected), 0

    def notice(self, stream: int, seq: int, lost: int) -> int:
        """A LOST notice: `lost` events up to `seq` were dropped. The loss to report."""
        expected = self._next.pop(stream, seq - lost + 1 if self.durable else 1)
        self._expect(stream, max(expected, seq + 1))
        return max(lost, seq - expected + 1)

    def _expect(self, stream: int, seq: int) -> None:
        self._next[stream] = seq
        while len(self._next) > self.kept:
            del self._next[next(iter(self._next))]
