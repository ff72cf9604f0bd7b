"""Messages to frames: the encoding half of the wire codec (clients.wire.codec decodes).

Pure like the decoder: no zmq, no clock. Headers hold only core msgpack types; payloads travel
as they are, in frames of their own or, small enough, inside the header (SPEC 3.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from clients.errors import ErrorCode, LocalProtocolError
from clients.wire.messages import (
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
    "MAX_FRAMES",
    "MAX_HEADER_BYTES",
    "encode",
    "encode_delivery",
    "encode_loss",
    "pack_header",
]

MAX_HEADER_BYTES = 1 << 20
"""Hard ceiling on a header frame; a server may set lower limits of its own."""

MAX_FRAMES = 10_001
"""Hard ceiling on frames in one message: a header and up to 10,000 payloads."""


def pack_header(header: list[Any]) -> bytes:
    """A header as one msgpack frame; LocalProtocolError if it is over MAX_HEADER_BYTES."""
    data: bytes = msgpack.packb(header, use_bin_type=True)
    if len(data) > MAX_HEADER_BYTES:
        raise LocalProtocolError(ErrorCode.TOO_LARGE, f"header over {MAX_HEADER_BYTES} bytes")
    return data


def _options_map(options: Options) -> dict[str, Any]:
    fields = {
        "policy": options.policy,
        "queue": options.queue_size,
        "max_stall": options.max_stall,
        "key": options.key,
        "name": options.name,
    }
    return {k: v for k, v in fields.items() if v is not None}


def _item_meta(item: PubItem) -> tuple[Any, ...]:
    """[subjects, format] or [subjects, format, options]: msgpack writes a tuple as an array."""
    if not item.retain:
        return (item.subjects, item.fmt)
    options: dict[str, Any] = {"retain": True}
    if item.ttl is not None:
        options["ttl"] = item.ttl
    return (item.subjects, item.fmt, options)


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
        return [pack_header([VERSION, "EV", sid, stream, lost, metas, payloads])]
    return [pack_header([VERSION, "EV", sid, stream, lost, metas]), *payloads]


def encode_loss(sid: str, stream: int, lost: int, seq: int) -> list[bytes]:
    """The frame of a LOST notice: `lost` events up to and including `seq` were dropped."""
    return [pack_header([VERSION, "LOST", sid, stream, lost, seq])]


def encode(message: Request | Reply | InboxMessage) -> list[bytes]:
    """The frames for any message, ready for send_multipart."""
    match message:
        case Publish(rid, confirm, items, inline):
            return _publish(rid, confirm, items, inline)
        case Ok(rid, body):
            return [pack_header([VERSION, "OK", rid, body])]
        case Err(rid, code, text):
            return [pack_header([VERSION, "ERR", rid, str(code), text])]
        case Delivery(sid, stream, lost, events, inline):
            metas = [_event_meta(e) for e in events]
            payloads = [e.payload for e in events]
            return encode_delivery(sid, stream, lost, metas, payloads, inline)
        case Loss(sid, stream, lost, seq):
            return encode_loss(sid, stream, lost, seq)
        case Bye(sid, stream):
            return [pack_header([VERSION, "BYE", sid, stream])]
    return [pack_header(_request_header(message))]


def _publish(rid: int, confirm: bool, items: tuple[PubItem, ...], inline: bool) -> list[bytes]:
    if len(items) + 1 > MAX_FRAMES:
        raise LocalProtocolError(ErrorCode.TOO_LARGE, f"more than {MAX_FRAMES - 1} items")
    metas = [(i.subjects, i.fmt) if not i.retain else _item_meta(i) for i in items]
    payloads = [i.payload for i in items]
    if inline:
        return [pack_header([VERSION, "PUB", rid, confirm, metas, payloads])]
    return [pack_header([VERSION, "PUB", rid, confirm, metas]), *payloads]


def _request_header(message: object) -> list[Any]:
    """The header of a request that is one header frame (every request but PUB)."""
    match message:
        case Subscribe(rid, sid, endpoint, subjects, options):
            return [VERSION, "SUB", rid, sid, endpoint, list(subjects), _options_map(options)]
        case SubscribeMatch(rid, sid, endpoint, patterns, options):
            return [VERSION, "SUBMATCH", rid, sid, endpoint, list(patterns), _options_map(options)]
        case Unsubscribe(rid, sid, subjects):
            return [VERSION, "UNSUB", rid, sid, list(subjects)]
        case Ping(rid):
            return [VERSION, "PING", rid]
        case Stats(rid):
            return [VERSION, "STATS", rid]
        case Ack(rid, sid, seq):
            return [VERSION, "ACK", rid, sid, seq]
        case Heartbeat(rid, sid):
            return [VERSION, "HEARTBEAT", rid, sid]
        case ListSubjects(rid, pattern):
            return [VERSION, "SUBJECTS", rid, {} if pattern is None else {"pattern": pattern}]
        case NumSub(rid, subjects):
            return [VERSION, "NUMSUB", rid, list(subjects)]
        case ListSubscribers(rid, prefix):
            return [VERSION, "SUBSCRIBERS", rid, {} if prefix is None else {"id": prefix}]
    raise LocalProtocolError(ErrorCode.BAD_REQUEST, f"not a message: {type(message).__name__}")
