"""A storage for broker tests: keeps what it is given in dicts, and fails on demand."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any

from es.durablelog import MemoryLog, Row, StoredDurable
from es.records import StorageError, StoredEvent, StoredSubscriber


class KeptLog(MemoryLog):
    """The memory log with sqlite's group semantics: a commit fails while `storage.full` is set,
    and then keeps nothing of its group (the log as at the last commit)."""

    def __init__(self, storage: KeptStorage) -> None:
        super().__init__()
        self.storage = storage
        self._before: Any = None
        self.commits = 0

    def _group(self) -> None:
        if self._before is None:
            self._before = copy.deepcopy((self._records, self._kept))

    def put_durable(self, record: StoredDurable) -> None:
        self.commit()
        self.storage._writing()
        super().put_durable(record)

    def delete_durable(self, name: str) -> None:
        self.commit()
        self.storage._writing()
        super().delete_durable(name)

    def append(self, name: str, rows: list[Row]) -> None:
        self._group()
        super().append(name, rows)

    def ack(self, name: str, seq: int) -> None:
        self._group()
        super().ack(name, seq)

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        self._group()
        return super().drop(name, seqs)

    def skip(self, name: str, next_seq: int) -> None:
        self._group()
        super().skip(name, next_seq)

    def commit(self) -> None:
        if self._before is None:
            return
        if self.storage.full:
            self._records, self._kept = self._before
            self._before = None
            raise StorageError("cannot write to kept.db: database or disk is full")
        self._before = None
        self.commits += 1


class KeptStorage:
    """es.storage.Storage in dicts; while `full` is set every write raises StorageError, as
    sqlite does on a full disk."""

    durable = True

    def __init__(self) -> None:
        self.subscriber_records: dict[str, StoredSubscriber] = {}
        self.retained_events: dict[str, StoredEvent] = {}
        self.full = False
        self.writes = 0
        self.log = KeptLog(self)

    def compact(self) -> int:
        return 0

    def _writing(self) -> None:
        if self.full:
            raise StorageError("cannot write to kept.db: database or disk is full")
        self.writes += 1

    def subscribers(self) -> Iterable[StoredSubscriber]:
        return list(self.subscriber_records.values())

    def put_subscriber(self, record: StoredSubscriber) -> None:
        self._writing()
        self.subscriber_records[record.sid] = record

    def delete_subscriber(self, sid: str) -> None:
        self._writing()
        self.subscriber_records.pop(sid, None)

    def retained(self) -> Iterable[StoredEvent]:
        return list(self.retained_events.values())

    def write_retained(self, changes: Sequence[tuple[str, StoredEvent | None]]) -> None:
        self._writing()
        for key, event in changes:
            if event is None:
                self.retained_events.pop(key, None)
            else:
                self.retained_events[key] = event

    def close(self) -> None:
        pass
