"""Test vectors of frames that must be refused: INVALID (the decoder refuses them) and REFUSED
(they decode, but a server with the default limits refuses them). Part of vectorgen."""

from __future__ import annotations

from typing import Any

import msgpack

SID = "5f0c1e2d3b4a69788796a5b4c3d2e1f0"
ENDPOINT = "tcp://127.0.0.1:40123"


def _hex(*parts: Any) -> str:
    return msgpack.packb(list(parts), use_bin_type=True).hex()


def _item(value: Any) -> str:
    return msgpack.packb(value, use_bin_type=True).hex()


# Frames that must be refused: (name, kind, frames as hex, error code, rid the error answers).
INVALID: list[tuple[str, str, list[str], str, int]] = [
    ("no frames at all", "request", [], "BAD_REQUEST", 0),
    ("header is not msgpack", "request", ["c1"], "BAD_REQUEST", 0),
    ("header has trailing bytes", "request", [_hex(1, "PING", 9) + "00"], "BAD_REQUEST", 0),
    ("header is a map", "request", ["81a17601"], "BAD_REQUEST", 0),
    ("header is too short", "request", [_hex(1)], "BAD_REQUEST", 0),
    ("unsupported version", "request", [_hex(2, "PING", 9)], "BAD_VERSION", 9),
    ("version as a string", "request", [_hex("1", "PING", 9)], "BAD_VERSION", 9),
    ("version as true", "request", ["93c3a450494e4709"], "BAD_VERSION", 9),
    ("unknown command", "request", [_hex(1, "FROB", 10)], "UNKNOWN_COMMAND", 10),
    ("command is not a string", "request", [_hex(1, 5, 10)], "BAD_REQUEST", 10),
    ("PING with an extra field", "request", [_hex(1, "PING", 11, 0)], "BAD_REQUEST", 11),
    ("PING with an extra frame", "request", [_hex(1, "PING", 11), ""], "BAD_REQUEST", 11),
    ("negative request id", "request", [_hex(1, "PING", -1)], "BAD_REQUEST", 0),
    ("request id over 2**53-1", "request", [_hex(1, "PING", 2**53)], "BAD_REQUEST", 0),
    (
        "SUB missing its options",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"])],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB with a key that is not 40 Z85 characters",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"key": "short"})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB with a durable name that is not a string",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"durable": 7})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB with a group that is not a string",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"group": ["workers"]})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB asking for history both since a time and from a seq",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"history": {"since": 1.5, "from": 3}})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB asking for history from seq 0",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"history": {"from": 0}})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB asking for the history of a stream without a seq",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"history": {"last": 5, "stream": 9}})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUBJECTS with an unknown option",
        "request",
        [_hex(1, "SUBJECTS", 35, {"limit": 5})],
        "BAD_REQUEST",
        35,
    ),
    ("NUMSUB without subjects", "request", [_hex(1, "NUMSUB", 36)], "BAD_REQUEST", 36),
    (
        "PUB item with a ttl but not retained",
        "request",
        [_hex(1, "PUB", 41, False, [[["a"], 1, {"ttl": 5}]]), "c0"],
        "BAD_REQUEST",
        41,
    ),
    (
        "PUB item with an unknown option",
        "request",
        [_hex(1, "PUB", 42, False, [[["a"], 1, {"keep": True}]]), "c0"],
        "BAD_REQUEST",
        42,
    ),
    (
        "SUB subjects not an array",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, "a", {})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB subject as bin, not str",
        "request",
        [msgpack.packb([1, "SUB", 12, SID, ENDPOINT, [b"a"], {}], use_bin_type=True).hex()],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB subject that is not UTF-8",
        "request",
        # [1, "SUB", 12, SID, ENDPOINT, [<str of bytes c3 28>], {}]: c3 28 is not UTF-8
        ["9701" + _item("SUB") + "0c" + _item(SID) + _item(ENDPOINT) + "91a2c32880"],
        "BAD_REQUEST",
        0,
    ),
    (
        "SUB unknown option",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"colour": 1})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB unknown policy",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"policy": "maybe"})],
        "BAD_POLICY",
        12,
    ),
    (
        "SUB negative queue",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"queue": -1})],
        "BAD_REQUEST",
        12,
    ),
    (
        "PUB with fewer payload frames than items",
        "request",
        [_hex(1, "PUB", 13, False, [[["a"], 1]])],
        "BAD_REQUEST",
        13,
    ),
    (
        "PUB item is not [subjects, format]",
        "request",
        [_hex(1, "PUB", 13, False, [["a", 1]]), "c0"],
        "BAD_REQUEST",
        13,
    ),
    (
        "PUB format out of range",
        "request",
        [_hex(1, "PUB", 13, False, [[["a"], 200]]), "c0"],
        "BAD_REQUEST",
        13,
    ),
    (
        "PUB confirm is not a boolean",
        "request",
        [_hex(1, "PUB", 13, 1, [[["a"], 1]]), "c0"],
        "BAD_REQUEST",
        13,
    ),
    ("ACK with a string seq", "request", [_hex(1, "ACK", 0, SID, "42")], "BAD_REQUEST", 0),
    (
        "SUB with an empty sid",
        "request",
        [_hex(1, "SUB", 29, "", ENDPOINT, ["a"], {})],
        "BAD_REQUEST",
        29,
    ),
    (
        "SUBMATCH with an empty sid",
        "request",
        [_hex(1, "SUBMATCH", 37, "", ENDPOINT, ["a"], {})],
        "BAD_REQUEST",
        37,
    ),
    ("UNSUB with an empty sid", "request", [_hex(1, "UNSUB", 38, "", ["a"])], "BAD_REQUEST", 38),
    ("ACK with an empty sid", "request", [_hex(1, "ACK", 0, "", 42)], "BAD_REQUEST", 0),
    ("HEARTBEAT with an empty sid", "request", [_hex(1, "HEARTBEAT", 39, "")], "BAD_REQUEST", 39),
    (
        "SUBSCRIBERS of an empty id",
        "request",
        [_hex(1, "SUBSCRIBERS", 40, {"id": ""})],
        "BAD_REQUEST",
        40,
    ),
    (
        "SUBSCRIBERS of an id that is not lower-case hex",
        "request",
        [_hex(1, "SUBSCRIBERS", 47, {"id": "5F0C"})],
        "BAD_REQUEST",
        47,
    ),
    ("PUB of no items", "request", [_hex(1, "PUB", 44, True, [])], "BAD_REQUEST", 44),
    (
        "retained event with ttl 0",
        "request",
        [_hex(1, "PUB", 43, False, [[["a"], 1, {"retain": True, "ttl": 0}]]), "c0"],
        "BAD_REQUEST",
        43,
    ),
    (
        "retained event with an infinite ttl",
        "request",
        [
            msgpack.packb(
                [1, "PUB", 45, False, [[["a"], 1, {"retain": True, "ttl": float("inf")}]]]
            ).hex(),
            "c0",
        ],
        "BAD_REQUEST",
        45,
    ),
    (
        "SUB negative max_stall",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"max_stall": -1})],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB max_stall that is NaN",
        "request",
        [msgpack.packb([1, "SUB", 12, SID, ENDPOINT, ["a"], {"max_stall": float("nan")}]).hex()],
        "BAD_REQUEST",
        12,
    ),
    (
        "SUB with a key of 40 Z85 characters that are not 32 bytes",
        "request",
        [_hex(1, "SUB", 12, SID, ENDPOINT, ["a"], {"key": "#" * 40})],
        "BAD_REQUEST",
        12,
    ),
    ("reply of unknown kind", "reply", [_hex(1, "MAYBE", 1, {})], "UNKNOWN_COMMAND", 0),
    (
        "OK body with a bin value",
        "reply",
        [msgpack.packb([1, "OK", 1, {"x": b"\x00"}], use_bin_type=True).hex()],
        "BAD_REQUEST",
        0,
    ),
    ("OK body with an extension type", "reply", ["9401a24f4b0181a178d40100"], "BAD_REQUEST", 0),
    ("ERR without a message", "reply", [_hex(1, "ERR", 1, "BAD_REQUEST")], "BAD_REQUEST", 0),
    (
        "EV with more payloads than events",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", 1.5, 1]]), "c0", "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV of no events",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [])],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV whose first seq is 0",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 0, [["a", 1.5, 1]]), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV whose last seq is over 2**53-1",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 2**53 - 1, [["a", 1.5, 1], ["a", 1.5, 1]]), "c0", "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV event with a seq of its own (the layout before first seq)",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [[1, "a", 1.5, 1]]), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV event with a time that is not a number",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", "now", 1]]), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV event with NaN time",
        "delivery",
        [msgpack.packb([1, "EV", SID, 1, 0, 1, [["a", float("nan"), 1]]]).hex(), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV event flags that are not a map",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", 1.5, 1, True]]), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV with inline payloads and a payload frame as well",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", 1.5, 1]], [b"\xc0"]), "c0"],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV with fewer inline payloads than events",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", 1.5, 1], ["a", 1.5, 1]], [b"\xc0"])],
        "BAD_REQUEST",
        0,
    ),
    (
        "EV inline payloads that are not bin",
        "delivery",
        [_hex(1, "EV", SID, 1, 0, 1, [["a", 1.5, 1]], ["text"])],
        "BAD_REQUEST",
        0,
    ),
    ("LOST of no events", "delivery", [_hex(1, "LOST", SID, 1, 0, 10)], "BAD_REQUEST", 0),
    (
        "LOST of more events than were numbered",
        "delivery",
        [_hex(1, "LOST", SID, 1, 11, 10)],
        "BAD_REQUEST",
        0,
    ),
    (
        "LOST with a payload frame",
        "delivery",
        [_hex(1, "LOST", SID, 1, 1, 1), "c0"],
        "BAD_REQUEST",
        0,
    ),
    ("LOST without its seq", "delivery", [_hex(1, "LOST", SID, 1, 1)], "BAD_REQUEST", 0),
    ("BYE without its stream", "delivery", [_hex(1, "BYE", SID)], "BAD_REQUEST", 0),
    ("BYE with a payload frame", "delivery", [_hex(1, "BYE", SID, 1), "c0"], "BAD_REQUEST", 0),
    (
        "PUB inline payloads that are not an array",
        "request",
        [_hex(1, "PUB", 51, False, [[["a"], 1]], b"\xc0")],
        "BAD_REQUEST",
        51,
    ),
]

# Request vectors above that get no reply at all: a request whose command is ACK is never
# answered, not even when it is malformed (SPEC 3).
UNANSWERED = frozenset({"ACK with a string seq", "ACK with an empty sid"})


# Frames that decode, but that a server with the default limits must refuse:
# (name, frames as hex, error code, rid). Servers with other limits may answer differently.
REFUSED: list[tuple[str, list[str], str, int]] = [
    (
        "subscribe to an empty subject",
        [_hex(1, "SUB", 20, SID, ENDPOINT, [""], {})],
        "BAD_SUBJECT",
        20,
    ),
    ("subscribe to no subjects", [_hex(1, "SUB", 21, SID, ENDPOINT, [], {})], "BAD_SUBJECT", 21),
    (
        "subscribe with an empty durable name",
        [_hex(1, "SUB", 25, SID, ENDPOINT, ["a"], {"durable": ""})],
        "BAD_REQUEST",
        25,
    ),
    (
        "subscribe with a durable name over 128 bytes",
        [_hex(1, "SUB", 26, SID, ENDPOINT, ["a"], {"durable": "d" * 129})],
        "BAD_REQUEST",
        26,
    ),
    (
        "subscribe with a durable name starting $",
        [_hex(1, "SUB", 27, SID, ENDPOINT, ["a"], {"durable": "$history"})],
        "BAD_REQUEST",
        27,
    ),
    (
        "join a group whose name starts $",
        [_hex(1, "SUB", 28, SID, ENDPOINT, ["a"], {"group": "$workers"})],
        "BAD_REQUEST",
        28,
    ),
    (
        "join a durable group under another durable name",
        [_hex(1, "SUB", 29, SID, ENDPOINT, ["a"], {"group": "workers", "durable": "other"})],
        "BAD_REQUEST",
        29,
    ),
    (
        "publish on the server's reserved prefix",
        [_hex(1, "PUB", 23, True, [[["$ES.subscriber.joined"], 1]]), "c0"],
        "BAD_SUBJECT",
        23,
    ),
    (
        "subject over 256 bytes",
        [_hex(1, "SUB", 22, SID, ENDPOINT, ["x" * 257], {})],
        "BAD_SUBJECT",
        22,
    ),
    (
        "pattern with a backreference",
        [_hex(1, "SUBMATCH", 23, SID, ENDPOINT, [r"(a)\1"], {})],
        "BAD_PATTERN",
        23,
    ),
    (
        "pattern with lookahead",
        [_hex(1, "SUBMATCH", 24, SID, ENDPOINT, ["(?=a)b"], {})],
        "BAD_PATTERN",
        24,
    ),
    (
        "endpoint with a host name",
        [_hex(1, "SUB", 25, SID, "tcp://localhost:40123", ["a"], {})],
        "BAD_ENDPOINT",
        25,
    ),
    (
        "endpoint that is not tcp",
        [_hex(1, "SUB", 26, SID, "ipc:///tmp/x", ["a"], {})],
        "BAD_ENDPOINT",
        26,
    ),
    (
        "unbounded queue on a capped server",
        [_hex(1, "SUB", 27, SID, ENDPOINT, ["a"], {"queue": 0})],
        "BAD_POLICY",
        27,
    ),
    (
        "queue over the server's largest",
        [_hex(1, "SUB", 34, SID, ENDPOINT, ["a"], {"queue": 100_001})],
        "BAD_POLICY",
        34,
    ),
    (
        "sid over 128 bytes",
        [_hex(1, "SUB", 35, "s" * 129, ENDPOINT, ["a"], {})],
        "BAD_REQUEST",
        35,
    ),
    (
        "max_stall over the server's limit",
        [_hex(1, "SUB", 28, SID, ENDPOINT, ["a"], {"max_stall": 3600})],
        "BAD_POLICY",
        28,
    ),
    (
        "publish to 101 subjects",
        [_hex(1, "PUB", 30, True, [[[f"s{i}" for i in range(101)], 1]]), "c0"],
        "LIMIT_EXCEEDED",
        30,
    ),
    ("publish with no subject", [_hex(1, "PUB", 31, True, [[[], 1]]), "c0"], "BAD_SUBJECT", 31),
    (
        "publish to an empty subject",
        [_hex(1, "PUB", 32, True, [[[""], 1]]), "c0"],
        "BAD_SUBJECT",
        32,
    ),
    (
        "publish of 1001 events",
        [_hex(1, "PUB", 33, True, [[["a"], 0]] * 1001), *[""] * 1001],
        "LIMIT_EXCEEDED",
        33,
    ),
    (
        "unsubscribe 10001 names",
        [_hex(1, "UNSUB", 36, SID, [""] * 10_001)],
        "LIMIT_EXCEEDED",
        36,
    ),
]
