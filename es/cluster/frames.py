"""An event on the backbone: what one node sends the others (SPEC 15.3). Pure: bytes in, bytes out.

Invariants:
- One NATS message carries one event on one subject, published on `backbone(subject)`; its body
  is one msgpack array of eight fields, the first the format version (1).
- `unpack` is total: any bytes either give a `RemoteEvent` or raise `BadFrame`, so nothing a
  node (or anyone else on the NATS cluster) sends can crash another.
- The subject keeps its original spelling; the backbone subject is only its folded address.
"""

from __future__ import annotations

from typing import NamedTuple

import msgpack

__all__ = ["VERSION", "BadFrame", "RemoteEvent", "pack", "unpack"]

VERSION = 1
"""The backbone format's version: a node drops (and counts) an event of any other."""

# Bounds the decoder puts on a message before msgpack builds anything from it: a node name and
# subject are short strings, the payload at most the largest message a node takes from a client
# (es.config.Limits.max_message_bytes); NATS's own max_payload bounds the whole message first.
_MAX_STR = 64 << 10
MAX_PAYLOAD = 64 << 20
"""The largest payload a node takes from the backbone (a node in a cluster takes no larger one
from its clients: es.config)."""


class BadFrame(ValueError):
    """A backbone message that is not a version-1 event."""


class RemoteEvent(NamedTuple):
    """One event as its origin node published it on the backbone."""

    node: str
    """The origin node's name (`es serve --node-name`)."""
    epoch: int
    """A number the origin drew at its start: with `seq`, it tells a restarted node's events
    from its earlier ones."""
    seq: int
    """The origin's count of events it put on the backbone, from 1 at its start: a receiving
    node takes each (node, epoch, seq) once, and in order."""
    time: float
    """The origin's server time of the publish (seconds since the epoch)."""
    subject: str
    """As the publisher spelled it."""
    fmt: int
    """The payload's format code (SPEC 8)."""
    payload: bytes


def pack(event: RemoteEvent) -> bytes:
    """The message body of `event`."""
    body: bytes = msgpack.packb(
        [
            VERSION,
            event.node,
            event.epoch,
            event.seq,
            event.time,
            event.subject,
            event.fmt,
            event.payload,
        ],
        use_bin_type=True,
    )
    return body


def unpack(data: bytes) -> RemoteEvent:
    """The event in a message body; BadFrame if it is not one."""
    try:
        fields = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_str_len=_MAX_STR,
            max_bin_len=MAX_PAYLOAD,
            max_array_len=16,
            max_map_len=0,
            max_ext_len=0,
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise BadFrame(f"not msgpack: {e}") from None
    if not isinstance(fields, list) or len(fields) != 8:
        raise BadFrame("an event is an array of 8 fields")
    version, node, epoch, seq, time, subject, fmt, payload = fields
    if version != VERSION or type(version) is not int:
        raise BadFrame(f"format version {version!r}, not {VERSION}")
    if not (isinstance(node, str) and node and isinstance(subject, str) and subject):
        raise BadFrame("node and subject must be non-empty strings")
    if not all(type(n) is int and n >= 0 for n in (epoch, seq, fmt)):
        raise BadFrame("epoch, seq and fmt must be integers >= 0")
    if type(time) is not float or not isinstance(payload, bytes):
        raise BadFrame("time must be a float and the payload bytes")
    return RemoteEvent(node, epoch, seq, time, subject, fmt, payload)


CONTROL_KINDS = ("hb", "barrier", "here", "gap")
"""A node's heartbeat (es.hb), its barrier request (es.barrier), the answer to one, and its word
that events it should have sent are missing (es.gap)."""


def pack_control(kind: str, node: str, epoch: int) -> bytes:
    """The body of a control message between nodes: [version, kind, node, epoch]."""
    body: bytes = msgpack.packb([VERSION, kind, node, epoch], use_bin_type=True)
    return body


def unpack_control(data: bytes) -> tuple[str, str, int]:
    """(kind, node, epoch) of a control message; BadFrame if it is not one."""
    try:
        fields = msgpack.unpackb(
            data, raw=False, max_str_len=256, max_bin_len=0, max_array_len=8, max_map_len=0
        )
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
        raise BadFrame(f"not msgpack: {e}") from None
    if not (isinstance(fields, list) and len(fields) == 4 and fields[0] == VERSION):
        raise BadFrame("a control message is [1, kind, node, epoch]")
    _, kind, node, epoch = fields
    if kind not in CONTROL_KINDS or not (isinstance(node, str) and node):
        raise BadFrame(f"unknown control message {kind!r} or no node")
    if type(epoch) is not int or epoch < 0:
        raise BadFrame("epoch must be an integer >= 0")
    return kind, node, epoch
