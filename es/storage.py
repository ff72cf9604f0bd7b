"""Where the event server keeps what must outlive it: subscribers and retained events.

Memory storage (the default) keeps nothing: a restart forgets everyone, as Pyro's event server
did. Sqlite storage (`--storage sqlite:PATH`, after Pyro 4's messagebus) writes each change before
the request that made it is answered, so a server that is killed and started again knows its
subscribers and retained events, and delivers to them without any action by the clients.
The records, the Storage protocol and MemoryStorage are in es.records (no driver there).

Invariants:
- Storages hold data and nothing else: no rules, no clock. The broker decides what to keep and
  writes it, through the Storage protocol, *before* it changes anything in memory: a write that
  fails fails the request (STORAGE_FAILED) and leaves the server as it was.
- A file that is not ours, or that sqlite finds damaged, is refused at open, untouched.
- Retained events are stored with a wall-clock expiry: a monotonic time means nothing to the
  next process.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from es.daemon.storage import StorageError, storage_path
from es.daemon.storagefile import check_storage_file
from es.durablelog import DurableLog
from es.records import MemoryStorage, Storage, StoredEvent, StoredSubscriber
from es.sqlitelog import DURABLE_SCHEMA, DURABLE_TABLES, SqliteLog

__all__ = ["SqliteStorage", "open_storage"]


_TABLES = {
    "subscribers": [
        "sid",
        "endpoint",
        "policy",
        "queue",
        "max_stall",
        "key",
        "name",
        "subjects",
        "patterns",
        "owner",
    ],
    "retained": ["key", "subject", "fmt", "payload", "time", "expires"],
}
# The tables of earlier versions, brought up to date at open.
_BEFORE_DURABLE = dict(_TABLES)
_BEFORE_OWNER = {**_TABLES, "subscribers": _TABLES["subscribers"][:-1]}
_TABLES.update(DURABLE_TABLES)
# sqlite's `synchronous` for each fsync setting: FULL syncs the write-ahead log at each commit;
# NORMAL leaves it to the OS (a killed server loses nothing, a crashed machine may).
_SYNCHRONOUS = {"group": "FULL", "every": "FULL", "os": "NORMAL"}
# Free pages (4 KiB each) given back to the file system at most per `compact` (about 40 ms), and
# how many there must be first (4 MiB).
COMPACT_PAGES = 2048
COMPACT_FROM = 1024
_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    sid TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    policy TEXT NOT NULL,
    queue INTEGER NOT NULL,
    max_stall REAL NOT NULL,
    key TEXT,
    name TEXT,
    subjects TEXT NOT NULL,
    patterns TEXT NOT NULL,
    owner TEXT
);
CREATE TABLE IF NOT EXISTS retained (
    key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    fmt INTEGER NOT NULL,
    payload BLOB NOT NULL,
    time REAL NOT NULL,
    expires REAL
);
"""


def _subscriber(*row: Any) -> StoredSubscriber:
    """A subscribers row (columns as in _TABLES) as a record; the two lists are JSON."""
    sid, endpoint, policy, queue, stall, key, name, subjects, patterns, owner = row
    subs, pats = tuple(json.loads(subjects)), tuple(json.loads(patterns))
    return StoredSubscriber(sid, endpoint, policy, queue, stall, key, name, subs, pats, owner)


class SqliteStorage:
    """One sqlite file; every write is committed before the call returns."""

    durable = True

    def __init__(self, path: str | Path, fsync: str = "group") -> None:
        self.path = Path(path)
        found = check_storage_file(self.path, _TABLES, (_BEFORE_DURABLE, _BEFORE_OWNER))
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)
            if not found:  # a new file: free pages can be given back (`compact`)
                self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")  # a killed process loses no commit
            self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[fsync]}")
            if found == _BEFORE_OWNER:
                self._db.execute("ALTER TABLE subscribers ADD COLUMN owner TEXT")
            self._db.executescript(_SCHEMA + DURABLE_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from None
        log = SqliteLog(self._db, self.path)
        log.load()
        self.log: DurableLog = log

    def _failed(self, exc: sqlite3.Error) -> StorageError:
        return StorageError(f"cannot write to {self.path}: {exc}")

    def compact(self) -> int:
        """Give pages that deleted rows freed back to the file system, at most COMPACT_PAGES
        at a time, once there are COMPACT_FROM of them and they are a quarter of the file or
        more. Returns the pages given back. Files made before incremental vacuum was turned
        on keep their free pages for sqlite to reuse (`VACUUM` shrinks them)."""
        try:
            free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            if free < COMPACT_FROM or 4 * free < pages or self._db.in_transaction:
                return 0
            self._db.executescript(f"PRAGMA incremental_vacuum({COMPACT_PAGES});")
            left = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return int(free - left)

    def subscribers(self) -> Iterable[StoredSubscriber]:
        """Every subscriber kept."""
        try:
            rows = self._db.execute(
                "SELECT sid, endpoint, policy, queue, max_stall, key, name, subjects, patterns, "
                "owner FROM subscribers ORDER BY rowid"
            ).fetchall()
            return [_subscriber(*row) for row in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise StorageError(f"cannot read the subscribers of {self.path}: {exc}") from None

    def put_subscriber(self, record: StoredSubscriber) -> None:
        """Keep `record` (replacing its sid's), committed when this returns."""
        self.log.commit()
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO subscribers VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.sid,
                    record.endpoint,
                    record.policy,
                    record.queue_size,
                    record.max_stall,
                    record.key,
                    record.name,
                    json.dumps(list(record.subjects)),
                    json.dumps(list(record.patterns)),
                    record.owner,
                ),
            )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def delete_subscriber(self, sid: str) -> None:
        """Forget the subscriber `sid`, committed when this returns."""
        self.log.commit()
        try:
            self._db.execute("DELETE FROM subscribers WHERE sid = ?", (sid,))
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def retained(self) -> Iterable[StoredEvent]:
        """Every retained event kept."""
        try:
            rows = self._db.execute(
                "SELECT subject, fmt, payload, time, expires FROM retained"
            ).fetchall()
            return [StoredEvent(s, f, bytes(p), t, e) for s, f, p, t, e in rows]
        except (sqlite3.Error, ValueError, TypeError) as exc:
            raise StorageError(f"cannot read the retained events of {self.path}: {exc}") from None

    def write_retained(self, changes: Sequence[tuple[str, StoredEvent | None]]) -> None:
        """Keep or forget each key's retained event, in one transaction."""
        self.log.commit()
        try:
            self._db.execute("BEGIN")
            try:
                for key, event in changes:
                    if event is None:
                        self._db.execute("DELETE FROM retained WHERE key = ?", (key,))
                        continue
                    self._db.execute(
                        "INSERT OR REPLACE INTO retained VALUES (?, ?, ?, ?, ?, ?)",
                        (key, event.subject, event.fmt, event.payload, event.time, event.expires),
                    )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def close(self) -> None:
        """Close the file, with what the last group wrote (if it can still be written)."""
        with contextlib.suppress(StorageError):
            self.log.commit()
        self._db.close()


def open_storage(spec: str, fsync: str = "group") -> Storage:
    """`memory`, or `sqlite:PATH` (ValueError for anything else; StorageError for a file that
    cannot be used)."""
    path = storage_path(spec)
    return MemoryStorage() if path is None else SqliteStorage(path, fsync)
