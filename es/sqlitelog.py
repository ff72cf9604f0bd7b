"""Durable subscribers and their events in sqlite (es.durablelog's protocol), beside the
subscribers and retained events of es.storage, in the same file.

Writes of events (append, ack, drop) join one transaction, the group, that `commit()` ends: one
commit (and, with fsync "group", one fsync of the write-ahead log) for everything a turn of the
server's loop wrote, not one per event. The counts of each durable's backlog are kept in memory
as well, so that the broker's checks on the hot path never query the file; a failed commit puts
them back as they were at the last commit.
"""

from __future__ import annotations

import contextlib
import copy
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from es.daemon.storage import StorageError
from es.durablelog import Backlog, Row, StoredDurable, fitting, row_size

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
    ],
    "stored": ["durable", "seq", "time", "event", "payload"],
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
    acked INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS stored (
    durable TEXT NOT NULL,
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    event BLOB NOT NULL,
    payload BLOB NOT NULL,
    PRIMARY KEY (durable, seq)
) WITHOUT ROWID;
"""


class SqliteLog:
    """The durable log in an open sqlite connection (autocommit mode: the group is explicit)."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self._db = db
        self._path = path
        self._in_group = False
        self._backlogs: dict[str, Backlog] = {}
        self._committed: dict[str, Backlog] = {}
        self._moved: set[str] = set()  # durables whose position changed in the group

    def _failed(self, exc: Exception) -> StorageError:
        return StorageError(f"cannot write to {self._path}: {exc}")

    def load(self) -> None:
        """Count what the file holds for each durable (at open)."""
        try:
            positions = self._db.execute("SELECT name, next_seq, acked FROM durables").fetchall()
            sizes = self._db.execute(
                "SELECT durable, count(*), sum(length(event) + length(payload)) FROM stored "
                "GROUP BY durable"
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(
                f"cannot read the durable subscribers of {self._path}: {exc}"
            ) from None
        counted = {name: (count, size or 0) for name, count, size in sizes}
        for name, next_seq, acked in positions:
            count, size = counted.get(name, (0, 0))
            self._backlogs[name] = Backlog(count, size, next_seq, acked)
        self._committed = copy.deepcopy(self._backlogs)

    def durables(self) -> Iterable[StoredDurable]:
        """Every durable subscriber kept, with its position."""
        try:
            rows = self._db.execute(
                "SELECT name, sid, endpoint, policy, queue, max_stall, key, owner, subjects, "
                "patterns, stream, next_seq, acked FROM durables ORDER BY rowid"
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
        self._run(
            "INSERT OR REPLACE INTO durables VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ),
        )
        if backlog is None:
            self._backlogs[record.name] = Backlog(0, 0, next_seq, acked)
            self._committed[record.name] = Backlog(0, 0, next_seq, acked)

    def delete_durable(self, name: str) -> None:
        """Forget the durable `name` and its events, committed."""
        self.commit()
        self._begin()
        try:
            self._db.execute("DELETE FROM stored WHERE durable = ?", (name,))
            self._db.execute("DELETE FROM durables WHERE name = ?", (name,))
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(exc) from None
        self._moved.discard(name)
        self.commit()
        self._backlogs.pop(name, None)
        self._committed.pop(name, None)

    def append(self, name: str, rows: list[Row]) -> None:
        """Keep `rows` for `name`, in the group."""
        self._begin()
        try:
            self._db.executemany(
                "INSERT OR REPLACE INTO stored VALUES (?, ?, ?, ?, ?)",
                [(name, seq, time, event, payload) for seq, event, payload, time in rows],
            )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        backlog = self._backlog(name)
        backlog.count += len(rows)
        backlog.size += sum(map(row_size, rows))
        backlog.next_seq = rows[-1][0] + 1
        self._moved.add(name)

    def ack(self, name: str, seq: int) -> None:
        """`name` consumed everything up to `seq`: forget those events, in the group."""
        backlog = self._backlog(name)
        backlog.acked = max(backlog.acked, seq)
        self._cut(name, 0, seq)
        self._moved.add(name)

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        """Forget `name`'s events from seqs[0] to seqs[1], in the group; how many."""
        return self._cut(name, *seqs)

    def _cut(self, name: str, low: int, high: int) -> int:
        self._begin()
        try:
            gone = self._db.execute(
                "DELETE FROM stored WHERE durable = ? AND seq BETWEEN ? AND ? "
                "RETURNING length(event) + length(payload)",
                (name, low, high),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        backlog = self._backlog(name)
        backlog.count -= len(gone)
        backlog.size -= sum(size for (size,) in gone)
        self._moved.add(name)
        return len(gone)

    def skip(self, name: str, next_seq: int) -> None:
        """Seqs of `name` below `next_seq` are taken: never numbered again (in the group)."""
        self._begin()
        backlog = self._backlog(name)
        backlog.next_seq = max(backlog.next_seq, next_seq)
        self._moved.add(name)

    def read(self, name: str, start: int, most: int, most_bytes: int) -> list[Row]:
        """`name`'s events from seq `start` on: at most `most`, and `most_bytes` of payload."""
        try:
            found = self._db.execute(
                "SELECT seq, event, payload, time FROM stored WHERE durable = ? AND seq >= ? "
                "ORDER BY seq LIMIT ?",
                (name, start, most),
            ).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"cannot read {self._path}: {exc}") from None
        return fitting([(s, bytes(e), bytes(p), t) for s, e, p, t in found], most_bytes)

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
            for name in self._moved:
                backlog = self._backlogs[name]
                self._db.execute(
                    "UPDATE durables SET next_seq = ?, acked = ? WHERE name = ?",
                    (backlog.next_seq, backlog.acked, name),
                )
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise self._failed(exc) from None
        self._in_group = False
        for name in self._moved:
            self._committed[name] = copy.copy(self._backlogs[name])
        self._moved.clear()

    # --- internals -----------------------------------------------------------------------------

    def _backlog(self, name: str) -> Backlog:
        return self._backlogs.setdefault(name, Backlog())

    def _begin(self) -> None:
        if self._in_group:
            return
        try:
            self._db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        self._in_group = True

    def _rollback(self) -> None:
        """Keep nothing of the group: the file as at the last commit, and so the counts."""
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # else sqlite rolled back on its own
                self._db.execute("ROLLBACK")
        self._in_group = False
        for name in self._moved:
            kept = self._committed.get(name)
            if kept is None:
                self._backlogs.pop(name, None)
            else:
                self._backlogs[name] = copy.copy(kept)
        self._moved.clear()

    def _run(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None


def _durable(*row: Any) -> StoredDurable:
    """A durables row as a record; the two lists are JSON."""
    name, sid, endpoint, policy, queue, stall, key, owner, subjects, patterns, *position = row
    stream, next_seq, acked = position
    subs, pats = tuple(json.loads(subjects)), tuple(json.loads(patterns))
    return StoredDurable(
        name, sid, endpoint, policy, queue, stall, key, owner, subs, pats, stream, next_seq, acked
    )
