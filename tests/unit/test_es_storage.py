"""The event server's storages: what sqlite keeps survives closing and opening again."""

from __future__ import annotations

from pathlib import Path

import pytest

from es.storage import MemoryStorage, StoredEvent, StoredSubscriber, open_storage

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
    store.put_retained("status", StoredEvent("Status", 1, b"\xa2ok", 10.0, None))
    store.put_retained("gone", StoredEvent("gone", 1, b"\x01", 10.0, 99.0))
    store.delete_retained("gone")
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
