"""Durable subscribers and their events in sqlite (es.durablelog's protocol), beside the
subscribers and retained events of es.storage, in the same file.

Writes of events (append, ack, drop) join one transaction, the group, that `commit()` ends: one
commit (and, with fsync "group", one fsync of the write-ahead log) for everything a turn of the
server's loop wrote, not one per event. The counts of each durable's backlog are kept in memory
as well, so that the broker's checks on the hot path never query the file; a failed commit puts
them back as they were at the last commit.

Invariants:
- A durable's tail (_Tail) holds exactly its stored events from seq `start` on; when it holds
  them all, what an ACK or a drop removes is counted from it, and the file's rows are deleted at
  the commit, in one statement per durable (before that, before the file is read for it).
- A durable's counts are kept in its row, written by the commits that change them, so opening a
  file reads no event.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from es.daemon.storage import StorageError
from es.durablelog import Backlog, Row, StoredDurable, _Kept, fitting, row_size

__all__ = ["DURABLE_SCHEMA", "DURABLE_TABLES", "SqliteLog"]

DURABLE_TABLES = {
    "durables": [
        "name",
        "sid",
        "endpoint",
        "policy",
        "queue",
        "max_stall",
        "key",
        "owner",
        "subjects",
        "patterns",
        "stream",
        "next_seq",
        "acked",
        "id",
        "stored",
        "stored_bytes",
    ],
    "stored": ["key", "time", "event", "payload"],
}
DURABLE_SCHEMA = """
CREATE TABLE IF NOT EXISTS durables (
    name TEXT PRIMARY KEY,
    sid TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    policy TEXT NOT NULL,
    queue INTEGER NOT NULL,
    max_stall REAL NOT NULL,
    key TEXT,
    owner TEXT,
    subjects TEXT NOT NULL,
    patterns TEXT NOT NULL,
    stream INTEGER NOT NULL,
    next_seq INTEGER NOT NULL,
    acked INTEGER NOT NULL,
    id INTEGER NOT NULL UNIQUE,
    stored INTEGER NOT NULL,
    stored_bytes INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stored (
    key INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    event BLOB NOT NULL,
    payload BLOB NOT NULL
);
"""
# A stored event's key: its durable subscriber's id, then its seq (below 2**40), in one integer,
# so that the table is one B-tree of integers, each durable's events in order in a range of it.
_SEQ_BITS = 40
# The newest events of each durable subscriber, kept in memory too (the tail), so that taking
# spilled events back and counting what an ACK removes need not read the file: at most this many
# events and bytes each.
TAIL_EVENTS = 65_536
TAIL_BYTES = 8 << 20


@dataclass
class _Tail:
    """A durable's newest stored events in memory: every stored event from seq `start` on."""

    kept: _Kept = field(default_factory=_Kept)
    start: int = 1

    def add(self, rows: list[Row], size: int) -> None:
        """Append `rows` (`size` bytes); forget the oldest past TAIL_EVENTS or TAIL_BYTES."""
        kept = self.kept
        kept.seqs += [row[0] for row in rows]
        kept.rows += rows
        kept.backlog.count += len(rows)
        kept.backlog.size += size
        n = max(0, kept.backlog.count - TAIL_EVENTS)
        if not n and kept.backlog.size <= TAIL_BYTES:
            return
        excess = kept.backlog.size - TAIL_BYTES - sum(map(row_size, kept.rows[:n]))
        while excess > 0 and n < len(kept.rows):
            excess -= row_size(kept.rows[n])
            n += 1
        if n:
            self.start = kept.seqs[n - 1] + 1
            kept.cut(0, kept.seqs[n - 1])

    def complete(self, stored: int) -> bool:
        """Whether it holds every stored event (`stored` of them)."""
        return self.kept.backlog.count == stored


class SqliteLog:
    """The durable log in an open sqlite connection (autocommit mode: the group is explicit)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._in_group = False
        self._ids: dict[str, int] = {}
        self._backlogs: dict[str, Backlog] = {}
        self._committed: dict[str, Backlog] = {}
        self._moved: set[str] = set()  # durables whose position changed in the group
        self._tails: dict[str, _Tail] = {}
        self._deletes: dict[str, list[tuple[int, int]]] = {}  # rows to delete at the commit

    def _failed(self, exc: Exception) -> StorageError:
        return StorageError(f"cannot write to {self._path}: {exc}")

    def load(self) -> None:
        """What the file holds for each durable (at open): its counts are kept beside its
        position, written with the same commits as its events, so no event is read here."""
        try:
            positions = self._db.execute(
                "SELECT name, next_seq, acked, id, stored, stored_bytes FROM durables"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot read the durable subscribers of {self._path}: {exc}"
            ) from None
        for name, next_seq, acked, ident, count, size in positions:
            self._ids[name] = ident
            self._backlogs[name] = Backlog(count, size, next_seq, acked)
            self._tails[name] = _Tail(start=next_seq)  # complete once what is stored goes
        self._committed = copy.deepcopy(self._backlogs)

    def durables(self) -> Iterable[StoredDurable]:
        """Every durable subscriber kept, with its position."""
        try:
            rows = self._db.execute(
                "SELECT name, sid, endpoint, policy, queue, max_stall, key, owner, subjects, "
                "patterns, stream, next_seq, acked FROM durables ORDER BY id"
            ).fetchall()
            return [_durable(*row) for row in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise StorageError(
                f"cannot read the durable subscribers of {self._path}: {exc}"
            ) from None

    def put_durable(self, record: StoredDurable) -> None:
        """Keep `record` (its position stays the log's own once it has one), committed."""
        self.commit()
        backlog = self._backlogs.get(record.name)
        next_seq = record.next_seq if backlog is None else backlog.next_seq
        acked = record.acked if backlog is None else backlog.acked
        ident = self._ids.get(record.name, max(self._ids.values(), default=0) + 1)
        self._run(
            "INSERT OR REPLACE INTO durables VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.name,
                record.sid,
                record.endpoint,
                record.policy,
                record.queue_size,
                record.max_stall,
                record.key,
                record.owner,
                json.dumps(list(record.subjects)),
                json.dumps(list(record.patterns)),
                record.stream,
                next_seq,
                acked,
                ident,
                0 if backlog is None else backlog.count,
                0 if backlog is None else backlog.size,
            ),
        )
        self._ids[record.name] = ident
        if backlog is None:
            self._backlogs[record.name] = Backlog(0, 0, next_seq, acked)
            self._committed[record.name] = Backlog(0, 0, next_seq, acked)
            self._tails[record.name] = _Tail(start=next_seq)

    def delete_durable(self, name: str) -> None:
        """Forget the durable `name` and its events, committed."""
        self.commit()
        ident = self._ids.get(name)
        if ident is None:
            return
        self._begin()
        try:
            self._db.execute("DELETE FROM stored WHERE key BETWEEN ? AND ?", _keys(ident, 0, None))
            self._db.execute("DELETE FROM durables WHERE name = ?", (name,))
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(exc) from None
        self._moved.discard(name)
        self.commit()
        for table in (self._ids, self._backlogs, self._committed, self._tails):
            table.pop(name, None)

    def append(self, name: str, rows: list[Row]) -> None:
        """Keep `rows` for `name`, in the group."""
        self._begin()
        base = self._ids[name] << _SEQ_BITS
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO stored VALUES (?, ?, ?, ?)",
                [(base + seq, time, event, payload) for seq, event, payload, time in rows],
            )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        size = sum([len(event) + len(payload) for _, event, payload, _ in rows])
        backlog = self._backlogs[name]
        backlog.count += len(rows)
        backlog.size += size
        backlog.next_seq = rows[-1][0] + 1
        self._moved.add(name)
        self._tails[name].add(rows, size)

    def ack(self, name: str, seq: int) -> None:
        """`name` consumed everything up to `seq`: forget those events, in the group."""
        backlog = self._backlogs[name]
        backlog.acked = max(backlog.acked, seq)
        self._cut(name, 0, seq)
        self._moved.add(name)

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        """Forget `name`'s events from seqs[0] to seqs[1], in the group; how many."""
        return self._cut(name, *seqs)

    def _cut(self, name: str, low: int, high: int) -> int:
        """Remove `name`'s events from `low` to `high`: counted from the tail when it holds all
        of them (the rows go at the commit), else deleted now, counted by the file."""
        self._begin()
        backlog, tail = self._backlogs[name], self._tails[name]
        self._moved.add(name)
        if tail.complete(backlog.count):
            size = tail.kept.backlog.size
            gone = tail.kept.cut(low, high)
            backlog.count -= gone
            backlog.size -= size - tail.kept.backlog.size
            if gone:  # not past the last seq now: those to come are not to go
                self._deletes.setdefault(name, []).append((low, min(high, backlog.next_seq - 1)))
            return gone
        tail.kept.cut(low, high)
        try:
            self._delete_now(name)
            sizes = self._db.execute(
                "DELETE FROM stored WHERE key BETWEEN ? AND ? "
                "RETURNING length(event) + length(payload)",
                _keys(self._ids[name], low, high),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        backlog.count -= len(sizes)
        backlog.size -= sum(size for (size,) in sizes)
        return len(sizes)

    def skip(self, name: str, next_seq: int) -> None:
        """Seqs of `name` below `next_seq` are taken: never numbered again (in the group)."""
        self._begin()
        backlog = self._backlogs[name]
        backlog.next_seq = max(backlog.next_seq, next_seq)
        self._moved.add(name)

    def read(self, name: str, start: int, most: int, most_bytes: int) -> list[Row]:
        """`name`'s events from seq `start` on: at most `most`, and `most_bytes` of payload."""
        tail = self._tails.get(name)
        if tail is None:
            return []
        if start >= tail.start or tail.complete(self._backlogs[name].count):
            kept = tail.kept
            i = bisect.bisect_left(kept.seqs, start)
            return fitting(kept.rows[i : i + most], most_bytes)
        ident = self._ids[name]
        try:
            self._delete_now(name)
            found = self._db.execute(
                "SELECT key, event, payload, time FROM stored WHERE key BETWEEN ? AND ? "
                "ORDER BY key LIMIT ?",
                (*_keys(ident, start, None), most),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self._path}: {exc}") from None
        mask = (1 << _SEQ_BITS) - 1
        rows = [(k & mask, bytes(e), bytes(p), t) for k, e, p, t in found]
        return fitting(rows, most_bytes)

    def backlog(self, name: str) -> Backlog:
        """What the log holds for `name` (a copy)."""
        backlog = self._backlogs.get(name)
        if backlog is None:
            return Backlog()
        return Backlog(backlog.count, backlog.size, backlog.next_seq, backlog.acked)

    def commit(self) -> None:
        """Make the group permanent; on StorageError nothing of it was kept."""
        if not self._in_group:
            return
        try:
            for name in list(self._deletes):
                self._delete_now(name)
            for name in self._moved:
                backlog = self._backlogs[name]
                self._db.execute(
                    "UPDATE durables SET next_seq = ?, acked = ?, stored = ?, stored_bytes = ? "
                    "WHERE name = ?",
                    (backlog.next_seq, backlog.acked, backlog.count, backlog.size, name),
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(exc) from None
        self._in_group = False
        self._deletes.clear()
        for name in self._moved:
            self._committed[name] = copy.copy(self._backlogs[name])
        self._moved.clear()

    # --- internals -----------------------------------------------------------------------------

    def _begin(self) -> None:
        if self._in_group:
            return
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        self._in_group = True

    def _rollback(self) -> None:
        """Keep nothing of the group: the file as at the last commit, and so the counts; the
        tails start again empty (the file is read until they hold everything again)."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # else sqlite rolled back on its own
                self._db.execute("ROLLBACK")
        self._in_group = False
        self._deletes.clear()
        for name in self._moved:
            kept = self._committed.get(name)
            if kept is None:
                self._backlogs.pop(name, None)
                continue
            self._backlogs[name] = copy.copy(kept)
            if name in self._tails:  # nothing is stored from the committed next seq on
                self._tails[name] = _Tail(start=kept.next_seq)
        self._moved.clear()

    def _delete_now(self, name: str) -> None:
        """Delete the rows of `name` whose deletion waits for the commit (before the file is
        read or counted for it); sqlite3.Error goes to the caller."""
        ranges = self._deletes.pop(name, None)
        if ranges:
            ident = self._ids[name]
            self._db.executemany(
                "DELETE FROM stored WHERE key BETWEEN ? AND ?",
                [_keys(ident, low, high) for low, high in ranges],
            )

    def _run(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None


def _keys(ident: int, low: int, high: int | None) -> tuple[int, int]:
    """The keys of durable `ident`'s events from seq `low` to `high` (None: the last)."""
    base = ident << _SEQ_BITS
    top = (1 << _SEQ_BITS) - 1 if high is None else min(high, (1 << _SEQ_BITS) - 1)
    return base + max(low, 0), base + top


def _durable(*row: Any) -> StoredDurable:
    """A durables row as a record; the two lists are JSON."""
    name, sid, endpoint, policy, queue, stall, key, owner, subjects, patterns, *position = row
    stream, next_seq, acked = position
    subs, pats = tuple(json.loads(subjects)), tuple(json.loads(patterns))
    return StoredDurable(
        name, sid, endpoint, policy, queue, stall, key, owner, subs, pats, stream, next_seq, acked
    )
