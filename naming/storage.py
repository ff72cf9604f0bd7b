"""Where the registry keeps its entries and groups: in memory, or in a sqlite file. The entry,
the Storage protocol and MemoryStorage are in naming.records (no driver there).

Invariants:
- Storages hold data and nothing else: no rules, no clock. The registry decides what is valid.
- A write is durable when the call returns (sqlite commits every change), so a name server
  that is killed loses nothing it acknowledged.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from es.daemon.storage import StorageError, storage_path
from es.daemon.storagefile import check_storage_file
from naming.records import Entry, MemoryStorage, Storage

__all__ = ["SqliteStorage", "open_storage"]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    name TEXT PRIMARY KEY, uri TEXT NOT NULL, meta TEXT NOT NULL,
    lease REAL, expires REAL, token TEXT
);
CREATE TABLE IF NOT EXISTS groups (name TEXT PRIMARY KEY);
"""


_TABLES = {
    "entries": ["name", "uri", "meta", "lease", "expires", "token"],
    "groups": ["name"],
}


class SqliteStorage:
    """Names kept in a sqlite file, so they survive a restart. Every sqlite failure (a full
    disk, a damaged file) is raised as StorageError; a foreign or damaged file is refused at
    open, untouched."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        check_storage_file(self.path, _TABLES)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None)  # autocommit: durable
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open {self.path}: {exc}") from None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        """One statement's rows; StorageError if sqlite fails."""
        try:
            return self._db.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"storage {self.path} failed: {exc}") from None

    def get(self, name: str) -> Entry | None:
        """The entry for `name`, if there is one."""
        rows = self._run(
            "SELECT name, uri, meta, lease, expires, token FROM entries WHERE name = ?", (name,)
        )
        return Entry(*rows[0]) if rows else None

    def put(self, entry: Entry) -> None:
        """Keep `entry`, replacing one of the same name (committed when this returns)."""
        self._run(
            "INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?, ?)",
            (entry.name, entry.uri, entry.meta, entry.lease, entry.expires, entry.token),
        )

    def delete(self, name: str) -> None:
        """Forget `name`."""
        self._run("DELETE FROM entries WHERE name = ?", (name,))

    def entries(self) -> Iterable[Entry]:
        """Every entry."""
        rows = self._run("SELECT name, uri, meta, lease, expires, token FROM entries")
        return [Entry(*row) for row in rows]

    def has_group(self, group: str) -> bool:
        """Whether `group` exists."""
        return bool(self._run("SELECT 1 FROM groups WHERE name = ?", (group,)))

    def add_group(self, group: str) -> None:
        """Create `group`."""
        self._run("INSERT OR IGNORE INTO groups VALUES (?)", (group,))

    def delete_group(self, group: str) -> None:
        """Delete `group`."""
        self._run("DELETE FROM groups WHERE name = ?", (group,))

    def groups(self) -> Iterable[str]:
        """Every group."""
        return [row[0] for row in self._run("SELECT name FROM groups")]

    def close(self) -> None:
        """Close the file."""
        self._db.close()


def open_storage(spec: str) -> Storage:
    """`memory`, or `sqlite:PATH` (ValueError for anything else)."""
    path = storage_path(spec)
    return MemoryStorage() if path is None else SqliteStorage(path)
