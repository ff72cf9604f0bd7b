"""The sqlite log (es.sqlitelog) behaves as the memory log (es.durablelog.MemoryLog), its model,
whatever the order of appends, ACKs, drops, reads and commits, with its in-memory tail small
or large, and a file opened again gives back what was committed."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from es import sqlitelog
from es.durablelog import MemoryLog, Row, StoredDurable
from es.storage import SqliteStorage

EP = "tcp://127.0.0.1:5000"

op = st.one_of(
    st.tuples(st.just("append"), st.sampled_from("ab"), st.integers(1, 9)),
    st.tuples(st.just("ack"), st.sampled_from("ab"), st.integers(0, 12)),
    st.tuples(st.just("drop"), st.sampled_from("ab"), st.integers(0, 12)),
    st.tuples(st.just("commit"), st.just("a"), st.just(0)),
    st.tuples(st.just("reopen"), st.just("a"), st.just(0)),
)


def _record(name: str) -> StoredDurable:
    return StoredDurable(name, f"sid-{name}", EP, "drop", 4, 0.0, None, None, ("x",), (), 7)


@pytest.mark.parametrize("tail", [(3, 40), (65_536, 8 << 20)], ids=["small-tail", "default"])
def test_the_sqlite_log_keeps_what_the_memory_log_keeps(
    tail: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlitelog, "TAIL_EVENTS", tail[0])
    monkeypatch.setattr(sqlitelog, "TAIL_BYTES", tail[1])
    check()


@settings(max_examples=150, deadline=None)
@given(st.lists(op, max_size=40))
def check(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "es.db"
        store = SqliteStorage(path)
        model = MemoryLog()
        for name in "ab":
            store.log.put_durable(_record(name))
            model.put_durable(_record(name))
        for kind, name, n in ops:
            if kind == "append":
                first = model.backlog(name).next_seq
                rows: list[Row] = [
                    (first + i, b"e%d" % (first + i), b"p" * (first + i), float(first + i))
                    for i in range(n)
                ]
                store.log.append(name, rows)
                model.append(name, rows)
            elif kind == "ack":
                seq = min(n, model.backlog(name).next_seq - 1)
                store.log.ack(name, seq)
                model.ack(name, seq)
            elif kind == "drop":
                low = model.backlog(name).acked + 1
                assert store.log.drop(name, (low, low + n)) == model.drop(name, (low, low + n))
            elif kind == "commit":
                store.log.commit()
            else:  # what is committed comes back from the file
                store.log.commit()
                store.close()
                store = SqliteStorage(path)
            for each in "ab":
                assert store.log.backlog(each) == model.backlog(each)
                for start in (1, model.backlog(each).acked + 1, model.backlog(each).next_seq - 2):
                    got = store.log.read(each, start, 5, 1 << 20)
                    assert got == model.read(each, start, 5, 1 << 20)
        store.close()


def test_a_file_of_the_versions_before_durable_subscribers_is_brought_up_to_date(
    tmp_path: Path,
) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE subscribers (sid TEXT PRIMARY KEY, endpoint TEXT NOT NULL,
            policy TEXT NOT NULL, queue INTEGER NOT NULL, max_stall REAL NOT NULL, key TEXT,
            name TEXT, subjects TEXT NOT NULL, patterns TEXT NOT NULL, owner TEXT);
        CREATE TABLE retained (key TEXT PRIMARY KEY, subject TEXT NOT NULL, fmt INTEGER NOT NULL,
            payload BLOB NOT NULL, time REAL NOT NULL, expires REAL);
        INSERT INTO subscribers VALUES ('s', 'tcp://127.0.0.1:1', 'block', 10, 1.0, NULL, NULL,
            '["a"]', '[]', NULL);
        """
    )
    db.close()
    store = SqliteStorage(path)
    assert [r.sid for r in store.subscribers()] == ["s"]
    store.log.put_durable(_record("a"))
    store.close()
    again = SqliteStorage(path)
    assert [r.name for r in again.log.durables()] == ["a"]
    again.close()
