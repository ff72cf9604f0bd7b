"""The name server's test vectors: its requests, the discovery datagrams, what it refuses.

Part of tests/vectorgen.py, which writes them into clients/wire/vectors.json.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack

from clients.wire import Ping, ns

SID = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"
ENDPOINT = "tcp://127.0.0.1:40123"


def _hex(*parts: Any) -> str:
    return msgpack.packb(list(parts), use_bin_type=True).hex()


# In an order that a new name server can follow: the group before the name in it, the name
# before its metadata, both removed at the end. RENEW and a REMOVE with a token name a token no
# server gave out (a real one is random), so they are refused: see NS_REPLIES.
NS_VALID: list[tuple[str, ns.NsRequest]] = [
    ("ping the name server", Ping(1)),
    ("create a group", ns.CreateGroup(2, ":Stock")),
    ("register a name for good", ns.Register(3, ":Stock.Quotes", ENDPOINT)),
    (
        "register with a lease, replacing, with metadata",
        ns.Register(4, ":Pyro.EventService", ENDPOINT, replace=True, lease=30.0, meta="es 0.1.0"),
    ),
    ("renew a lease", ns.Renew(5, ":Pyro.EventService", "9f86d081884c7d65")),
    ("look a name up", ns.Lookup(6, ":Pyro.EventService")),
    ("set metadata", ns.SetMeta(7, ":Stock.Quotes", "quotes every second")),
    ("show metadata", ns.GetMeta(8, ":Stock.Quotes")),
    ("list a group", ns.ListNames(9, group=":Pyro")),
    ("list by prefix", ns.ListNames(10, prefix=":Pyro.E")),
    ("list by regex", ns.ListNames(11, regex=r":Stock\..*")),
    ("list everything", ns.ListAll(12)),
    ("remove a name only if still mine", ns.Remove(13, ":Pyro.EventService", "9f86d081884c7d65")),
    ("remove a name", ns.Remove(14, ":Stock.Quotes")),
    ("delete a group", ns.DeleteGroup(15, ":Stock")),
    (
        "register a shared name: one node of a cluster beside the others",
        ns.Register(16, ":Default.Nodes", ENDPOINT, lease=30.0, meta="node a", shared=True),
    ),
    ("look a shared name up: every node's URI", ns.Lookup(17, ":Default.Nodes")),
]

# What a new name server (memory storage, default settings) answers to each of NS_VALID, sent in
# this order, each on a connection of its own: "OK", or the code of its ERR (tests/vectorgen.py).
NS_REPLIES: dict[str, str | None] = {
    "ping the name server": "OK",
    "create a group": "OK",
    "register a name for good": "OK",
    "register with a lease, replacing, with metadata": "OK",
    "renew a lease": "NOT_OWNER",  # the lease's token is random, never this one
    "look a name up": "OK",
    "set metadata": "OK",
    "show metadata": "OK",
    "list a group": "OK",
    "list by prefix": "OK",
    "list by regex": "OK",
    "list everything": "OK",
    "remove a name only if still mine": "NOT_OWNER",  # the same token
    "remove a name": "OK",
    "delete a group": "OK",
    "register a shared name: one node of a cluster beside the others": "OK",
    "look a shared name up: every node's URI": "OK",
}

NS_INVALID: list[tuple[str, list[str], str, int]] = [
    ("REGISTER without options", [_hex(1, "REGISTER", 40, ":a", ENDPOINT)], "BAD_REQUEST", 40),
    (
        "REGISTER with an unknown option",
        [_hex(1, "REGISTER", 41, ":a", ENDPOINT, {"ttl": 5})],
        "BAD_REQUEST",
        41,
    ),
    (
        "REGISTER with shared not a boolean",
        [_hex(1, "REGISTER", 58, ":a", ENDPOINT, {"shared": 1})],
        "BAD_REQUEST",
        58,
    ),
    (
        "REGISTER with a negative lease",
        [_hex(1, "REGISTER", 42, ":a", ENDPOINT, {"lease": -1})],
        "BAD_REQUEST",
        42,
    ),
    (
        "LIST with two selectors",
        [_hex(1, "LIST", 43, {"group": ":a", "prefix": ":a"})],
        "BAD_REQUEST",
        43,
    ),
    ("LOOKUP with a number for a name", [_hex(1, "LOOKUP", 44, 7)], "BAD_REQUEST", 44),
    (
        "an event server command",
        [_hex(1, "SUB", 45, "s", ENDPOINT, ["a"], {})],
        "UNKNOWN_COMMAND",
        45,
    ),
]

# Refused by a new name server (memory storage, default settings): (name, frames, error, rid).
NS_REFUSED: list[tuple[str, list[str], str, int]] = [
    ("a relative name", [_hex(1, "REGISTER", 50, "EventService", ENDPOINT, {})], "BAD_NAME", 50),
    (
        "an empty group in a name",
        [_hex(1, "REGISTER", 51, ":Pyro..x", ENDPOINT, {})],
        "BAD_NAME",
        51,
    ),
    (
        "a name in a group that does not exist",
        [_hex(1, "REGISTER", 52, ":Nowhere.x", ENDPOINT, {})],
        "NOT_FOUND",
        52,
    ),
    (
        "a name already taken",
        [_hex(1, "REGISTER", 53, ":Pyro.NameServer", ENDPOINT, {})],
        "NAME_TAKEN",
        53,
    ),
    ("a name over a group", [_hex(1, "REGISTER", 54, ":Pyro", ENDPOINT, {})], "NAME_TAKEN", 54),
    ("look up an unknown name", [_hex(1, "LOOKUP", 55, ":Pyro.Nobody")], "NOT_FOUND", 55),
    ("renew an unknown name", [_hex(1, "RENEW", 56, ":Pyro.Nobody", "t")], "NOT_FOUND", 56),
    (
        "renew with the wrong token",
        [_hex(1, "RENEW", 57, ":Pyro.NameServer", "t")],
        "NOT_OWNER",
        57,
    ),
    ("create a group that exists", [_hex(1, "MKGROUP", 58, ":Pyro")], "NAME_TAKEN", 58),
    ("delete a group that is not empty", [_hex(1, "RMGROUP", 59, ":Pyro")], "NOT_EMPTY", 59),
    ("delete the root group", [_hex(1, "RMGROUP", 60, ":")], "BAD_NAME", 60),
    ("a regex RE2 cannot compile", [_hex(1, "LIST", 61, {"regex": "(?=x)"})], "BAD_PATTERN", 61),
    (
        "an endpoint that is not tcp://",
        [_hex(1, "REGISTER", 62, ":Default.x", "http://x", {})],
        "BAD_ENDPOINT",
        62,
    ),
]


def ns_to_json(message: ns.NsRequest) -> dict[str, Any]:
    fields = {k: v for k, v in dataclasses.asdict(message).items() if v is not None}
    return {"type": NS_TYPES[type(message)], **fields}


def ns_from_json(data: dict[str, Any]) -> ns.NsRequest:
    cls = {v: k for k, v in NS_TYPES.items()}[data["type"]]
    return cls(**{k: v for k, v in data.items() if k != "type"})  # type: ignore[no-any-return]


NS_TYPES: dict[type, str] = {
    Ping: "PING",
    ns.Register: "REGISTER",
    ns.Renew: "RENEW",
    ns.Lookup: "LOOKUP",
    ns.Remove: "REMOVE",
    ns.ListNames: "LIST",
    ns.ListAll: "LISTALL",
    ns.CreateGroup: "MKGROUP",
    ns.DeleteGroup: "RMGROUP",
    ns.SetMeta: "SETMETA",
    ns.GetMeta: "GETMETA",
}

DISCOVERY: list[tuple[str, str, bytes, dict[str, Any]]] = [
    (
        "where is the name server?",
        "where",
        ns.encode_where(3141592653),
        {"type": "WHERE", "nonce": 3141592653},
    ),
    (
        "here it is",
        "here",
        ns.encode_here(3141592653, "tcp://127.0.0.1:9090"),
        {"type": "HERE", "nonce": 3141592653, "endpoint": "tcp://127.0.0.1:9090"},
    ),
]
