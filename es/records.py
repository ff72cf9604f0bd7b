"""What the event server keeps across restarts, and the protocol of a place that keeps it.

The records (`StoredSubscriber`, `StoredEvent`), the `Storage` protocol and `MemoryStorage` are
here, with no storage driver: the broker core imports them without loading sqlite. The sqlite
storage (es.storage) implements the protocol.

Invariants:
- Storages hold data and nothing else: no rules, no clock. Every method raises StorageError,
  and nothing else, when the storage fails.
- Retained events carry a wall-clock expiry: a monotonic time means nothing to the next process.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from es.daemon.storage import StorageError
from es.durablelog import DurableLog, MemoryLog

__all__ = ["MemoryStorage", "Storage", "StorageError", "StoredEvent", "StoredSubscriber"]


@dataclass(frozen=True, slots=True)
class StoredSubscriber:
    """What a subscriber asked for: enough to open its delivery socket again and match for it."""

    sid: str
    endpoint: str
    policy: str
    queue_size: int  # the "queue" column
    max_stall: float
    key: str | None = None
    name: str | None = None
    subjects: tuple[str, ...] = field(default=())
    patterns: tuple[str, ...] = field(default=())
    owner: str | None = None  # the client key that made it (SPEC 7.1), with key files


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """A retained event; `expires` is wall-clock seconds since the epoch (None: never)."""

    subject: str
    fmt: int
    payload: bytes
    time: float
    expires: float | None


class Storage(Protocol):
    """Where the event server keeps subscribers and retained events across restarts. Every
    method raises StorageError, and nothing else, when the storage fails."""

    durable: bool
    """Whether it keeps anything: the broker builds no records for a storage that does not."""

    log: DurableLog
    """Durable subscribers and their events (es.durablelog)."""

    def subscribers(self) -> Iterable[StoredSubscriber]:
        """Every subscriber kept."""
        ...

    def put_subscriber(self, record: StoredSubscriber) -> None:
        """Keep `record`, replacing what was kept for its sid."""
        ...

    def delete_subscriber(self, sid: str) -> None:
        """Forget the subscriber `sid`."""
        ...

    def retained(self) -> Iterable[StoredEvent]:
        """Every retained event kept."""
        ...

    def write_retained(self, changes: Sequence[tuple[str, StoredEvent | None]]) -> None:
        """Keep each event as the retained event of its folded subject key (None: forget that
        key's), all of them or, if that fails, none."""
        ...

    def compact(self) -> int:
        """Give some of the space deleted rows freed back to the file system; how much (a
        bounded step each call, es.storage)."""
        ...

    def close(self) -> None:
        """Release the storage (a file, a connection)."""
        ...


class MemoryStorage:
    """Keeps nothing across a restart; the broker's own state is all there is."""

    durable = False

    def __init__(self) -> None:
        self.log: DurableLog = MemoryLog()

    def compact(self) -> int:
        """Nothing to give back."""
        return 0

    def subscribers(self) -> Iterable[StoredSubscriber]:
        return ()

    def put_subscriber(self, record: StoredSubscriber) -> None:
        pass

    def delete_subscriber(self, sid: str) -> None:
        pass

    def retained(self) -> Iterable[StoredEvent]:
        return ()

    def write_retained(self, changes: Sequence[tuple[str, StoredEvent | None]]) -> None:
        pass

    def close(self) -> None:
        pass
