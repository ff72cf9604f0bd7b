"""The name server's part of the wire protocol: its requests, and the discovery datagrams.

Invariants (as for the event server's codec): pure, total, core msgpack types only. Replies are
the same OK / ERR as the event server's and are decoded by `decode_reply`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from clients.errors import ErrorCode
from clients.wire.codec import Table, decode_command, decode_header, pack_header
from clients.wire.fields import fail, flag, options_reader, seconds, text, uint
from clients.wire.messages import VERSION, Ping

__all__ = [
    "MAX_DATAGRAM",
    "CreateGroup",
    "DeleteGroup",
    "GetMeta",
    "ListAll",
    "ListNames",
    "Lookup",
    "NsRequest",
    "Register",
    "Remove",
    "Renew",
    "SetMeta",
    "decode_here",
    "decode_ns_request",
    "decode_where",
    "encode_here",
    "encode_ns",
    "encode_where",
]

MAX_DATAGRAM = 512
"""Discovery datagrams are tiny; anything longer is not one of ours."""


@dataclass(frozen=True, slots=True)
class Register:
    """REGISTER: map `name` to `uri`, for good or with a lease; `replace` overwrites. With
    `shared`, `uri` is added to the name's entries beside the others (SPEC 12.6)."""

    rid: int
    name: str
    uri: str
    replace: bool = False
    lease: float | None = None
    meta: str = ""
    shared: bool = False


@dataclass(frozen=True, slots=True)
class Renew:
    """RENEW: extend a leased name, proving ownership with its token."""

    rid: int
    name: str
    token: str


@dataclass(frozen=True, slots=True)
class Lookup:
    """LOOKUP: what is known of `name`."""

    rid: int
    name: str


@dataclass(frozen=True, slots=True)
class Remove:
    """REMOVE: forget `name` (a leased one needs its token)."""

    rid: int
    name: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class ListNames:
    """LIST: exactly one of group (direct members), prefix or regex (RE2, anchored at the start)."""

    rid: int
    group: str | None = None
    prefix: str | None = None
    regex: str | None = None


@dataclass(frozen=True, slots=True)
class ListAll:
    """LISTALL: every name with its URI."""

    rid: int


@dataclass(frozen=True, slots=True)
class CreateGroup:
    """CREATEGROUP: an empty group for names."""

    rid: int
    group: str


@dataclass(frozen=True, slots=True)
class DeleteGroup:
    """DELETEGROUP: remove an empty group."""

    rid: int
    group: str


@dataclass(frozen=True, slots=True)
class SetMeta:
    """SETMETA: attach a text to `name`."""

    rid: int
    name: str
    meta: str


@dataclass(frozen=True, slots=True)
class GetMeta:
    """GETMETA: the text attached to `name`."""

    rid: int
    name: str


NsRequest = (
    Ping
    | Register
    | Renew
    | Lookup
    | Remove
    | ListNames
    | ListAll
    | CreateGroup
    | DeleteGroup
    | SetMeta
    | GetMeta
)

_register_options = options_reader(
    {"replace": flag, "lease": seconds, "meta": text, "shared": flag}
)
_remove_options = options_reader({"token": text})
_list_options = options_reader({"group": text, "prefix": text, "regex": text})


def _register(rid: int, name: str, uri: str, options: dict[str, Any]) -> Register:
    return Register(rid, name, uri, **options)


def _remove(rid: int, name: str, options: dict[str, Any]) -> Remove:
    return Remove(rid, name, **options)


def _list(rid: int, options: dict[str, Any]) -> ListNames:
    if len(options) > 1:
        raise fail(ErrorCode.BAD_REQUEST, "LIST takes one of group, prefix or regex")
    return ListNames(rid, **options)


_NS_REQUESTS: Table = {
    "PING": (Ping, ()),
    "REGISTER": (_register, (("name", text), ("uri", text), ("options", _register_options))),
    "RENEW": (Renew, (("name", text), ("token", text))),
    "LOOKUP": (Lookup, (("name", text),)),
    "REMOVE": (_remove, (("name", text), ("options", _remove_options))),
    "LIST": (_list, (("selector", _list_options),)),
    "LISTALL": (ListAll, ()),
    "MKGROUP": (CreateGroup, (("group", text),)),
    "RMGROUP": (DeleteGroup, (("group", text),)),
    "SETMETA": (SetMeta, (("name", text), ("meta", text))),
    "GETMETA": (GetMeta, (("name", text),)),
}


def decode_ns_request(frames: Sequence[bytes]) -> NsRequest:
    """Decode a request as the name server's ROUTER sees it, without the routing-id frame."""
    request: NsRequest = decode_command(decode_header(frames), frames, _NS_REQUESTS)
    return request


def _present(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None and v is not False and v != ""}


def encode_ns(message: NsRequest) -> list[bytes]:
    """The frames of a name server request."""
    match message:
        case Ping(rid):
            head: list[Any] = [VERSION, "PING", rid]
        case Register(rid, name, uri, replace, lease, meta, shared):
            head = [
                VERSION,
                "REGISTER",
                rid,
                name,
                uri,
                _present(replace=replace, lease=lease, meta=meta, shared=shared),
            ]
        case Renew(rid, name, token):
            head = [VERSION, "RENEW", rid, name, token]
        case Lookup(rid, name):
            head = [VERSION, "LOOKUP", rid, name]
        case Remove(rid, name, token):
            head = [VERSION, "REMOVE", rid, name, _present(token=token)]
        case ListNames(rid, group, prefix, regex):
            head = [VERSION, "LIST", rid, _present(group=group, prefix=prefix, regex=regex)]
        case ListAll(rid):
            head = [VERSION, "LISTALL", rid]
        case CreateGroup(rid, group):
            head = [VERSION, "MKGROUP", rid, group]
        case DeleteGroup(rid, group):
            head = [VERSION, "RMGROUP", rid, group]
        case SetMeta(rid, name, meta):
            head = [VERSION, "SETMETA", rid, name, meta]
        case GetMeta(rid, name):
            head = [VERSION, "GETMETA", rid, name]
    return [pack_header(head)]


# --- discovery: one UDP datagram each way ---------------------------------------------------


def encode_where(nonce: int) -> bytes:
    """The question a client broadcasts: where is the name server?"""
    return pack_header([VERSION, "WHERE", nonce])


def encode_here(nonce: int, endpoint: str) -> bytes:
    """The name server's answer, sent back to the asking address."""
    return pack_header([VERSION, "HERE", nonce, endpoint])


def _datagram(data: bytes, command: str, size: int) -> list[Any]:
    if len(data) > MAX_DATAGRAM:
        raise fail(ErrorCode.TOO_LARGE, f"datagram over {MAX_DATAGRAM} bytes")
    header = decode_header([data])
    if header[1] != command or len(header) != size:
        raise fail(ErrorCode.BAD_REQUEST, f"not a {command} datagram")
    return header


def decode_where(data: bytes) -> int:
    """The nonce of a WHERE datagram (a client asking where the name server is)."""
    return uint(_datagram(data, "WHERE", 3)[2], "nonce")


def decode_here(data: bytes) -> tuple[int, str]:
    """The nonce and endpoint of a HERE datagram (the name server's answer)."""
    header = _datagram(data, "HERE", 4)
    return uint(header[2], "nonce"), text(header[3], "endpoint")
