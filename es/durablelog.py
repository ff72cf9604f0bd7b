"""Where durable subscribers' events wait until they are acknowledged: the records, the protocol
of a log that keeps them, and the log in memory.

A durable subscriber (SPEC 7.10) has a name, a stream that outlives its connections, and a log
of the events numbered for it and not yet acknowledged. The sqlite log (es.sqlitelog) keeps
them across restarts; the memory log (here) only while the server runs. Both are data and
nothing else: the rules (what to keep, what to drop, when to commit) are es.durable's and the
broker's.

Invariants:
- A log holds, for each durable, events in increasing seq order, each with its seq, packed event
  (clients.wire.pack_event), payload and publish time; seqs may have holes where events were
  dropped. `backlog(name)` counts them exactly.
- Writes join a group that `commit()` makes permanent all at once; a commit that fails keeps
  nothing of its group (sqlite; memory commits cannot fail). `next_seq` and `acked` of a durable
  are kept with the group that moved them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Backlog", "DurableLog", "MemoryLog", "Row", "StoredDurable"]


@dataclass(frozen=True, slots=True)
class StoredDurable:
    """A durable subscriber as kept: who holds it now, what it asked for, where its stream is."""

    name: str
    sid: str  # the subscriber that holds it now (its events go to this sid's inbox)
    endpoint: str
    policy: str
    queue_size: int
    max_stall: float
    key: str | None
    owner: str | None
    subjects: tuple[str, ...]
    patterns: tuple[str, ...]
    stream: int
    next_seq: int = 1
    acked: int = 0


@dataclass(slots=True)
class Backlog:
    """What a log holds for one durable: its events, their bytes (payloads and packed events),
    its position (the next seq to number, the last acknowledged)."""

    count: int = 0
    size: int = 0
    next_seq: int = 1
    acked: int = 0


Row = tuple[int, bytes, bytes, float]
"""One stored event: seq, packed event, payload, publish time."""


class DurableLog(Protocol):
    """Durable subscribers and their stored events. Every method raises StorageError, and
    nothing else, when the storage fails."""

    def durables(self) -> Iterable[StoredDurable]:
        """Every durable subscriber kept, with its position."""
        ...

    def put_durable(self, record: StoredDurable) -> None:
        """Keep `record` (its name's, replacing what was kept), committed with what came before
        when this returns. Its position is the log's own once it has one."""
        ...

    def delete_durable(self, name: str) -> None:
        """Forget the durable `name` and its events, committed when this returns."""
        ...

    def append(self, name: str, rows: list[Row]) -> None:
        """Keep `rows` (consecutive seqs from the durable's next_seq) for `name`, in the group."""
        ...

    def ack(self, name: str, seq: int) -> None:
        """`name` consumed everything up to `seq`: forget those events, in the group."""
        ...

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        """Forget `name`'s events from seqs[0] to seqs[1] (dropped), in the group; how many."""
        ...

    def skip(self, name: str, next_seq: int) -> None:
        """The seqs of `name` below `next_seq` are taken (numbered, then dropped): kept with the
        group, so that they are never numbered again."""
        ...

    def read(self, name: str, start: int, most: int, most_bytes: int) -> list[Row]:
        """`name`'s stored events from seq `start` on, oldest first: at most `most` of them and
        `most_bytes` of payload (one larger event still comes alone)."""
        ...

    def backlog(self, name: str) -> Backlog:
        """What the log holds for `name` (an empty Backlog for a name it does not know)."""
        ...

    def commit(self) -> None:
        """Make the group permanent; on StorageError nothing of it was kept."""
        ...


def row_size(row: Row) -> int:
    """The bytes a stored event counts for: its payload and its packed event."""
    return len(row[1]) + len(row[2])


@dataclass
class _Kept:
    """One durable's events in memory: seqs and rows side by side, oldest first."""

    seqs: list[int] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    backlog: Backlog = field(default_factory=Backlog)

    def cut(self, low: int, high: int) -> int:
        """Remove the rows with seq from `low` to `high`; how many."""
        i = bisect.bisect_left(self.seqs, low)
        j = bisect.bisect_right(self.seqs, high)
        if j <= i:
            return 0
        self.backlog.count -= j - i
        self.backlog.size -= sum([len(row[1]) + len(row[2]) for row in self.rows[i:j]])
        del self.seqs[i:j], self.rows[i:j]
        return j - i


class MemoryLog:
    """Durable subscribers and their events in memory: kept while the server runs."""

    def __init__(self) -> None:
        self._records: dict[str, StoredDurable] = {}
        self._kept: dict[str, _Kept] = {}

    def durables(self) -> Iterable[StoredDurable]:
        """Every durable subscriber kept, with its position."""
        return list(self._records.values())

    def put_durable(self, record: StoredDurable) -> None:
        """Keep `record` (its position stays the log's own once it has one), committed."""
        self._records[record.name] = record
        start = Backlog(0, 0, record.next_seq, record.acked)
        self._kept.setdefault(record.name, _Kept(backlog=start))

    def delete_durable(self, name: str) -> None:
        """Forget the durable `name` and its events, committed."""
        self._records.pop(name, None)
        self._kept.pop(name, None)

    def _of(self, name: str) -> _Kept:
        return self._kept.setdefault(name, _Kept())

    def append(self, name: str, rows: list[Row]) -> None:
        """Keep `rows` for `name`, in the group."""
        kept = self._of(name)
        kept.seqs += [row[0] for row in rows]
        kept.rows += rows
        kept.backlog.count += len(rows)
        kept.backlog.size += sum([len(row[1]) + len(row[2]) for row in rows])
        kept.backlog.next_seq = rows[-1][0] + 1

    def ack(self, name: str, seq: int) -> None:
        """`name` consumed everything up to `seq`: forget those events, in the group."""
        kept = self._of(name)
        kept.cut(0, seq)
        kept.backlog.acked = max(kept.backlog.acked, seq)

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        """Forget `name`'s events from seqs[0] to seqs[1], in the group; how many."""
        return self._of(name).cut(*seqs)

    def skip(self, name: str, next_seq: int) -> None:
        """Seqs of `name` below `next_seq` are taken: never numbered again (in the group)."""
        backlog = self._of(name).backlog
        backlog.next_seq = max(backlog.next_seq, next_seq)

    def read(self, name: str, start: int, most: int, most_bytes: int) -> list[Row]:
        """`name`'s events from seq `start` on: at most `most`, and `most_bytes` of payload."""
        kept = self._kept.get(name)
        if kept is None:
            return []
        i = bisect.bisect_left(kept.seqs, start)
        return fitting(kept.rows[i : i + most], most_bytes)

    def backlog(self, name: str) -> Backlog:
        """What the log holds for `name` (a copy)."""
        kept = self._kept.get(name)
        if kept is None:
            return Backlog()
        backlog = kept.backlog
        return Backlog(backlog.count, backlog.size, backlog.next_seq, backlog.acked)

    def commit(self) -> None:
        """Make the group permanent; on StorageError nothing of it was kept."""


def fitting(rows: list[Row], most_bytes: int) -> list[Row]:
    """The first of `rows` whose payloads fit in `most_bytes` (at least one)."""
    total = 0
    for n, row in enumerate(rows):
        total += len(row[2])
        if total > most_bytes and n:
            return rows[:n]
    return rows
