"""Checking a sqlite file before a daemon makes it its storage: ours, or refused untouched."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import Path

from es.daemon.storage import StorageError

__all__ = ["check_storage_file"]


def check_storage_file(
    path: Path, tables: dict[str, list[str]], older: Iterable[dict[str, list[str]]] = ()
) -> dict[str, list[str]]:
    """Refuse, with StorageError and without changing a byte of it, a file that is not a
    daemon's storage (its tables are neither `tables` nor one of the `older` layouts, by name
    and columns in order) or that sqlite finds damaged. A missing or empty file is fine: the
    daemon makes it its storage. Returns the tables found (empty for a new file)."""
    if not path.exists() or path.stat().st_size == 0:
        return {}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open {path}: {exc}") from None
    try:
        found = {
            name: [row[1] for row in db.execute(f"PRAGMA table_info({_quoted(name)})")]
            for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:
        raise StorageError(f"{path} is not a readable sqlite file: {exc}") from None
    finally:
        db.close()
    if found and found != tables and found not in list(older):
        names = ", ".join(sorted(found))
        raise StorageError(f"{path} is not this daemon's storage (it holds tables {names})")
    if problems != ["ok"]:
        raise StorageError(f"{path} is damaged: {'; '.join(map(str, problems[:3]))}")
    return found


def _quoted(identifier: str) -> str:
    """An SQL identifier in double quotes, whatever a foreign file named it."""
    return '"' + identifier.replace('"', '""') + '"'
