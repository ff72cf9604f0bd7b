"""Field readers of the wire codec: each takes one decoded msgpack value and the field's name,
and returns it checked, or raises RemoteProtocolError with a stable code (SPEC 2, 3 and 6).

Pure and total like the codec (clients.wire.codec) and the name server's codec (clients.wire.ns),
which both read their fields with these.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from clients.errors import ErrorCode, RemoteProtocolError
from clients.wire.messages import MAX_INT, Options, Policy, Replay

__all__ = [
    "MAX_DEPTH",
    "POLICIES",
    "Reader",
    "array",
    "body",
    "curve_key",
    "fail",
    "flag",
    "is_int",
    "lifetime",
    "options_reader",
    "payload_format",
    "plain",
    "positive",
    "public_id",
    "queue_options",
    "replay",
    "seconds",
    "sid",
    "text",
    "texts",
    "timestamp",
    "uint",
]

MAX_DEPTH = 32
"""Deepest nesting accepted in a reply body: far below Python's recursion limit."""

POLICIES = tuple(policy.value for policy in Policy)

_OPTION_KEYS = frozenset(
    {"policy", "queue", "max_stall", "key", "name", "durable", "group", "history"}
)
_REPLAY_KEYS = frozenset({"last", "since", "from", "stream"})
_Z85_DIGITS = (  # ZeroMQ RFC 32: the digit each character stands for is its place here
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
_Z85 = frozenset(_Z85_DIGITS)
_UINT32 = 2**32 - 1  # the most five Z85 characters may stand for: they encode four bytes

Reader = Callable[[Any, str], Any]


def fail(code: ErrorCode, message: str, rid: int = 0) -> RemoteProtocolError:
    """The protocol error for a refused field: its stable code, a message, the rid if known."""
    return RemoteProtocolError(code, message, rid)


def is_int(value: object) -> bool:
    """An integer that is not a bool (msgpack true is not 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


# --- field readers: each takes a decoded value and the field's name, returns it checked -------


def uint(value: Any, name: str) -> int:
    """An integer from 0 to 2**53-1 (it survives a JavaScript number)."""
    if not is_int(value) or not 0 <= value <= MAX_INT:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be an integer from 0 to 2**53-1")
    return int(value)


def positive(value: Any, name: str) -> int:
    """An integer from 1 to 2**53-1."""
    number = uint(value, name)
    if number == 0:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be at least 1")
    return number


def text(value: Any, name: str) -> str:
    """A string."""
    if not isinstance(value, str):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a string")
    return value


def sid(value: Any, name: str) -> str:
    """A subscriber id: a string of at least one character (its maximum length is the
    server's limit, not the codec's)."""
    if not isinstance(value, str) or not value:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a non-empty string")
    return value


def public_id(value: Any, name: str) -> str:
    """A subscriber's public id (SPEC 7.1), or the start of one: 1 to 16 lower-case hex digits."""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= 16
        or value.strip("0123456789abcdef") != ""
    ):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be 1 to 16 lower-case hex digits")
    return value


def texts(value: Any, name: str) -> tuple[str, ...]:
    """An array of strings, as a tuple."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be an array of strings")
    return tuple(value)


def flag(value: Any, name: str) -> bool:
    """A boolean."""
    if not isinstance(value, bool):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be true or false")
    return value


def seconds(value: Any, name: str) -> float:
    """A finite number of seconds, at least 0 (an integer is taken too)."""
    ok = (is_int(value) or isinstance(value, float)) and math.isfinite(value) and value >= 0
    if not ok:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a finite number of seconds >= 0")
    return float(value)


def lifetime(value: Any, name: str) -> float:
    """Seconds something is kept: a finite number above 0 (0 would keep it for no time)."""
    kept = seconds(value, name)
    if kept == 0:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a finite number of seconds > 0")
    return kept


def queue_options(value: Any, name: str) -> Options:
    """The options map of SUB and SUBMATCH (SPEC 3.1): known keys only, each checked."""
    if not isinstance(value, dict):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a map")
    unknown = sorted(str(k) for k in value if k not in _OPTION_KEYS)
    if unknown:
        raise fail(ErrorCode.BAD_REQUEST, f"unknown option {unknown[0]!r} in {name}")
    policy = value.get("policy")
    if policy is not None and policy not in POLICIES:
        raise fail(ErrorCode.BAD_POLICY, "policy must be 'block' or 'drop'")
    queue = value.get("queue")
    max_stall = value.get("max_stall")
    key = value.get("key")
    return Options(
        policy=None if policy is None else Policy(policy),
        queue_size=None if queue is None else uint(queue, "queue"),
        max_stall=None if max_stall is None else seconds(max_stall, "max_stall"),
        key=None if key is None else curve_key(key),
        name=None if value.get("name") is None else text(value["name"], "name"),
        durable=None if value.get("durable") is None else text(value["durable"], "durable"),
        group=None if value.get("group") is None else text(value["group"], "group"),
        history=None if value.get("history") is None else replay(value["history"]),
    )


def replay(value: Any) -> Replay:
    """The `history` option (SPEC 7.11): a map with exactly one of `last` (an integer from 0),
    `since` (a time) and `from` (a seq from 1), and `stream` (an integer from 1) only with
    `from`."""
    if not isinstance(value, dict) or not _REPLAY_KEYS.issuperset(value):
        raise fail(ErrorCode.BAD_REQUEST, "history must be a map of last, since, from, stream")
    asked = [k for k in ("last", "since", "from") if value.get(k) is not None]
    if len(asked) != 1:
        raise fail(ErrorCode.BAD_REQUEST, "history must give one of last, since and from")
    stream = value.get("stream")
    if stream is not None and asked[0] != "from":
        raise fail(ErrorCode.BAD_REQUEST, "history gives stream only with from")
    last, since, start = value.get("last"), value.get("since"), value.get("from")
    return Replay(
        last=None if last is None else uint(last, "history last"),
        since=None if since is None else timestamp(since),
        start=None if start is None else positive(start, "history from"),
        stream=None if stream is None else positive(stream, "history stream"),
    )


def curve_key(value: Any) -> str:
    """A CurveZMQ public key in Z85: 40 characters of its alphabet, in groups of five that each
    stand for four bytes (at most 2**32-1). Anything else would make ZeroMQ refuse the key
    when the server sets it on the subscriber's delivery socket."""
    ok = isinstance(value, str) and len(value) == 40 and _Z85.issuperset(value)
    if not ok or any(_z85_group(value[i : i + 5]) > _UINT32 for i in range(0, 40, 5)):
        raise fail(
            ErrorCode.BAD_REQUEST, "key must be a CurveZMQ public key: 40 Z85 characters (32 bytes)"
        )
    return str(value)


def _z85_group(chars: str) -> int:
    number = 0
    for char in chars:
        number = number * 85 + _Z85_DIGITS.index(char)
    return number


def plain(value: Any, name: str, depth: int = 0) -> Any:
    """Accept only core msgpack types, nested at most MAX_DEPTH deep."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= MAX_DEPTH:
        raise fail(ErrorCode.BAD_REQUEST, f"{name} is nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [plain(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: plain(v, name, depth + 1) for k, v in value.items()}
    raise fail(ErrorCode.BAD_REQUEST, f"{name} holds a value that is not a core msgpack type")


def body(value: Any, name: str) -> dict[str, Any]:
    """A map with string keys holding only core msgpack types (an OK body, event flags)."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a map with string keys")
    result: dict[str, Any] = plain(value, name)
    return result


def options_reader(allowed: dict[str, Reader]) -> Reader:
    """A reader for a map of optional settings: unknown keys refused, each value checked."""

    def read(value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(ErrorCode.BAD_REQUEST, f"{name} must be a map")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise fail(ErrorCode.BAD_REQUEST, f"unknown option {unknown[0]!r} in {name}")
        return {k: allowed[k](v, k) for k, v in value.items()}

    return read


def array(value: Any, name: str) -> list[Any]:
    """An array."""
    if not isinstance(value, list):
        raise fail(ErrorCode.BAD_REQUEST, f"{name} must be an array")
    return value


def payload_format(value: Any) -> int:
    """An event's payload format, an integer from 0 to 127 (SPEC 8)."""
    if not is_int(value) or not 0 <= value <= 127:
        raise fail(ErrorCode.BAD_REQUEST, "format must be an integer from 0 to 127")
    return int(value)


def timestamp(value: Any) -> float:
    """A time: a finite number (an integer is taken too)."""
    if not (is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        raise fail(ErrorCode.BAD_REQUEST, "time must be a finite number")
    return float(value)
