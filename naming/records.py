"""What the name server keeps, and the protocol of a place that keeps it.

The entry, the `Storage` protocol and `MemoryStorage` are here, with no storage driver: the
registry imports them without loading sqlite. The sqlite storage (naming.storage) implements the
protocol.

Invariants:
- Storages hold data and nothing else: no rules, no clock. The registry decides what is valid.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Entry", "MemoryStorage", "Storage"]


@dataclass(frozen=True, slots=True)
class Entry:
    """A registered name. `expires` and `token` are set for leased entries (None: permanent)."""

    name: str
    uri: str
    meta: str = ""
    lease: float | None = None
    expires: float | None = None
    token: str | None = None


class Storage(Protocol):
    """Where the name server keeps names and groups."""

    def get(self, name: str) -> Entry | None:
        """The entry for `name`, if there is one."""
        ...

    def put(self, entry: Entry) -> None:
        """Keep `entry`, replacing one of the same name."""
        ...

    def delete(self, name: str) -> None:
        """Forget `name`."""
        ...

    def entries(self) -> Iterable[Entry]:
        """Every entry."""
        ...

    def has_group(self, group: str) -> bool:
        """Whether `group` exists."""
        ...

    def add_group(self, group: str) -> None:
        """Create `group`."""
        ...

    def delete_group(self, group: str) -> None:
        """Delete `group`."""
        ...

    def groups(self) -> Iterable[str]:
        """Every group."""
        ...

    def close(self) -> None:
        """Release the storage."""
        ...


class MemoryStorage:
    """Names kept in memory only: gone when the name server stops, as in Pyro."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._groups: set[str] = set()

    def get(self, name: str) -> Entry | None:
        return self._entries.get(name)

    def put(self, entry: Entry) -> None:
        self._entries[entry.name] = entry

    def delete(self, name: str) -> None:
        self._entries.pop(name, None)

    def entries(self) -> Iterable[Entry]:
        return list(self._entries.values())

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def add_group(self, group: str) -> None:
        self._groups.add(group)

    def delete_group(self, group: str) -> None:
        self._groups.discard(group)

    def groups(self) -> Iterable[str]:
        return list(self._groups)

    def close(self) -> None:
        pass
