"""Frames to messages and back: the whole wire protocol, with no I/O.

Invariants:
- No zmq import, no clock, no logging: bytes in, messages out (a test proves it).
- Decoding is total: any list of frames either decodes or raises `RemoteProtocolError` with a
  stable code; never KeyError, TypeError or a msgpack exception.
- Headers hold only core msgpack types (nil, bool, int, float, str, array, map); msgpack `bin` and
  extension types are refused, so nothing language-specific crosses the wire.
- Payload frames are never decoded here: they are opaque bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import msgpack

from clients.errors import ErrorCode, LocalProtocolError, RemoteProtocolError
from clients.wire.messages import (
    MAX_INT,
    VERSION,
    Ack,
    Delivery,
    Err,
    EventItem,
    Heartbeat,
    InboxMessage,
    ListSubjects,
    ListSubscribers,
    Loss,
    NumSub,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Reply,
    Request,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
)

__all__ = [
    "INLINE_BYTES",
    "MAX_FRAMES",
    "MAX_HEADER_BYTES",
    "POLICIES",
    "PUB_BYTES_ACCEPTED",
    "PUB_ITEMS_ACCEPTED",
    "decode_delivery",
    "decode_reply",
    "decode_request",
    "encode",
    "encode_delivery",
    "encode_loss",
    "peek_command",
]

MAX_HEADER_BYTES = 1 << 20
"""Hard ceiling on a header frame; a server may set lower limits of its own."""

MAX_FRAMES = 10_001
"""Hard ceiling on frames in one message: a header and up to 10,000 payloads."""

INLINE_BYTES = 256 << 10
"""Senders put payloads inside the header (one frame for the whole message) when together they
are no larger than this; larger ones travel in frames of their own, which are never copied into
a header."""

PUB_ITEMS_ACCEPTED = 256
PUB_BYTES_ACCEPTED = 256 << 10
"""Every server accepts a PUB of this many items and payload bytes (its limits cannot be set
lower), so a client may gather that much into one PUB without asking the server first."""

MAX_DEPTH = 32
"""Deepest nesting accepted in a reply body: far below Python's recursion limit."""

POLICIES = ("block", "drop")

_OPTION_KEYS = frozenset({"policy", "queue", "max_stall", "key", "name"})
_Z85_DIGITS = (  # ZeroMQ RFC 32: the digit each character stands for is its place here
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
)
_Z85 = frozenset(_Z85_DIGITS)
_UINT32 = 2**32 - 1  # the most five Z85 characters may stand for: they encode four bytes

Reader = Callable[[Any, str], Any]


def _fail(code: ErrorCode, message: str, rid: int = 0) -> RemoteProtocolError:
    return RemoteProtocolError(code, message, rid)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- field readers: each takes a decoded value and the field's name, returns it checked -------


def _uint(value: Any, name: str) -> int:
    if not _is_int(value) or not 0 <= value <= MAX_INT:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be an integer from 0 to 2**53-1")
    return int(value)


def _positive(value: Any, name: str) -> int:
    number = _uint(value, name)
    if number == 0:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be at least 1")
    return number


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a string")
    return value


def _sid(value: Any, name: str) -> str:
    """A subscriber id: a string of at least one character (its maximum length is the
    server's limit, not the codec's)."""
    if not isinstance(value, str) or not value:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a non-empty string")
    return value


def _texts(value: Any, name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be an array of strings")
    return tuple(value)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be true or false")
    return value


def _seconds(value: Any, name: str) -> float:
    ok = (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and value >= 0
    if not ok:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a finite number of seconds >= 0")
    return float(value)


def _lifetime(value: Any, name: str) -> float:
    """Seconds something is kept: a finite number above 0 (0 would keep it for no time)."""
    seconds = _seconds(value, name)
    if seconds == 0:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a finite number of seconds > 0")
    return seconds


def _options(value: Any, name: str) -> Options:
    if not isinstance(value, dict):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a map")
    unknown = sorted(str(k) for k in value if k not in _OPTION_KEYS)
    if unknown:
        raise _fail(ErrorCode.BAD_REQUEST, f"unknown option {unknown[0]!r} in {name}")
    policy = value.get("policy")
    if policy is not None and policy not in POLICIES:
        raise _fail(ErrorCode.BAD_POLICY, "policy must be 'block' or 'drop'")
    queue = value.get("queue")
    max_stall = value.get("max_stall")
    key = value.get("key")
    return Options(
        policy=policy,
        queue=None if queue is None else _uint(queue, "queue"),
        max_stall=None if max_stall is None else _seconds(max_stall, "max_stall"),
        key=None if key is None else _curve_key(key),
        name=None if value.get("name") is None else _text(value["name"], "name"),
    )


def _curve_key(value: Any) -> str:
    """A CurveZMQ public key in Z85: 40 characters of its alphabet, in groups of five that each
    stand for four bytes (at most 2**32-1). Anything else would make ZeroMQ refuse the key
    when the server sets it on the subscriber's delivery socket."""
    ok = isinstance(value, str) and len(value) == 40 and _Z85.issuperset(value)
    if not ok or any(_z85_group(value[i : i + 5]) > _UINT32 for i in range(0, 40, 5)):
        raise _fail(
            ErrorCode.BAD_REQUEST, "key must be a CurveZMQ public key: 40 Z85 characters (32 bytes)"
        )
    return str(value)


def _z85_group(chars: str) -> int:
    number = 0
    for char in chars:
        number = number * 85 + _Z85_DIGITS.index(char)
    return number


def _plain(value: Any, name: str, depth: int = 0) -> Any:
    """Accept only core msgpack types, nested at most MAX_DEPTH deep."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if depth >= MAX_DEPTH:
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} is nested deeper than {MAX_DEPTH}")
    if isinstance(value, list):
        return [_plain(v, name, depth + 1) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, name, depth + 1) for k, v in value.items()}
    raise _fail(ErrorCode.BAD_REQUEST, f"{name} holds a value that is not a core msgpack type")


def _body(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a map with string keys")
    result: dict[str, Any] = _plain(value, name)
    return result


# --- header ------------------------------------------------------------------------------------


def _header(frames: Sequence[bytes]) -> list[Any]:
    """Unpack and check the header frame: an array that starts [version, command]."""
    if not frames:
        raise _fail(ErrorCode.BAD_REQUEST, "a message needs at least a header frame")
    if len(frames) > MAX_FRAMES:
        raise _fail(ErrorCode.TOO_LARGE, f"more than {MAX_FRAMES} frames")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise _fail(ErrorCode.TOO_LARGE, f"header frame over {MAX_HEADER_BYTES} bytes")
    try:
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=True, use_list=True)
    except ValueError as exc:  # every msgpack unpack error, UnicodeDecodeError included
        raise _fail(ErrorCode.BAD_REQUEST, f"header is not valid msgpack ({exc})") from None
    if not isinstance(header, list) or len(header) < 2:
        raise _fail(ErrorCode.BAD_REQUEST, "header must be an array [version, command, ...]")
    rid = header[2] if len(header) > 2 and _is_int(header[2]) and 0 <= header[2] <= MAX_INT else 0
    if not _is_int(header[0]) or header[0] != VERSION:
        raise _fail(ErrorCode.BAD_VERSION, f"protocol version {VERSION} is the only one", rid)
    if not isinstance(header[1], str):
        raise _fail(ErrorCode.BAD_REQUEST, "command must be a string", rid)
    return header


def _read(header: list[Any], readers: Sequence[tuple[str, Reader]], start: int) -> list[Any]:
    """Check the header has exactly the fields after `start`, and read each one."""
    want = start + len(readers)
    if len(header) != want:
        raise _fail(
            ErrorCode.BAD_REQUEST, f"{header[1]} header has {len(header)} elements, not {want}"
        )
    return [read(header[start + i], name) for i, (name, read) in enumerate(readers)]


# A header array of 2 to 15 elements, then 1 and "PUB", as every encoder writes them.
_SHORT_ARRAYS = frozenset(bytes([0x90 + n]) for n in range(2, 16))
_PUB = msgpack.packb([VERSION, "PUB"])[1:]


def peek_command(frames: Sequence[bytes]) -> str | None:
    """The command of a request, reading only the start of its header; None if it has none.

    For routing decisions (STATS may jump a queue) without decoding a whole, possibly large,
    header. Never raises.
    """
    if not frames or len(frames[0]) > MAX_HEADER_BYTES:
        return None
    head = frames[0]
    if head[:1] in _SHORT_ARRAYS and head[1:6] == _PUB:  # the usual PUB, without an Unpacker
        return "PUB"
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=MAX_HEADER_BYTES)
    unpacker.feed(frames[0])
    try:
        if unpacker.read_array_header() < 2:
            return None
        version = unpacker.unpack()
        if not _is_int(version) or version != VERSION:  # not true, nor 1.0: as _header
            return None
        command = unpacker.unpack()
    except (ValueError, msgpack.OutOfData, TypeError):
        return None
    return command if isinstance(command, str) else None


def options_reader(allowed: dict[str, Reader]) -> Reader:
    """A reader for a map of optional settings: unknown keys refused, each value checked."""

    def read(value: Any, name: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be a map")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise _fail(ErrorCode.BAD_REQUEST, f"unknown option {unknown[0]!r} in {name}")
        return {k: allowed[k](v, k) for k, v in value.items()}

    return read


_item_options = options_reader({"retain": _flag, "ttl": _lifetime})


# --- requests ------------------------------------------------------------------------------------

_REQUESTS: dict[str, tuple[Callable[..., Any], tuple[tuple[str, Reader], ...]]] = {
    "SUB": (
        Subscribe,
        (("sid", _sid), ("endpoint", _text), ("subjects", _texts), ("options", _options)),
    ),
    "SUBMATCH": (
        SubscribeMatch,
        (("sid", _sid), ("endpoint", _text), ("patterns", _texts), ("options", _options)),
    ),
    "UNSUB": (Unsubscribe, (("sid", _sid), ("subjects", _texts))),
    "PING": (Ping, ()),
    "STATS": (Stats, ()),
    "ACK": (Ack, (("sid", _sid), ("seq", _uint))),
    "HEARTBEAT": (Heartbeat, (("sid", _sid),)),
    "SUBJECTS": (
        lambda rid, options: ListSubjects(rid, options.get("pattern")),
        (("options", options_reader({"pattern": _text})),),
    ),
    "NUMSUB": (NumSub, (("subjects", _texts),)),
    "SUBSCRIBERS": (
        lambda rid, options: ListSubscribers(rid, options.get("sid")),
        (("options", options_reader({"sid": _sid})),),
    ),
}


def decode_request(frames: Sequence[bytes]) -> Request:
    """Decode a request as the event server's ROUTER sees it, without the routing-id frame."""
    header = _header(frames)
    if header[1] == "PUB":
        publish: Publish = _with_rid(header, lambda: _decode_publish(header, frames))
        return publish
    request: Request = decode_command(header, frames, _REQUESTS)
    return request


Table = dict[str, tuple[Callable[..., Any], tuple[tuple[str, Reader], ...]]]


def decode_command(header: list[Any], frames: Sequence[bytes], table: Table) -> Any:
    """A header-only request from a table of command -> (class, field readers after rid)."""

    def read() -> Any:
        command = header[1]
        if command not in table:
            raise _fail(ErrorCode.UNKNOWN_COMMAND, f"unknown command {command[:40]!r}")
        if len(frames) != 1:
            raise _fail(ErrorCode.BAD_REQUEST, f"{command} takes only a header frame")
        cls, readers = table[command]
        return cls(*_read(header, (("rid", _uint), *readers), 2))

    return _with_rid(header, read)


def _with_rid(header: list[Any], read: Callable[[], Any]) -> Any:
    """Run `read`; a protocol error it raises carries the request's rid, when it has one."""
    try:
        return read()
    except RemoteProtocolError as exc:
        rid = header[2] if len(header) > 2 and _is_int(header[2]) else 0
        exc.rid = rid if 0 <= rid <= MAX_INT else 0
        raise


def _payloads(
    header: list[Any], frames: Sequence[bytes], kind: str, count: int, checked: bool = True
) -> Sequence[bytes]:
    """The payloads of a PUB or EV header with `count` items: inline after them in the header
    (and then no more frames), or one frame each. Inline ones are checked to be bin unless the
    caller checks each itself (`checked=False`)."""
    if len(header) == _INLINE_AT[kind] + 1:
        inline = header[_INLINE_AT[kind]]
        if len(frames) != 1:
            raise _fail(ErrorCode.BAD_REQUEST, f"{kind} with inline payloads takes only a header")
        if not isinstance(inline, list) or (checked and not all(type(p) is bytes for p in inline)):
            raise _fail(ErrorCode.BAD_REQUEST, _NOT_BIN)
        if len(inline) != count:
            raise _fail(
                ErrorCode.BAD_REQUEST, f"{kind} lists {count} items but {len(inline)} inline"
            )
        return inline
    if count != len(frames) - 1:
        raise _fail(
            ErrorCode.BAD_REQUEST, f"{kind} lists {count} items but carries {len(frames) - 1}"
        )
    return frames[1:]


_NOT_BIN = "inline payloads must be an array of bin"
# Where a header's inline payloads are, when it has them.
_INLINE_AT = {"PUB": 5, "EV": 6}


def _decode_publish(header: list[Any], frames: Sequence[bytes]) -> Publish:
    inline = len(header) == _INLINE_AT["PUB"] + 1
    fields = (("rid", _uint), ("confirm", _flag), ("items", _list))
    rid, confirm, items = _read(header[:5] if inline else header, fields, 2)
    if not items:
        raise _fail(ErrorCode.BAD_REQUEST, "a PUB carries at least one item")
    payloads = _payloads(header, frames, "PUB", len(items))
    decoded = []
    for item, payload in zip(items, payloads, strict=True):
        if not isinstance(item, list) or len(item) not in (2, 3):
            raise _fail(ErrorCode.BAD_REQUEST, "each PUB item must be [subjects, format, options?]")
        subjects = _texts(item[0], "item subjects")
        fmt = _fmt(item[1])
        if len(item) == 2:  # the common case, kept short: this runs for every event
            decoded.append(PubItem(subjects, fmt, bytes(payload)))
            continue
        options = _item_options(item[2], "item options")
        retain = bool(options.get("retain", False))
        ttl = options.get("ttl")
        if ttl is not None and not retain:
            raise _fail(ErrorCode.BAD_REQUEST, "ttl is for retained events only")
        decoded.append(PubItem(subjects, fmt, bytes(payload), retain, ttl))
    return Publish(rid, confirm, tuple(decoded), inline)


def _list(value: Any, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(ErrorCode.BAD_REQUEST, f"{name} must be an array")
    return value


def _fmt(value: Any) -> int:
    if not _is_int(value) or not 0 <= value <= 127:
        raise _fail(ErrorCode.BAD_REQUEST, "format must be an integer from 0 to 127")
    return int(value)


# --- replies -------------------------------------------------------------------------------------


def decode_reply(frames: Sequence[bytes]) -> Reply:
    """Decode a reply as the client's DEALER sees it."""
    header = _header(frames)
    if len(frames) != 1:
        raise _fail(ErrorCode.BAD_REQUEST, "a reply is a single header frame")
    if header[1] == "OK":
        rid, body = _read(header, (("rid", _uint), ("body", _body)), 2)
        return Ok(rid, body)
    if header[1] == "ERR":
        rid, code, message = _read(header, (("rid", _uint), ("code", _text), ("message", _text)), 2)
        return Err(rid, code, message)
    raise _fail(ErrorCode.UNKNOWN_COMMAND, f"unknown reply {header[1][:40]!r}")


# --- event delivery ------------------------------------------------------------------------------


def decode_delivery(frames: Sequence[bytes]) -> InboxMessage:
    """Decode what a subscriber's ROUTER receives, without the routing-id frame: an event batch
    (EV) or a loss notice (LOST)."""
    header = _header(frames)
    if header[1] == "LOST":
        if len(frames) != 1:
            raise _fail(ErrorCode.BAD_REQUEST, "a loss notice is a single header frame")
        fields = (("sid", _text), ("stream", _uint), ("lost", _positive), ("seq", _uint))
        sid, stream, lost, seq = _read(header, fields, 2)
        if lost > seq:
            raise _fail(ErrorCode.BAD_REQUEST, "a loss notice cannot lose more events than seq")
        return Loss(sid, stream, lost, seq)
    if header[1] != "EV":
        raise _fail(ErrorCode.UNKNOWN_COMMAND, f"unknown delivery {header[1][:40]!r}")
    inline = len(header) == _INLINE_AT["EV"] + 1
    sid, stream, lost, events = _read(
        header[:6] if inline else header,
        (("sid", _text), ("stream", _uint), ("lost", _uint), ("events", _list)),
        2,
    )
    payloads = _payloads(header, frames, "EV", len(events), checked=False)
    items = []
    isfinite = math.isfinite
    for meta, payload in zip(events, payloads, strict=True):
        # The common case, checked inline: this loop runs for every event a subscriber gets.
        if type(meta) is list and len(meta) == 4 and type(payload) is bytes:
            seq, subject, time, fmt = meta
            if (
                type(seq) is int
                and 0 <= seq <= MAX_INT
                and type(subject) is str
                and type(time) is float
                and isfinite(time)
                and type(fmt) is int
                and 0 <= fmt <= 127
            ):
                items.append(EventItem(seq, subject, time, fmt, payload))
                continue
        items.append(_event_item(meta, payload))
    return Delivery(sid, stream, lost, tuple(items), inline)


def _event_item(meta: Any, payload: Any) -> EventItem:
    """One EV event, every field checked (and converted where the spec allows)."""
    if not isinstance(meta, list) or len(meta) not in (4, 5):
        raise _fail(
            ErrorCode.BAD_REQUEST, "each EV event must be [seq, subject, time, format, flags?]"
        )
    if not isinstance(payload, bytes):
        raise _fail(ErrorCode.BAD_REQUEST, _NOT_BIN)
    flags = _body(meta[4], "event flags") if len(meta) == 5 else {}
    return EventItem(
        _uint(meta[0], "seq"),
        _text(meta[1], "subject"),
        _time(meta[2]),
        _fmt(meta[3]),
        bytes(payload),
        flags.get("retained") is True,
        flags.get("resumed") is True,
    )


def _time(value: Any) -> float:
    if not (_is_int(value) or isinstance(value, float)) or not math.isfinite(value):
        raise _fail(ErrorCode.BAD_REQUEST, "time must be a finite number")
    return float(value)


# --- encoding ------------------------------------------------------------------------------------


def _pack(header: list[Any]) -> bytes:
    data: bytes = msgpack.packb(header, use_bin_type=True)
    if len(data) > MAX_HEADER_BYTES:
        raise LocalProtocolError(ErrorCode.TOO_LARGE, f"header over {MAX_HEADER_BYTES} bytes")
    return data


def _options_map(options: Options) -> dict[str, Any]:
    fields = {
        "policy": options.policy,
        "queue": options.queue,
        "max_stall": options.max_stall,
        "key": options.key,
        "name": options.name,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _item_meta(item: PubItem) -> list[Any]:
    if not item.retain:
        return [list(item.subjects), item.fmt]
    options: dict[str, Any] = {"retain": True}
    if item.ttl is not None:
        options["ttl"] = item.ttl
    return [list(item.subjects), item.fmt, options]


def _event_meta(event: EventItem) -> tuple[Any, ...]:
    flags = {
        name: True for name, on in (("retained", event.retained), ("resumed", event.resumed)) if on
    }
    base = (event.seq, event.subject, event.time, event.fmt)
    return (*base, flags) if flags else base


def encode_delivery(
    sid: str,
    stream: int,
    lost: int,
    metas: Sequence[tuple[Any, ...]],
    payloads: Sequence[bytes],
    inline: bool = False,
) -> list[bytes]:
    """The frames of one EV batch: `metas` are (seq, subject, time, format) or, with flags,
    (seq, subject, time, format, {"retained": true}), one per payload; with `inline`, the
    payloads go inside the header."""
    if inline:
        return [_pack([VERSION, "EV", sid, stream, lost, metas, payloads])]
    return [_pack([VERSION, "EV", sid, stream, lost, metas]), *payloads]


def encode_loss(sid: str, stream: int, lost: int, seq: int) -> list[bytes]:
    """The frame of a LOST notice: `lost` events up to and including `seq` were dropped."""
    return [_pack([VERSION, "LOST", sid, stream, lost, seq])]


def encode(message: Request | Reply | InboxMessage) -> list[bytes]:
    """The frames for any message, ready for send_multipart."""
    match message:
        case Subscribe(rid, sid, endpoint, subjects, options):
            head = [VERSION, "SUB", rid, sid, endpoint, list(subjects), _options_map(options)]
            return [_pack(head)]
        case SubscribeMatch(rid, sid, endpoint, patterns, options):
            head = [VERSION, "SUBMATCH", rid, sid, endpoint, list(patterns), _options_map(options)]
            return [_pack(head)]
        case Unsubscribe(rid, sid, subjects):
            return [_pack([VERSION, "UNSUB", rid, sid, list(subjects)])]
        case Publish(rid, confirm, items, inline):
            if len(items) + 1 > MAX_FRAMES:
                raise LocalProtocolError(ErrorCode.TOO_LARGE, f"more than {MAX_FRAMES - 1} items")
            metas = [_item_meta(item) for item in items]
            payloads = [i.payload for i in items]
            if inline:
                return [_pack([VERSION, "PUB", rid, confirm, metas, payloads])]
            return [_pack([VERSION, "PUB", rid, confirm, metas]), *payloads]
        case Ping(rid):
            return [_pack([VERSION, "PING", rid])]
        case Stats(rid):
            return [_pack([VERSION, "STATS", rid])]
        case Ack(rid, sid, seq):
            return [_pack([VERSION, "ACK", rid, sid, seq])]
        case Heartbeat(rid, sid):
            return [_pack([VERSION, "HEARTBEAT", rid, sid])]
        case ListSubjects(rid, pattern):
            return [
                _pack([VERSION, "SUBJECTS", rid, {} if pattern is None else {"pattern": pattern}])
            ]
        case NumSub(rid, subjects):
            return [_pack([VERSION, "NUMSUB", rid, list(subjects)])]
        case ListSubscribers(rid, sid):
            return [_pack([VERSION, "SUBSCRIBERS", rid, {} if sid is None else {"sid": sid}])]
        case Ok(rid, body):
            return [_pack([VERSION, "OK", rid, body])]
        case Err(rid, code, text):
            return [_pack([VERSION, "ERR", rid, str(code), text])]
        case Delivery(sid, stream, lost, events, inline):
            metas_ev = [_event_meta(e) for e in events]
            payloads = [e.payload for e in events]
            return encode_delivery(sid, stream, lost, metas_ev, payloads, inline)
        case Loss(sid, stream, lost, seq):
            return encode_loss(sid, stream, lost, seq)
    raise LocalProtocolError(ErrorCode.BAD_REQUEST, f"not a message: {type(message).__name__}")
