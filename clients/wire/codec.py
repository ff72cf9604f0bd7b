"""Frames to messages and back: the whole wire protocol, with no I/O.

Decoding is here, its hot paths in clients.wire.quick; encoding is in clients.wire.encoding,
whose functions this module re-exports.

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

from clients.errors import ErrorCode, RemoteProtocolError
from clients.wire import fields
from clients.wire.counts import PEEK_BYTES, Counts, check_counts, collector_paused
from clients.wire.encoding import (
    MAX_FRAMES,
    MAX_HEADER_BYTES,
    encode,
    encode_delivery,
    encode_loss,
    pack_event,
    pack_header,
)
from clients.wire.fields import POLICIES
from clients.wire.messages import (
    MAX_INT,
    VERSION,
    Ack,
    Bye,
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
from clients.wire.quick import PUB_START, quick_delivery, quick_publish

__all__ = [
    "INLINE_BYTES",
    "MAX_FRAMES",
    "MAX_HEADER_BYTES",
    "POLICIES",
    "PUB_BYTES_ACCEPTED",
    "PUB_ITEMS_ACCEPTED",
    "Table",
    "decode_command",
    "decode_delivery",
    "decode_header",
    "decode_reply",
    "decode_request",
    "encode",
    "encode_delivery",
    "encode_loss",
    "pack_event",
    "pack_header",
    "peek_command",
]

INLINE_BYTES = 256 << 10
"""Senders put payloads inside the header (one frame for the whole message) when together they
are no larger than this; larger ones travel in frames of their own, which are never copied into
a header."""

PUB_ITEMS_ACCEPTED = 256
PUB_BYTES_ACCEPTED = 256 << 10
"""Every server accepts a PUB of this many items and payload bytes (its limits cannot be set
lower), so a client may gather that much into one PUB without asking the server first."""


# --- header ------------------------------------------------------------------------------------


def decode_header(frames: Sequence[bytes], counts: Counts | None = None) -> list[Any]:
    """Unpack and check the header frame: an array that starts [version, command]. With
    `counts`, a counted array over its limit is refused before the header is unpacked."""
    if not frames:
        raise fields.fail(ErrorCode.BAD_REQUEST, "a message needs at least a header frame")
    if len(frames) > MAX_FRAMES:
        raise fields.fail(ErrorCode.TOO_LARGE, f"more than {MAX_FRAMES} frames")
    if len(frames[0]) > MAX_HEADER_BYTES:
        raise fields.fail(ErrorCode.TOO_LARGE, f"header frame over {MAX_HEADER_BYTES} bytes")
    if counts is not None:
        check_counts(frames, counts)
    try:
        header = msgpack.unpackb(frames[0], raw=False, strict_map_key=True, use_list=True)
    except ValueError as exc:  # every msgpack unpack error, UnicodeDecodeError included
        raise fields.fail(ErrorCode.BAD_REQUEST, f"header is not valid msgpack ({exc})") from None
    if not isinstance(header, list) or len(header) < 2:
        raise fields.fail(ErrorCode.BAD_REQUEST, "header must be an array [version, command, ...]")
    rid = (
        header[2]
        if len(header) > 2 and fields.is_int(header[2]) and 0 <= header[2] <= MAX_INT
        else 0
    )
    if not fields.is_int(header[0]) or header[0] != VERSION:
        raise fields.fail(ErrorCode.BAD_VERSION, f"protocol version {VERSION} is the only one", rid)
    if not isinstance(header[1], str):
        raise fields.fail(ErrorCode.BAD_REQUEST, "command must be a string", rid)
    return header


def _read(header: list[Any], readers: Sequence[tuple[str, fields.Reader]], start: int) -> list[Any]:
    """Check the header has exactly the fields after `start`, and read each one."""
    want = start + len(readers)
    if len(header) != want:
        raise fields.fail(
            ErrorCode.BAD_REQUEST, f"{header[1]} header has {len(header)} elements, not {want}"
        )
    return [read(header[start + i], name) for i, (name, read) in enumerate(readers)]


# A header array of 2 to 15 elements, then 1 and "PUB", as every encoder writes them.
_SHORT_ARRAYS = frozenset(bytes([0x90 + n]) for n in range(2, 16))


def peek_command(frames: Sequence[bytes]) -> str | None:
    """The command of a request, reading only the start of its header; None if it has none.

    For routing decisions (STATS may jump a queue) without decoding a whole, possibly large,
    header. Never raises.
    """
    if not frames or len(frames[0]) > MAX_HEADER_BYTES:
        return None
    head = frames[0]
    if head[:1] in _SHORT_ARRAYS and head[1:6] == PUB_START:  # the usual PUB, without an Unpacker
        return "PUB"
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(head[:PEEK_BYTES])  # not a copy of a whole large header: a command is short
    try:
        if unpacker.read_array_header() < 2:
            return None
        version = unpacker.unpack()
        if not fields.is_int(version) or version != VERSION:  # not true, nor 1.0
            return None
        command = unpacker.unpack()
    except (ValueError, msgpack.OutOfData, TypeError):
        return None
    return command if isinstance(command, str) else None


_item_options = fields.options_reader({"retain": fields.flag, "ttl": fields.lifetime})


# --- requests ------------------------------------------------------------------------------------

_REQUESTS: dict[str, tuple[Callable[..., Any], tuple[tuple[str, fields.Reader], ...]]] = {
    "SUB": (
        Subscribe,
        (
            ("sid", fields.sid),
            ("endpoint", fields.text),
            ("subjects", fields.texts),
            ("options", fields.queue_options),
        ),
    ),
    "SUBMATCH": (
        SubscribeMatch,
        (
            ("sid", fields.sid),
            ("endpoint", fields.text),
            ("patterns", fields.texts),
            ("options", fields.queue_options),
        ),
    ),
    "UNSUB": (Unsubscribe, (("sid", fields.sid), ("subjects", fields.texts))),
    "PING": (Ping, ()),
    "STATS": (Stats, ()),
    "ACK": (Ack, (("sid", fields.sid), ("seq", fields.uint))),
    "HEARTBEAT": (Heartbeat, (("sid", fields.sid),)),
    "SUBJECTS": (
        lambda rid, options: ListSubjects(rid, options.get("pattern")),
        (("options", fields.options_reader({"pattern": fields.text})),),
    ),
    "NUMSUB": (NumSub, (("subjects", fields.texts),)),
    "SUBSCRIBERS": (
        lambda rid, options: ListSubscribers(rid, options.get("id")),
        (("options", fields.options_reader({"id": fields.public_id})),),
    ),
}


def decode_request(frames: Sequence[bytes], counts: Counts | None = None) -> Request:
    """Decode a request as the event server's ROUTER sees it, without the routing-id frame. With
    a server's `counts`, an array over them is refused before its elements are read (SPEC 9)."""
    quick = quick_publish(frames, counts)
    return quick if quick is not None else decode_general(frames, counts)


def decode_general(frames: Sequence[bytes], counts: Counts | None = None) -> Request:
    """decode_request for every request: what quick_publish leaves, each field checked and
    every error told."""
    with collector_paused():
        header = decode_header(frames, counts)
        if header[1] != "PUB":
            request: Request = decode_command(header, frames, _REQUESTS)
            return request
        per_item = None if counts is None else counts.subjects_per_item
        publish: Publish = _with_rid(header, lambda: _decode_publish(header, frames, per_item))
    return publish


Table = dict[str, tuple[Callable[..., Any], tuple[tuple[str, fields.Reader], ...]]]
"""Header-only commands: command name -> (message class, its field readers after the rid)."""


def decode_command(header: list[Any], frames: Sequence[bytes], table: Table) -> Any:
    """A header-only request from a table of command -> (class, field readers after rid)."""

    def read() -> Any:
        command = header[1]
        if command not in table:
            raise fields.fail(ErrorCode.UNKNOWN_COMMAND, f"unknown command {command[:40]!r}")
        if len(frames) != 1:
            raise fields.fail(ErrorCode.BAD_REQUEST, f"{command} takes only a header frame")
        cls, readers = table[command]
        return cls(*_read(header, (("rid", fields.uint), *readers), 2))

    return _with_rid(header, read)


def _with_rid(header: list[Any], read: Callable[[], Any]) -> Any:
    """Run `read`; a protocol error it raises carries the request's rid, when it has one."""
    try:
        return read()
    except RemoteProtocolError as exc:
        rid = header[2] if len(header) > 2 and fields.is_int(header[2]) else 0
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
            raise fields.fail(
                ErrorCode.BAD_REQUEST, f"{kind} with inline payloads takes only a header"
            )
        if not isinstance(inline, list) or (checked and not all(type(p) is bytes for p in inline)):
            raise fields.fail(ErrorCode.BAD_REQUEST, _NOT_BIN)
        if len(inline) != count:
            raise fields.fail(
                ErrorCode.BAD_REQUEST, f"{kind} lists {count} items but {len(inline)} inline"
            )
        return inline
    if count != len(frames) - 1:
        raise fields.fail(
            ErrorCode.BAD_REQUEST, f"{kind} lists {count} items but carries {len(frames) - 1}"
        )
    return frames[1:]


_NOT_BIN = "inline payloads must be an array of bin"
# Where a header's inline payloads are, when it has them.
_INLINE_AT = {"PUB": 5, "EV": 7}


def _decode_publish(header: list[Any], frames: Sequence[bytes], per_item: int | None) -> Publish:
    inline = len(header) == _INLINE_AT["PUB"] + 1
    readers = (("rid", fields.uint), ("confirm", fields.flag), ("items", fields.array))
    rid, confirm, items = _read(header[:5] if inline else header, readers, 2)
    if not items:
        raise fields.fail(ErrorCode.BAD_REQUEST, "a PUB carries at least one item")
    payloads = _payloads(header, frames, "PUB", len(items))
    decoded = tuple(
        _pub_item(item, payload, per_item) for item, payload in zip(items, payloads, strict=True)
    )
    return Publish(rid, confirm, decoded, inline)


def _pub_item(item: Any, payload: bytes, per_item: int | None) -> PubItem:
    """One PUB item, checked: [subjects, format] or [subjects, format, options]."""
    if not isinstance(item, list) or len(item) not in (2, 3):
        raise fields.fail(
            ErrorCode.BAD_REQUEST, "each PUB item must be [subjects, format, options?]"
        )
    if per_item is not None and type(item[0]) is list and len(item[0]) > per_item:
        raise fields.fail(ErrorCode.LIMIT_EXCEEDED, f"more than {per_item} subjects in an item")
    subjects = fields.texts(item[0], "item subjects")
    fmt = fields.payload_format(item[1])
    if len(item) == 2:
        return PubItem(subjects, fmt, bytes(payload))
    options = _item_options(item[2], "item options")
    retain = bool(options.get("retain", False))
    ttl = options.get("ttl")
    if ttl is not None and not retain:
        raise fields.fail(ErrorCode.BAD_REQUEST, "ttl is for retained events only")
    return PubItem(subjects, fmt, bytes(payload), retain, ttl)


# --- replies -------------------------------------------------------------------------------------


def decode_reply(frames: Sequence[bytes]) -> Reply:
    """Decode a reply as the client's DEALER sees it."""
    header = decode_header(frames)
    if len(frames) != 1:
        raise fields.fail(ErrorCode.BAD_REQUEST, "a reply is a single header frame")
    if header[1] == "OK":
        rid, body = _read(header, (("rid", fields.uint), ("body", fields.body)), 2)
        return Ok(rid, body)
    if header[1] == "ERR":
        rid, code, message = _read(
            header, (("rid", fields.uint), ("code", fields.text), ("message", fields.text)), 2
        )
        return Err(rid, code, message)
    raise fields.fail(ErrorCode.UNKNOWN_COMMAND, f"unknown reply {header[1][:40]!r}")


# --- event delivery ------------------------------------------------------------------------------


def decode_delivery(frames: Sequence[bytes]) -> InboxMessage:
    """Decode what a subscriber's ROUTER receives, without the routing-id frame: an event batch
    (EV), a loss notice (LOST) or a goodbye (BYE)."""
    quick = quick_delivery(frames)
    return quick if quick is not None else decode_delivery_general(frames)


def decode_delivery_general(frames: Sequence[bytes]) -> InboxMessage:
    """decode_delivery for every message: what quick_delivery leaves, each field checked and
    every error told."""
    header = decode_header(frames)
    if header[1] in ("BYE", "LOST"):
        if len(frames) != 1:
            what = "a goodbye" if header[1] == "BYE" else "a loss notice"
            raise fields.fail(ErrorCode.BAD_REQUEST, f"{what} is a single header frame")
        return _notice(header)
    if header[1] != "EV":
        raise fields.fail(ErrorCode.UNKNOWN_COMMAND, f"unknown delivery {header[1][:40]!r}")
    inline = len(header) == _INLINE_AT["EV"] + 1
    sid, stream, lost, first, events = _read(
        header[:7] if inline else header,
        (
            ("sid", fields.text),
            ("stream", fields.uint),
            ("lost", fields.uint),
            ("first", fields.positive),
            ("events", fields.array),
        ),
        2,
    )
    if not events:
        raise fields.fail(ErrorCode.BAD_REQUEST, "an EV carries at least one event")
    if first + len(events) - 1 > MAX_INT:
        raise fields.fail(ErrorCode.BAD_REQUEST, "an EV's last seq must be at most 2**53-1")
    payloads = _payloads(header, frames, "EV", len(events), checked=False)
    return Delivery(sid, stream, lost, _event_items(first, events, payloads), inline)


def _notice(header: list[Any]) -> Bye | Loss:
    """A BYE or a LOST notice: one header frame, no payloads."""
    if header[1] == "BYE":
        sid, stream = _read(header, (("sid", fields.text), ("stream", fields.uint)), 2)
        return Bye(sid, stream)
    readers = (
        ("sid", fields.text),
        ("stream", fields.uint),
        ("lost", fields.positive),
        ("seq", fields.uint),
    )
    sid, stream, lost, seq = _read(header, readers, 2)
    if lost > seq:
        raise fields.fail(ErrorCode.BAD_REQUEST, "a loss notice cannot lose more events than seq")
    return Loss(sid, stream, lost, seq)


def _event_items(first: int, events: list[Any], payloads: Sequence[Any]) -> tuple[EventItem, ...]:
    """The events of an EV batch, numbered from `first`. The common case is checked inline: this
    loop runs for every event a subscriber gets."""
    items = []
    isfinite = math.isfinite
    for seq, (meta, payload) in enumerate(zip(events, payloads, strict=True), first):
        if type(meta) is list and len(meta) == 3 and type(payload) is bytes:
            subject, time, fmt = meta
            if (
                type(subject) is str
                and type(time) is float
                and isfinite(time)
                and type(fmt) is int
                and 0 <= fmt <= 127
            ):
                items.append(EventItem(seq, subject, time, fmt, payload))
                continue
        items.append(_event_item(seq, meta, payload))
    return tuple(items)


def _event_item(seq: int, meta: Any, payload: Any) -> EventItem:
    """One EV event, every field checked (and converted where the spec allows)."""
    if not isinstance(meta, list) or len(meta) not in (3, 4):
        raise fields.fail(
            ErrorCode.BAD_REQUEST, "each EV event must be [subject, time, format, flags?]"
        )
    if not isinstance(payload, bytes):
        raise fields.fail(ErrorCode.BAD_REQUEST, _NOT_BIN)
    flags = fields.body(meta[3], "event flags") if len(meta) == 4 else {}
    return EventItem(
        seq,
        fields.text(meta[0], "subject"),
        fields.timestamp(meta[1]),
        fields.payload_format(meta[2]),
        bytes(payload),
        flags.get("retained") is True,
        flags.get("resumed") is True,
        _history_seq(flags.get("history")),
        flags.get("replayed") is True,
        flags.get("redelivered") is True,
    )


def _history_seq(value: Any) -> int | None:
    """The `history` flag: the event's seq in the server's history, or None (a flag of another
    type is ignored, as unknown flags are)."""
    return int(value) if fields.is_int(value) and 0 < value <= MAX_INT else None
