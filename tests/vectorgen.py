"""The wire test vectors: their cases, and the generator of vectors.json (the JSON form of a
message is in tests/vectorjson.py).

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
    Bye,
    Delivery,
    Err,
    EventItem,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    Loss,
    NumSub,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Replay,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    encode,
    ns,
)
from tests.vectorgen_bad import INVALID, REFUSED, UNANSWERED, _hex
from tests.vectorgen_cluster import backbone_vectors
from tests.vectorgen_ns import (
    DISCOVERY,
    NS_INVALID,
    NS_REFUSED,
    NS_REPLIES,
    NS_VALID,
    ns_to_json,
)
from tests.vectorjson import Message, to_json

SID = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"
ENDPOINT = "tcp://127.0.0.1:40123"  # where nothing listens: a server answers, then gives up on it
# Each SUB and SUBMATCH vector has a subscriber of its own, so that replaying them in order to one
# server does not make one subscriber of all (whose queue size could then not change, 3.1).
SID_QUEUE = "5f0c1e2d3b4a69788796a5b4c3d2e1f1"
SID_KEY = "5f0c1e2d3b4a69788796a5b4c3d2e1f2"
SID_NAMED = "5f0c1e2d3b4a69788796a5b4c3d2e1f3"
SID_PATTERN = "5f0c1e2d3b4a69788796a5b4c3d2e1f4"
SID_DURABLE = "5f0c1e2d3b4a69788796a5b4c3d2e1f5"
SID_HISTORY = "5f0c1e2d3b4a69788796a5b4c3d2e1f6"
SID_HISTORY_FROM = "5f0c1e2d3b4a69788796a5b4c3d2e1f7"
SID_MEMBER = "5f0c1e2d3b4a69788796a5b4c3d2e1f8"
SID_DURABLE_MEMBER = "5f0c1e2d3b4a69788796a5b4c3d2e1f9"

VALID: list[tuple[str, str, Message]] = [
    ("subscribe one subject", "request", Subscribe(1, SID, ENDPOINT, ("StockQuotes",))),
    (
        "subscribe with queue options",
        "request",
        Subscribe(2, SID_QUEUE, ENDPOINT, ("a", "b"), Options("drop", 100, 2.5)),
    ),
    (
        "subscribe with the inbox's CurveZMQ key",
        "request",
        Subscribe(
            20, SID_KEY, ENDPOINT, ("a",), Options(key="rT$ar-O.qIf35kRJudYDmw<)^E}ruzJ(a%Aa1mo}")
        ),
    ),
    (
        "subscribe as a named service",
        "request",
        Subscribe(21, SID_NAMED, ENDPOINT, ("boiler.control",), Options(name="boiler-controller")),
    ),
    (
        "subscribe as a durable subscriber",
        "request",
        Subscribe(22, SID_DURABLE, ENDPOINT, ("billing.orders",), Options(durable="billing")),
    ),
    (
        "subscribe with the last 100 events of the history",
        "request",
        Subscribe(23, SID_HISTORY, ENDPOINT, ("orders.eu",), Options(history=Replay(last=100))),
    ),
    (
        "subscribe to a pattern with the history from seq 5001 of stream 77",
        "request",
        SubscribeMatch(
            24,
            SID_HISTORY_FROM,
            ENDPOINT,
            (r"orders\..*",),
            Options(history=Replay(start=5001, stream=77)),
        ),
    ),
    (
        "join a queue group",
        "request",
        Subscribe(
            25, SID_MEMBER, ENDPOINT, ("jobs.resize",), Options(queue_size=10, group="workers")
        ),
    ),
    (
        "join a durable queue group",
        "request",
        Subscribe(
            26,
            SID_DURABLE_MEMBER,
            ENDPOINT,
            ("jobs.bill",),
            Options(group="billers", durable="billers"),
        ),
    ),
    (
        "subscribe to a pattern",
        "request",
        SubscribeMatch(3, SID_PATTERN, ENDPOINT, (r"^STOCKQUOTE\.S.*$",), Options(policy="block")),
    ),
    ("unsubscribe", "request", Unsubscribe(4, SID, ("StockQuotes", r"^STOCKQUOTE\.S.*$"))),
    ("subjects published on", "request", ListSubjects(30)),
    ("subjects published on, matching a pattern", "request", ListSubjects(31, r"^stock\.")),
    ("subscribers per subject", "request", NumSub(32, ("StockQuotes", "stock.sun"))),
    ("every subscriber in detail", "request", ListSubscribers(33)),
    ("the subscribers whose public id starts 5f0c", "request", ListSubscribers(34, "5f0c")),
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
    ("ping with request id 0, answered like any other", "request", Ping(0)),
    ("stats", "request", Stats(8)),
    ("acknowledge", "request", Ack(0, SID, 42)),
    ("heartbeat", "request", Heartbeat(9, SID)),
    (
        "ok to subscribe",
        "reply",
        Ok(1, {"count": 1, "stream": 4503599627370497, "heartbeat": 3.0, "queue": 1000}),
    ),
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
        "an event replayed from the history, then a live one it keeps",
        "delivery",
        Delivery(
            SID,
            81,
            0,
            (
                EventItem(1, "orders.eu", 1767225000.0, 1, b"\xa2ok", history=5001, replayed=True),
                EventItem(2, "orders.eu", 1767226000.0, 1, b"\xa3new", history=5002),
            ),
        ),
    ),
    (
        "a queue group's event handed again after its first member went",
        "delivery",
        Delivery(
            SID,
            82,
            0,
            (EventItem(1, "jobs.resize", 1767225000.0, 1, b"\xa3img", redelivered=True),),
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
    ("a loss notice: seq 6 to 10 were dropped", "delivery", Loss(SID, 77, 5, 10)),
    ("the server is stopping", "delivery", Bye(SID, 77)),
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

# What a new event server with the default settings answers to each valid request vector, when
# they are sent to it in the order of the file, each on a connection of its own (SPEC 10): "OK",
# the code of the ERR it sends, or None for no reply at all. The conformance test checks it.
REPLIES: dict[str, str | None] = {
    "subscribe one subject": "OK",
    "subscribe with queue options": "OK",
    "subscribe with the inbox's CurveZMQ key": "OK",  # without security the key is not used
    "subscribe as a named service": "OK",
    "subscribe as a durable subscriber": "OK",
    "subscribe with the last 100 events of the history": "OK",
    "subscribe to a pattern with the history from seq 5001 of stream 77": "OK",
    "join a queue group": "OK",
    "join a durable queue group": "OK",
    "subscribe to a pattern": "OK",
    "unsubscribe": "OK",  # the subscriber of "subscribe one subject", which it removes
    "subjects published on": "OK",
    "subjects published on, matching a pattern": "OK",
    "subscribers per subject": "OK",
    "every subscriber in detail": "OK",
    "the subscribers whose public id starts 5f0c": "OK",
    "publish one msgpack message to two subjects, unconfirmed": None,  # answered only on error
    "publish a batch of two events, confirmed": "OK",
    "ping": "OK",
    "ping with request id 0, answered like any other": "OK",
    "stats": "OK",
    "acknowledge": None,  # ACK is never answered
    "heartbeat": "OK",  # known: false, since "unsubscribe" removed it
    "publish a batch with the payloads inside the header": None,
    "publish retained events: one until replaced, one for 60 s, one clearing": "OK",
}


def document() -> dict[str, Any]:
    valid = [
        {
            "name": name,
            "kind": kind,
            "frames": [f.hex() for f in encode(msg)],
            "message": to_json(msg),
            **(reply_json(_expected(REPLIES, name)) if kind == "request" else {}),
        }
        for name, kind, msg in VALID
    ]
    invalid = [
        {
            "name": name,
            "kind": kind,
            "frames": frames,
            "error": code,
            "rid": rid,
            **(refusal_json(name) if kind == "request" else {}),
        }
        for name, kind, frames, code, rid in INVALID
    ]
    valid += [
        {
            "name": name,
            "kind": "ns-request",
            "frames": [f.hex() for f in ns.encode_ns(msg)],
            "message": ns_to_json(msg),
            **reply_json(_expected(NS_REPLIES, name)),
        }
        for name, msg in NS_VALID
    ]
    valid += [
        {"name": name, "kind": kind, "frames": [data.hex()], "message": message}
        for name, kind, data, message in DISCOVERY
    ]
    invalid += [
        {
            "name": name,
            "kind": "ns-request",
            "frames": frames,
            "error": code,
            "rid": rid,
            **refusal_json(name),
        }
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
        {
            "name": name,
            "kind": kind,
            "frames": frames,
            "error": code,
            "rid": rid,
            **refusal_json(name),
        }
        for kind, table in (("request", REFUSED), ("ns-request", NS_REFUSED))
        for name, frames, code, rid in table
    ]
    _check_tables(valid)
    return {
        "protocol": 1,
        "about": (
            "Test vectors for SPEC.md (section 10). 'frames' are the ZeroMQ message parts in hex, "
            "without routing-id frames. A valid vector must decode to 'message' and 'message' must "
            "encode to 'frames' (map keys may come in another order in other encoders: compare "
            "decoded); valid means well-formed, not accepted. An invalid vector must be refused "
            "with 'error' by the decoder; a server answers it with that code and request id "
            "'rid'. A refused vector decodes, but a new server with the default settings must "
            "answer it with 'error' and 'rid'. 'reply', on every request vector, is what a new "
            "server with the default settings answers when the vectors are sent to it in the "
            "order of this file, each on a new connection: 'OK', 'ERR' (with the code in "
            "'error'), or null for no reply at all. Kinds: request and ns-request (server side), "
            "reply and delivery (client side), where and here (discovery datagrams, one frame "
            "each)."
        ),
        "valid": valid,
        "invalid": invalid,
        "refused": refused,
        "keys": key_vectors(),
        "backbone": backbone_vectors(),
    }


def reply_json(expected: str | None) -> dict[str, Any]:
    """The `reply` of a valid request vector (and its `error`, when it is refused)."""
    if expected is None or expected == "OK":
        return {"reply": expected}
    return {"reply": "ERR", "error": expected}


def refusal_json(name: str) -> dict[str, Any]:
    """The `reply` of an invalid or refused request vector: its ERR, unless it is never
    answered (an ACK, SPEC 3)."""
    return {"reply": None if name in UNANSWERED else "ERR"}


def _expected(table: dict[str, str | None], name: str) -> str | None:
    if name not in table:
        raise KeyError(f"no expected reply for the request vector {name!r}")
    return table[name]


def _check_tables(valid: list[dict[str, Any]]) -> None:
    """Every name in the reply tables is a vector's: a renamed vector must not leave a stale row."""
    names = {v["name"] for v in valid}
    stale = (set(REPLIES) | set(NS_REPLIES)) - names
    stale |= UNANSWERED - {name for name, *_ in INVALID} - {name for name, *_ in REFUSED}
    if stale:
        raise KeyError(f"reply tables name no vector: {sorted(stale)}")


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
