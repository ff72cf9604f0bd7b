"""A storage for broker tests: keeps what it is given in dicts, and fails on demand."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from es.records import StorageError, StoredEvent, StoredSubscriber


class KeptStorage:
    """es.storage.Storage in dicts; while `full` is set every write raises StorageError, as
    sqlite does on a full disk."""

    durable = True

    def __init__(self) -> None:
        self.subscriber_records: dict[str, StoredSubscriber] = {}
        self.retained_events: dict[str, StoredEvent] = {}
        self.full = False
        self.writes = 0

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
