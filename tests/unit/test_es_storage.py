"""The event server's storages: what sqlite keeps survives closing and opening again."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from es.records import MemoryStorage, StorageError, StoredEvent, StoredSubscriber
from es.storage import open_storage

RECORD = StoredSubscriber(
    "s1", "tcp://127.0.0.1:5000", "drop", 10, 1.5, None, "boiler", ("a", "b"), ("^c",)
)


def test_sqlite_keeps_subscribers_and_retained_events(tmp_path: Path) -> None:
    path = tmp_path / "es.db"
    store = open_storage(f"sqlite:{path}")
    store.put_subscriber(RECORD)
    store.put_subscriber(StoredSubscriber("s2", "tcp://127.0.0.1:5001", "block", 1000, 5.0))
    store.put_subscriber(RECORD)  # written again: replaced, not doubled
    store.delete_subscriber("s2")
    store.write_retained(
        [
            ("status", StoredEvent("Status", 1, b"\xa2ok", 10.0, None)),
            ("gone", StoredEvent("gone", 1, b"\x01", 10.0, 99.0)),
        ]
    )
    store.write_retained([("gone", None)])
    store.close()
    again = open_storage(f"sqlite:{path}")
    assert list(again.subscribers()) == [RECORD]
    assert list(again.retained()) == [StoredEvent("Status", 1, b"\xa2ok", 10.0, None)]
    again.close()


def test_memory_keeps_nothing_and_bad_specs_are_refused() -> None:
    store = MemoryStorage()
    store.put_subscriber(RECORD)
    assert list(store.subscribers()) == [] and list(store.retained()) == []
    with pytest.raises(ValueError, match="sqlite:PATH"):
        open_storage("redis://x")


def test_a_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "theirs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
    db.execute("INSERT INTO accounts VALUES (1, 'alice')")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(StorageError, match="not this daemon's storage"):
        open_storage(f"sqlite:{path}")
    assert path.read_bytes() == before  # not switched to WAL, nothing added
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"shopping list\n" * 500)
    with pytest.raises(StorageError, match="not a readable sqlite file"):
        open_storage(f"sqlite:{path}")
    assert path.read_bytes() == b"shopping list\n" * 500


def test_a_damaged_storage_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "es.db"
    store = open_storage(f"sqlite:{path}")
    for n in range(300):  # enough rows for pages in the middle of the file
        store.put_subscriber(StoredSubscriber(f"s{n}", "tcp://127.0.0.1:5000", "drop", 10, 1.0))
    store.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[3 * page : 4 * page] = b"\xff" * page  # a middle page overwritten
    path.write_bytes(bytes(data))
    with pytest.raises(StorageError, match=r"damaged|not a readable"):
        open_storage(f"sqlite:{path}")


def test_every_sqlite_failure_is_a_storage_error(tmp_path: Path) -> None:
    path = tmp_path / "es.db"
    store = open_storage(f"sqlite:{path}")
    store.close()  # any later use fails inside sqlite
    with pytest.raises(StorageError):
        store.put_subscriber(RECORD)
    with pytest.raises(StorageError):
        store.write_retained([("k", StoredEvent("k", 1, b"x", 1.0, None))])
    with pytest.raises(StorageError):
        store.compact()
    assert MemoryStorage().compact() == 0


def test_space_freed_by_acknowledged_events_goes_back_to_the_file_system(tmp_path: Path) -> None:
    from es.durablelog import StoredDurable
    from es.storage import COMPACT_FROM, COMPACT_PAGES

    path = tmp_path / "es.db"
    storage = open_storage(f"sqlite:{path}")
    record = StoredDurable(
        "d", "s", "tcp://127.0.0.1:1", "drop", 10, 1.0, None, None, ("a",), (), 7
    )
    storage.log.put_durable(record)
    rows = [(seq, b"e", b"x" * 4000, 0.0) for seq in range(1, 5001)]  # about 20 MB
    storage.log.append("d", rows)
    storage.log.commit()
    assert storage.compact() == 0  # nothing freed yet
    pages = _pages(path)
    storage.log.ack("d", 5000)
    storage.log.commit()
    given = storage.compact()
    assert given == COMPACT_PAGES  # one bounded step
    while storage.compact():
        pass
    assert _pages(path) < pages - 4000  # what is left is below COMPACT_FROM, or a quarter
    storage.close()
    assert COMPACT_FROM <= COMPACT_PAGES


def test_a_file_made_before_incremental_vacuum_keeps_its_free_pages(tmp_path: Path) -> None:
    from es.durablelog import StoredDurable

    path = tmp_path / "old.db"
    open_storage(f"sqlite:{path}").close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")  # as the files of earlier versions were
    db.close()
    storage = open_storage(f"sqlite:{path}")
    record = StoredDurable(
        "d", "s", "tcp://127.0.0.1:1", "drop", 10, 1.0, None, None, ("a",), (), 7
    )
    storage.log.put_durable(record)
    storage.log.append("d", [(seq, b"e", b"x" * 4000, 0.0) for seq in range(1, 2001)])
    storage.log.commit()
    storage.log.ack("d", 2000)
    storage.log.commit()
    assert storage.compact() == 0  # sqlite reuses them
    storage.close()


def _pages(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA page_count").fetchone()[0])
    finally:
        db.close()
