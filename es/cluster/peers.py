"""The other nodes of a cluster, as this node hears their heartbeats; and barriers. Pure: time
is passed in.

Invariants:
- A peer is live while its last heartbeat is at most `liveness` seconds old; a peer heard with
  a new epoch is a restarted node (the old one is gone).
- The lookout reports each loss of a peer once, and a peer back only after it was lost.
- A barrier waits for an answer from each peer live when it began, and ends when all answered
  or at its deadline, whichever is first; an answer from anyone else changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Barrier", "Lookout", "Peers"]


class Peers:
    """The other nodes heard from, and when."""

    def __init__(self, liveness: float) -> None:
        self.liveness = liveness
        self._last: dict[str, tuple[int, float]] = {}  # name -> (epoch, when last heard)

    def heard(self, node: str, epoch: int, now: float) -> bool:
        """Note a heartbeat; True if it is news (a node not live until now, or restarted)."""
        before = self._last.get(node)
        self._last[node] = (epoch, now)
        return before is None or before[0] != epoch or now - before[1] > self.liveness

    def live(self, now: float) -> set[str]:
        """The peers heard from within `liveness`."""
        return {name for name, (_, when) in self._last.items() if now - when <= self.liveness}


class Lookout:
    """The live peers as the server's loop last saw them: which were lost since, and which are
    heard again after being lost (a partition healed, or a restart)."""

    def __init__(self) -> None:
        self.known: set[str] = set()
        self.gone: set[str] = set()  # lost, and not heard since

    def look(self, live: set[str]) -> tuple[list[str], list[str]]:
        """Take the live peers now; return those lost and those back since the last look."""
        lost, back = self.known - live, live & self.gone - self.known
        self.known = set(live)
        self.gone = (self.gone | lost) - back
        return sorted(lost), sorted(back)


@dataclass
class Barrier:
    """Waiting for every peer live at its start to answer."""

    waiting: set[str]
    deadline: float
    answered: set[str] = field(default_factory=set)

    def answer(self, node: str) -> None:
        """`node` answered."""
        if node in self.waiting:
            self.waiting.discard(node)
            self.answered.add(node)

    def done(self, now: float) -> bool:
        """Whether every peer waited for answered, or the deadline passed."""
        return not self.waiting or now >= self.deadline
