"""The name registry: names to endpoints, in groups, with metadata and leases. Pure: no sockets,
and the time is always an argument.

Invariants:
- Every name and group is absolute and well formed; every entry's group exists; a name is never
  both an entry and a group. The root `:` and the groups `:Pyro` and `:Default` always exist.
- An entry whose lease has expired is treated as absent by every operation, and `expire(now)`
  removes such entries for good; so a registrant that stops renewing disappears by itself.
- Only the holder of an entry's lease token can renew it, or remove it conditionally.
- A name is held either by one registration or, shared (SPEC 12.6), by several, one per URI, each
  with its own lease and token; never both at once. Shared entries are kept under the key
  `NAME URI` (a name holds no white space, so no name is ever such a key) and shown as NAME.
- Refusals are RequestError subclasses carrying a stable error code.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from urllib.parse import urlsplit

from clients.errors import (
    EXCEPTION_FOR_CODE,
    ErrorCode,
    RequestError,
)
from clients.names import (
    DEFAULT_GROUP,
    MAX_NAME_BYTES,
    PYRO_GROUP,
    ROOT,
    check_absolute,
    parent,
)
from es.daemon.patterns import compile_pattern
from naming.records import Entry, Storage

__all__ = ["Listing", "Registry"]

Listing = tuple[dict[str, str], list[str]]
"""Names with their URIs, and group names."""

MAX_META_BYTES = 4096  # a description, not a data store
MAX_URI_BYTES = 256


def _refuse(code: ErrorCode, message: str) -> RequestError:
    return EXCEPTION_FOR_CODE[code](code, message)


def _new_token() -> str:
    return secrets.token_hex(16)


class Registry:
    """Names, groups and leases (pure: the time is an argument)."""

    def __init__(
        self,
        storage: Storage,
        *,
        min_lease: float = 1.0,
        max_lease: float = 3600.0,
        max_names: int = 10_000,
        new_token: Callable[[], str] = _new_token,
    ) -> None:
        self._storage = storage
        self._min_lease = min_lease
        self._max_lease = max_lease
        self._max_names = max_names
        self._new_token = new_token
        for group in (ROOT, PYRO_GROUP, DEFAULT_GROUP):
            storage.add_group(group)

    # --- names ---------------------------------------------------------------------------------

    def register(
        self,
        name: str,
        uri: str,
        now: float,
        *,
        replace_existing: bool = False,
        lease: float | None = None,
        meta: str = "",
        shared: bool = False,
    ) -> Entry:
        """Add `name`; refuse to overwrite a live entry unless `replace_existing`. A shared
        registration adds (or renews) this URI's entry beside the name's others."""
        check_absolute(name)
        if name == ROOT or self._storage.has_group(name):
            raise _refuse(ErrorCode.NAME_TAKEN, f"{name} is a group")
        self._check_group(parent(name))
        _check_uri(uri)
        _check_meta(meta)
        single, members = self._live(name, now), self._members(name, now)
        held = single if shared else (single or (members[0] if members else None))
        if held is not None and not replace_existing:
            how = "" if shared or single else "shared, "
            raise _refuse(ErrorCode.NAME_TAKEN, f"{name} is registered ({how}to {held.uri})")
        key = _member_key(name, uri) if shared else name
        if self._live(key, now) is None and self._count(now) >= self._max_names:
            raise _refuse(ErrorCode.LIMIT_EXCEEDED, f"{self._max_names} names registered")
        if lease is not None and not self._min_lease <= lease <= self._max_lease:
            raise _refuse(
                ErrorCode.BAD_REQUEST,
                f"lease must be from {self._min_lease} to {self._max_lease} seconds",
            )
        if replace_existing:  # the other kind goes: a name is single or shared, never both
            for other in [] if shared else members:
                self._storage.delete(_member_key(name, other.uri))
            if shared and single is not None:
                self._storage.delete(name)
        entry = Entry(key, uri, meta)
        if lease is not None:
            entry = replace(entry, lease=lease, expires=now + lease, token=self._new_token())
        self._storage.put(entry)
        return replace(entry, name=name)

    def renew(self, name: str, token: str, now: float) -> Entry:
        """Extend a leased entry by its lease time; only with the token its registration gave."""
        held = [(key, e) for key, e in self._keyed(name, now) if _holds(e, token)]
        if not held:
            raise _refuse(ErrorCode.NOT_OWNER, f"{name} is not held with this token")
        key, entry = held[0]
        assert entry.lease is not None
        renewed = replace(entry, expires=now + entry.lease)
        self._storage.put(replace(renewed, name=key))
        return renewed

    def lookup(self, name: str, now: float) -> Entry:
        """The live entry for `name` (a shared name's first, by URI); NAME_NOT_FOUND if none."""
        return self.lookup_all(name, now)[0]

    def lookup_all(self, name: str, now: float) -> list[Entry]:
        """Every live entry for `name`: one, or a shared name's, by URI; NOT_FOUND if none."""
        return [entry for _, entry in self._keyed(name, now)]

    def _keyed(self, name: str, now: float) -> list[tuple[str, Entry]]:
        """Every live entry for `name` with the key it is stored under; NOT_FOUND if none."""
        check_absolute(name)
        single = self._live(name, now)
        if single is not None:
            return [(name, single)]
        members = [(_member_key(name, e.uri), e) for e in self._members(name, now)]
        if not members:
            raise _refuse(ErrorCode.NOT_FOUND, f"{name} is not registered")
        return members

    def remove(self, name: str, now: float, token: str | None = None) -> None:
        """Remove `name` (every entry of a shared one); with a token, only the entry that this
        token still holds."""
        keyed = self._keyed(name, now)
        if token is not None:
            keyed = [(key, entry) for key, entry in keyed if _holds(entry, token)]
            if not keyed:
                raise _refuse(ErrorCode.NOT_OWNER, f"{name} is held by another registration now")
        for key, _ in keyed:
            self._storage.delete(key)

    def set_meta(self, name: str, meta: str, now: float) -> None:
        """Attach a text to `name` (to each entry of a shared one)."""
        _check_meta(meta)
        for key, entry in self._keyed(name, now):
            self._storage.put(replace(entry, name=key, meta=meta))

    def get_meta(self, name: str, now: float) -> str:
        """The text attached to `name`."""
        return self.lookup(name, now).meta

    def expire(self, now: float) -> list[str]:
        """Remove every entry whose lease has run out; return their names (a shared name's
        once for each of its entries)."""
        gone = [e.name for e in self._storage.entries() if _expired(e, now)]
        for key in gone:
            self._storage.delete(key)
        return [_public(key) for key in gone]

    # --- groups --------------------------------------------------------------------------------

    def create_group(self, group: str, now: float) -> None:
        """Create an empty group in an existing parent; NAME_TAKEN if it exists."""
        check_absolute(group)
        if group == ROOT or self._storage.has_group(group) or self._held(group, now):
            raise _refuse(ErrorCode.NAME_TAKEN, f"{group} exists")
        self._check_group(parent(group))
        self._storage.add_group(group)

    def delete_group(self, group: str, now: float) -> None:
        """Delete an empty group (the root and the built-in groups can go only when empty too)."""
        check_absolute(group)
        if group == ROOT:
            raise _refuse(ErrorCode.BAD_NAME, "the root group cannot be deleted")
        self._check_group(group)
        names, groups = self.list_group(group, now)
        if names or groups:
            raise _refuse(ErrorCode.NOT_EMPTY, f"{group} holds {len(names) + len(groups)} members")
        self._storage.delete_group(group)

    # --- listing -------------------------------------------------------------------------------

    def list_group(self, group: str, now: float) -> Listing:
        """The names and groups directly in `group`."""
        check_absolute(group)
        self._check_group(group)
        names = {e.name: e.uri for e in self._entries(now) if parent(e.name) == group}
        groups = sorted(g for g in self._storage.groups() if g != ROOT and parent(g) == group)
        return names, groups

    def list_prefix(self, prefix: str, now: float) -> Listing:
        """Names and groups that start with `prefix`."""
        names = {e.name: e.uri for e in self._entries(now) if e.name.startswith(prefix)}
        groups = sorted(g for g in self._storage.groups() if g != ROOT and g.startswith(prefix))
        return names, groups

    def list_regex(self, regex: str, now: float) -> Listing:
        """Names and groups that the RE2 expression matches (anchored at the start)."""
        pattern = compile_pattern(regex, MAX_NAME_BYTES * 4, case_sensitive=True)
        names = {e.name: e.uri for e in self._entries(now) if pattern.match(e.name)}
        groups = sorted(g for g in self._storage.groups() if pattern.match(g))
        return names, groups

    def list_all(self, now: float) -> Listing:
        """Every live name with its URI, and every group."""
        return {e.name: e.uri for e in self._entries(now)}, sorted(self._storage.groups())

    # --- helpers -------------------------------------------------------------------------------

    def _live(self, key: str, now: float) -> Entry | None:
        entry = self._storage.get(key)
        return None if entry is None or _expired(entry, now) else entry

    def _members(self, name: str, now: float) -> list[Entry]:
        """The live entries of shared `name`, by URI, each shown as `name`."""
        start = name + " "
        found = [e for e in self._storage.entries() if e.name.startswith(start)]
        return sorted(
            (replace(e, name=name) for e in found if not _expired(e, now)), key=lambda e: e.uri
        )

    def _held(self, name: str, now: float) -> bool:
        return self._live(name, now) is not None or bool(self._members(name, now))

    def _entries(self, now: float) -> Iterable[Entry]:
        """Every live entry, a shared name's under its name (its first by URI only)."""
        seen: set[str] = set()
        live = [e for e in self._storage.entries() if not _expired(e, now)]
        for entry in sorted(live, key=lambda e: (_public(e.name), e.uri)):
            name = _public(entry.name)
            if name not in seen:
                seen.add(name)
                yield replace(entry, name=name)

    def _count(self, now: float) -> int:
        return sum(1 for e in self._storage.entries() if not _expired(e, now))

    def _check_group(self, group: str) -> None:
        if not self._storage.has_group(group):
            raise _refuse(
                ErrorCode.NOT_FOUND, f"group {group} does not exist (create it with creategroup)"
            )


def _member_key(name: str, uri: str) -> str:
    return f"{name} {uri}"


def _public(key: str) -> str:
    """The name an entry's key shows: a shared entry's key is `NAME URI`."""
    return key.split(" ", 1)[0]


def _holds(entry: Entry, token: str) -> bool:
    return entry.token is not None and secrets.compare_digest(entry.token, token)


def _expired(entry: Entry, now: float) -> bool:
    return entry.expires is not None and entry.expires <= now


def _check_uri(uri: str) -> None:
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        port = None
    ok = len(uri.encode()) <= MAX_URI_BYTES and parts.scheme == "tcp" and parts.hostname and port
    if not ok:
        raise _refuse(ErrorCode.BAD_ENDPOINT, f"uri must be tcp://HOST:PORT, not {uri[:80]!r}")


def _check_meta(meta: str) -> None:
    if len(meta.encode("utf-8", "surrogatepass")) > MAX_META_BYTES:
        raise _refuse(ErrorCode.TOO_LARGE, f"metadata over {MAX_META_BYTES} bytes")
