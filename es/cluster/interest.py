"""What a node listens to on the backbone, and which events it has already taken. Pure.

Invariants:
- A node listens on a NATS filter exactly while at least one of its subscriptions needs it: an
  exact subject needs its backbone subject, a pattern needs its cover (es.cluster.subjects).
  Several subscriptions may need one filter (every pattern without a literal prefix needs
  `ev.>`); the filter goes when the last of them goes.
- `Origins.fresh` takes each (node, epoch, seq) once: a second copy (overlapping filters each
  deliver one) or anything older is refused. That relies on reading all filters in wire order,
  in which one origin's events come in the order it sent them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from es.cluster.subjects import backbone, cover

__all__ = ["Change", "Interest", "Origins"]

Change = tuple[bool, bool, str]
"""(is a pattern, added, the folded subject or the pattern): one key of the subscription index
that came or went (es.index.SubscriptionIndex.journal)."""

# Origins remembered: a node that restarts comes back as a new epoch; the oldest are forgotten.
_ORIGINS_KEPT = 4096


class Interest:
    """The NATS filters a node listens on, counted by the subscriptions that need them."""

    def __init__(self) -> None:
        self._needed: dict[str, int] = {}

    @property
    def filters(self) -> set[str]:
        """The filters listened on now."""
        return set(self._needed)

    def apply(self, changes: Iterable[Change]) -> tuple[list[str], list[str]]:
        """Take index changes; return the filters to start and to stop listening on. A filter
        that comes and goes within `changes` is in neither list."""
        before = set(self._needed)
        for is_pattern, added, key in changes:
            nats = cover(key) if is_pattern else backbone(key)
            if added:
                self._needed[nats] = self._needed.get(nats, 0) + 1
                continue
            left = self._needed.get(nats, 0) - 1
            if left > 0:
                self._needed[nats] = left
            else:
                self._needed.pop(nats, None)
        after = set(self._needed)
        return sorted(after - before), sorted(before - after)


class Origins:
    """The last sequence number taken from each origin (node and epoch)."""

    def __init__(self, kept: int = _ORIGINS_KEPT) -> None:
        self._last: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._kept = kept

    def fresh(self, node: str, epoch: int, seq: int) -> bool:
        """Whether this event is new (then it is taken): False for a copy or an older one."""
        key = (node, epoch)
        last = self._last.get(key)
        if last is not None and seq <= last:
            return False
        self._last[key] = seq
        self._last.move_to_end(key)
        if len(self._last) > self._kept:
            self._last.popitem(last=False)
        return True
