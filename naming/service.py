"""The name server's core: request frames in, reply frames out. No sockets; time is an argument.

Invariants:
- `handle` never raises for anything a client sends: every refusal is an ERR reply with a code,
  and a storage that fails (a full disk) is STORAGE_FAILED.
- Listings are cut (and marked truncated) before they could outgrow a reply's header frame.
"""

from __future__ import annotations

from typing import Any

from clients.errors import ErrorCode, RemoteProtocolError, RequestError
from clients.names import NAME_SERVER
from clients.wire import Err, Ok, Ping, encode
from clients.wire.ns import (
    CreateGroup,
    DeleteGroup,
    GetMeta,
    ListAll,
    ListNames,
    Lookup,
    NsRequest,
    Register,
    Remove,
    Renew,
    SetMeta,
    decode_ns_request,
)
from es.daemon.storage import StorageError
from naming import __version__
from naming.records import Entry
from naming.registry import Listing, Registry

__all__ = ["NameService", "build_service"]

# Bytes of names and URIs one listing may carry: well under the 1 MiB header ceiling.
_LISTING_BUDGET = 512 * 1024


class NameService:
    """Name server requests in, replies out, over a Registry (no sockets)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def handle(self, frames: list[bytes], now: float) -> list[bytes]:
        """The reply to one request."""
        try:
            request = decode_ns_request(frames)
        except RemoteProtocolError as exc:
            return encode(Err(exc.rid, exc.code, exc.message))
        try:
            return encode(Ok(request.rid, self._dispatch(request, now)))
        except RequestError as exc:
            return encode(Err(request.rid, exc.code, exc.message))
        except StorageError as exc:  # written before anything changed: the request had no effect
            return encode(Err(request.rid, ErrorCode.STORAGE_FAILED, f"not stored: {exc}"))

    def _dispatch(self, request: NsRequest, now: float) -> dict[str, Any]:
        reg = self.registry
        match request:
            case Ping():
                return {"server": "ns", "version": __version__, "time": now}
            case Register(_, name, uri, replace, lease, meta, shared):
                entry = reg.register(
                    name, uri, now, replace_existing=replace, lease=lease, meta=meta, shared=shared
                )
                return _lease(entry)
            case Renew(_, name, token):
                return _lease(reg.renew(name, token, now))
            case Lookup(_, name):
                entries = reg.lookup_all(name, now)  # never a token: the registrant's secret
                entry = entries[0]
                found: dict[str, Any] = {"name": entry.name, "uri": entry.uri, "meta": entry.meta}
                found["uris"] = [e.uri for e in entries]
                return found if entry.expires is None else {**found, "expires": entry.expires}
            case Remove(_, name, token):
                reg.remove(name, now, token)
                return {}
            case ListNames(_, group, prefix, regex):
                if prefix is not None:
                    return _listing(reg.list_prefix(prefix, now))
                if regex is not None:
                    return _listing(reg.list_regex(regex, now))
                return _listing(reg.list_group(group or ":", now))
            case ListAll():
                return _listing(reg.list_all(now))
            case CreateGroup(_, group):
                reg.create_group(group, now)
                return {}
            case DeleteGroup(_, group):
                reg.delete_group(group, now)
                return {}
            case SetMeta(_, name, meta):
                reg.set_meta(name, meta, now)
                return {}
            case GetMeta(_, name):
                return {"meta": reg.get_meta(name, now)}
        raise AssertionError(f"unhandled {request!r}")  # pragma: no cover


def _lease(entry: Entry) -> dict[str, Any]:
    fields = {"name": entry.name, "token": entry.token, "expires": entry.expires}
    return {k: v for k, v in fields.items() if v is not None}


def _listing(listing: Listing) -> dict[str, Any]:
    names, groups = listing
    kept: dict[str, str] = {}
    budget = _LISTING_BUDGET - sum(len(g) + 2 for g in groups)
    for name in sorted(names):
        budget -= len(name) + len(names[name]) + 4
        if budget < 0:
            break
        kept[name] = names[name]
    return {"names": kept, "groups": groups, "truncated": len(kept) < len(names)}


def build_service(registry: Registry, endpoint: str, now: float) -> NameService:
    """A name service that lists itself as :Pyro.NameServer, as Pyro's did."""
    registry.register(NAME_SERVER, endpoint, now, replace_existing=True)
    return NameService(registry)
