"""The wire test vectors: their cases, their JSON form, and the generator of vectors.json.

Run `make vectors` after changing frames (and change SPEC.md in the same commit). The unit tests
check that the committed file equals what this module generates, and run every vector through
the codec in both directions.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from clients.wire import (
    Ack,
    Delivery,
    Err,
    EventItem,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    NumSub,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    encode,
    ns,
)
from clients.wire.messages import Reply, Request
from tests.vectorgen_bad import INVALID, REFUSED, _hex
from tests.vectorgen_ns import DISCOVERY, NS_INVALID, NS_REFUSED, NS_VALID, ns_to_json

Message = Request | Reply | Delivery

SID = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"
ENDPOINT = "tcp://127.0.0.1:40123"

VALID: list[tuple[str, str, Message]] = [
    ("subscribe one subject", "request", Subscribe(1, SID, ENDPOINT, ("StockQuotes",))),
    (
        "subscribe with queue options",
        "request",
        Subscribe(2, SID, ENDPOINT, ("a", "b"), Options("drop", 100, 2.5)),
    ),
    (
        "subscribe with the inbox's CurveZMQ key",
        "request",
        Subscribe(
            20, SID, ENDPOINT, ("a",), Options(key="rT$ar-O.qIf35kRJudYDmw<)^E}ruzJ(a%Aa1mo}")
        ),
    ),
    (
        "subscribe as a named service",
        "request",
        Subscribe(21, SID, ENDPOINT, ("boiler.control",), Options(name="boiler-controller")),
    ),
    (
        "subscribe to a pattern",
        "request",
        SubscribeMatch(3, SID, ENDPOINT, (r"^STOCKQUOTE\.S.*$",), Options(policy="block")),
    ),
    ("unsubscribe", "request", Unsubscribe(4, SID, ("StockQuotes", r"^STOCKQUOTE\.S.*$"))),
    ("subjects published on", "request", ListSubjects(30)),
    ("subjects published on, matching a pattern", "request", ListSubjects(31, r"^stock\.")),
    ("subscribers per subject", "request", NumSub(32, ("StockQuotes", "stock.sun"))),
    ("every subscriber in detail", "request", ListSubscribers(33)),
    ("one subscriber in detail", "request", ListSubscribers(34, SID)),
    (
        "publish one msgpack message to two subjects, unconfirmed",
        "request",
        Publish(
            5,
            False,
            (PubItem(("stockquote.sun", "stockquote.ibm"), 1, b"\x92\xa3SUN\xcb@6p\xa3\xd7\n=q"),),
        ),
    ),
    (
        "publish a batch of two events, confirmed",
        "request",
        Publish(6, True, (PubItem(("a",), 0, b"raw bytes"), PubItem(("b",), 1, b"\xc0"))),
    ),
    ("ping", "request", Ping(7)),
    ("stats", "request", Stats(8)),
    ("acknowledge", "request", Ack(0, SID, 42)),
    ("heartbeat", "request", Heartbeat(9, SID)),
    ("ok to subscribe", "reply", Ok(1, {"count": 1, "stream": 4503599627370497, "heartbeat": 3.0})),
    ("ok to a heartbeat of a known subscriber", "reply", Ok(9, {"known": True})),
    (
        "ok to a heartbeat of an evicted subscriber",
        "reply",
        Ok(9, {"known": False, "evicted": "stalled"}),
    ),
    ("ok to confirmed publish", "reply", Ok(6, {"receivers": 2})),
    ("error reply", "reply", Err(3, "BAD_PATTERN", "RE2 cannot compile '(a)\\\\1'")),
    (
        "one event",
        "delivery",
        Delivery(
            SID, 4503599627370497, 0, (EventItem(1, "StockQuotes", 1767225600.25, 1, b"\xa2hi"),)
        ),
    ),
    (
        "a batch after three lost events",
        "delivery",
        Delivery(
            SID,
            77,
            3,
            (
                EventItem(5, "stockquote.SUN", 1767225600.5, 1, b"\x01"),
                EventItem(6, "stockquote.SAP", 1767225600.5, 0, b""),
            ),
        ),
    ),
    (
        "a retained event, sent for a new subscription",
        "delivery",
        Delivery(SID, 78, 0, (EventItem(1, "status.boiler", 1767225000.0, 1, b"\xa2ok", True),)),
    ),
    (
        "the first event after a restart with durable storage",
        "delivery",
        Delivery(
            SID,
            79,
            0,
            (EventItem(1, "status.boiler", 1767226000.0, 1, b"\xa3hot", resumed=True),),
        ),
    ),
    (
        "publish a batch with the payloads inside the header",
        "request",
        Publish(
            50,
            False,
            (PubItem(("a",), 0, b"raw bytes"), PubItem(("b", "c"), 1, b"\xc0")),
            inline=True,
        ),
    ),
    (
        "a batch with the payloads inside the header",
        "delivery",
        Delivery(
            SID,
            80,
            0,
            (
                EventItem(1, "stockquote.SUN", 1767225600.5, 1, b"\x01"),
                EventItem(2, "stockquote.SAP", 1767225600.5, 0, b""),
            ),
            inline=True,
        ),
    ),
    (
        "publish retained events: one until replaced, one for 60 s, one clearing",
        "request",
        Publish(
            40,
            True,
            (
                PubItem(("status.boiler",), 1, b"\xa2ok", retain=True),
                PubItem(("status.pump",), 1, b"\xa3off", retain=True, ttl=60.0),
                PubItem(("status.old",), 0, b"", retain=True),
            ),
        ),
    ),
]


def to_json(message: Message) -> dict[str, Any]:
    """The language-neutral form of a message: wire field names, payloads as hex."""
    match message:
        case Subscribe() | SubscribeMatch():
            names = "subjects" if isinstance(message, Subscribe) else "patterns"
            opts = message.options
            options = {
                "policy": opts.policy,
                "queue": opts.queue,
                "max_stall": opts.max_stall,
                "key": opts.key,
                "name": opts.name,
            }
            return {
                "type": "SUB" if isinstance(message, Subscribe) else "SUBMATCH",
                "rid": message.rid,
                "sid": message.sid,
                "endpoint": message.endpoint,
                names: list(getattr(message, names)),
                "options": {k: v for k, v in options.items() if v is not None},
            }
        case Unsubscribe(rid, sid, subjects):
            return {"type": "UNSUB", "rid": rid, "sid": sid, "subjects": list(subjects)}
        case Publish(rid, confirm, items, inline):
            return {
                "type": "PUB",
                "rid": rid,
                "confirm": confirm,
                "items": [_item_json(i) for i in items],
                **({"inline": True} if inline else {}),
            }
        case Ping(rid):
            return {"type": "PING", "rid": rid}
        case Stats(rid):
            return {"type": "STATS", "rid": rid}
        case Ack(rid, sid, seq):
            return {"type": "ACK", "rid": rid, "sid": sid, "seq": seq}
        case Heartbeat(rid, sid):
            return {"type": "HEARTBEAT", "rid": rid, "sid": sid}
        case ListSubjects(rid, pattern):
            return {"type": "SUBJECTS", "rid": rid, **({"pattern": pattern} if pattern else {})}
        case NumSub(rid, subjects):
            return {"type": "NUMSUB", "rid": rid, "subjects": list(subjects)}
        case ListSubscribers(rid, sid):
            return {"type": "SUBSCRIBERS", "rid": rid, **({"sid": sid} if sid else {})}
        case Ok(rid, body):
            return {"type": "OK", "rid": rid, "body": body}
        case Err(rid, code, text):
            return {"type": "ERR", "rid": rid, "code": code, "message": text}
        case Delivery(sid, stream, lost, events, inline):
            return {
                "type": "EV",
                "sid": sid,
                "stream": stream,
                "lost": lost,
                "events": [
                    {
                        "seq": e.seq,
                        "subject": e.subject,
                        "time": e.time,
                        "format": e.fmt,
                        "payload": e.payload.hex(),
                        **({"retained": True} if e.retained else {}),
                        **({"resumed": True} if e.resumed else {}),
                    }
                    for e in events
                ],
                **({"inline": True} if inline else {}),
            }
    raise TypeError(type(message).__name__)


def _item_json(item: PubItem) -> dict[str, Any]:
    data: dict[str, Any] = {
        "subjects": list(item.subjects),
        "format": item.fmt,
        "payload": item.payload.hex(),
    }
    if item.retain:
        data["retain"] = True
    if item.ttl is not None:
        data["ttl"] = item.ttl
    return data


def from_json(data: dict[str, Any]) -> Message:
    """The inverse of to_json."""
    kind = data["type"]
    if kind in ("SUB", "SUBMATCH"):
        options = Options(**data["options"])
        if kind == "SUB":
            return Subscribe(
                data["rid"], data["sid"], data["endpoint"], tuple(data["subjects"]), options
            )
        return SubscribeMatch(
            data["rid"], data["sid"], data["endpoint"], tuple(data["patterns"]), options
        )
    if kind == "UNSUB":
        return Unsubscribe(data["rid"], data["sid"], tuple(data["subjects"]))
    if kind == "PUB":
        items = tuple(
            PubItem(
                tuple(i["subjects"]),
                i["format"],
                bytes.fromhex(i["payload"]),
                i.get("retain", False),
                i.get("ttl"),
            )
            for i in data["items"]
        )
        return Publish(data["rid"], data["confirm"], items, data.get("inline", False))
    if kind == "PING":
        return Ping(data["rid"])
    if kind == "STATS":
        return Stats(data["rid"])
    if kind == "ACK":
        return Ack(data["rid"], data["sid"], data["seq"])
    if kind == "HEARTBEAT":
        return Heartbeat(data["rid"], data["sid"])
    if kind == "SUBJECTS":
        return ListSubjects(data["rid"], data.get("pattern"))
    if kind == "NUMSUB":
        return NumSub(data["rid"], tuple(data["subjects"]))
    if kind == "SUBSCRIBERS":
        return ListSubscribers(data["rid"], data.get("sid"))
    if kind == "OK":
        return Ok(data["rid"], data["body"])
    if kind == "ERR":
        return Err(data["rid"], data["code"], data["message"])
    events = tuple(
        EventItem(
            e["seq"],
            e["subject"],
            e["time"],
            e["format"],
            bytes.fromhex(e["payload"]),
            e.get("retained", False),
            e.get("resumed", False),
        )
        for e in data["events"]
    )
    return Delivery(data["sid"], data["stream"], data["lost"], events, data.get("inline", False))


def document() -> dict[str, Any]:
    valid = [
        {
            "name": name,
            "kind": kind,
            "frames": [f.hex() for f in encode(msg)],
            "message": to_json(msg),
        }
        for name, kind, msg in VALID
    ]
    invalid = [
        {"name": name, "kind": kind, "frames": frames, "error": code, "rid": rid}
        for name, kind, frames, code, rid in INVALID
    ]
    valid += [
        {
            "name": name,
            "kind": "ns-request",
            "frames": [f.hex() for f in ns.encode_ns(msg)],
            "message": ns_to_json(msg),
        }
        for name, msg in NS_VALID
    ]
    valid += [
        {"name": name, "kind": kind, "frames": [data.hex()], "message": message}
        for name, kind, data, message in DISCOVERY
    ]
    invalid += [
        {"name": name, "kind": "ns-request", "frames": frames, "error": code, "rid": rid}
        for name, frames, code, rid in NS_INVALID
    ]
    invalid += [
        {
            "name": "WHERE with a string nonce",
            "kind": "where",
            "frames": [_hex(1, "WHERE", "x")],
            "error": "BAD_REQUEST",
            "rid": 0,
        },
        {
            "name": "HERE without an endpoint",
            "kind": "here",
            "frames": [_hex(1, "HERE", 1)],
            "error": "BAD_REQUEST",
            "rid": 0,
        },
    ]
    refused = [
        {"name": name, "kind": "request", "frames": frames, "error": code, "rid": rid}
        for name, frames, code, rid in REFUSED
    ]
    refused += [
        {"name": name, "kind": "ns-request", "frames": frames, "error": code, "rid": rid}
        for name, frames, code, rid in NS_REFUSED
    ]
    return {
        "protocol": 1,
        "about": (
            "Test vectors for SPEC.md. 'frames' are the ZeroMQ message parts in hex, without "
            "routing-id frames. A valid vector must decode to 'message' and 'message' must encode "
            "to 'frames' (map keys may come in another order in other encoders: compare decoded). "
            "An invalid vector must be refused with 'error' by the decoder; a server answers it "
            "with that code and request id 'rid'. A refused vector decodes, but a new server "
            "with the default settings must answer it with 'error' and 'rid'. Kinds: request "
            "and ns-request (server side), reply and delivery (client side), where and here "
            "(discovery datagrams, one frame each)."
        ),
        "valid": valid,
        "invalid": invalid,
        "refused": refused,
        "keys": key_vectors(),
    }


PASSPHRASES = ("correct horse battery staple", "Pyro's -i passphrase: ünïcode too")


def key_vectors() -> dict[str, Any]:
    """The CurveZMQ key pair a passphrase gives (SPEC.md, "Security")."""
    from clients import security

    return {
        "about": (
            "secret = scrypt(UTF-8 passphrase, salt, N, r, p, 32 bytes); the 32 bytes are the "
            "Curve25519 secret key as they are; public = X25519 base-point multiplication of it. "
            "Keys in Z85 as ZeroMQ writes them, the secret also in hex."
        ),
        "kdf": {
            "name": "scrypt",
            "salt": security.KDF_SALT.decode(),
            "N": security.KDF_N,
            "r": security.KDF_R,
            "p": security.KDF_P,
            "length": 32,
        },
        "pairs": [
            {
                "passphrase": phrase,
                "secret_hex": security.derive_secret(phrase).hex(),
                "secret_z85": security.Keys.from_passphrase(phrase).secret.decode(),
                "public_z85": security.Keys.from_passphrase(phrase).public.decode(),
            }
            for phrase in PASSPHRASES
        ],
    }


def render() -> str:
    return json.dumps(document(), indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
