"""The quick decoders: the two messages that carry events, in their common shape, checked in one
pass (the hot paths of clients.wire.codec).

- `quick_publish`: a PUB whose every item is one event on one subject.
- `quick_batch` and `quick_delivery`: an EV whose events carry no flags.

Invariants:
- Each returns exactly what the general decoder returns for the same frames, or None, and never
  raises: every doubt is left to the general decoder, which checks each field and says what is
  wrong. Property tests hold them to it (tests/unit/test_codec_properties.py).
- They look at a header's first bytes before unpacking it, so that a message of another kind is
  not unpacked twice: a fixed-size array, version 1 and the command, as every encoder writes them.
- Pure, like the codec: bytes in, messages out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import msgpack

from clients.errors import RemoteProtocolError
from clients.wire.counts import Counts, check_counts, collector_paused
from clients.wire.encoding import MAX_FRAMES, MAX_HEADER_BYTES
from clients.wire.messages import MAX_INT, VERSION, Delivery, EventItem, PubItem, Publish

__all__ = [
    "PUB_START",
    "QUICK_BYTES",
    "QuickBatch",
    "quick_batch",
    "quick_delivery",
    "quick_publish",
]

QUICK_BYTES = 4096
"""PUB headers up to this size are unpacked at once: a 4 KiB header holds a few thousand values
at most. Larger ones (a fast publisher's batches) are first counted against the server's limits
and unpacked with the collector paused, as the general decoder does (clients.wire.counts)."""

PUB_START = msgpack.packb([VERSION, "PUB"])[1:]
"""What follows a PUB header's array length: version 1 and "PUB"."""
_PUB_ARRAYS = frozenset([b"\x95", b"\x96"])  # 5 elements, or 6 with the payloads inline
_EV_START = msgpack.packb([VERSION, "EV"])[1:]
_EV_ARRAYS = frozenset([b"\x97", b"\x98"])  # 7 elements, or 8 with the payloads inline

QuickBatch = tuple[str, int, int, int, list[list[Any]], Sequence[bytes], bool]
"""An EV checked by quick_batch: sid, stream, lost, first, each event's [subject, time,
format], the payloads, and whether they were inline."""


def quick_publish(frames: Sequence[bytes], counts: Counts | None = None) -> Publish | None:
    """decode_request of a PUB of `[[subject], format]` items, or None."""
    if not frames or len(frames[0]) <= QUICK_BYTES:
        return _publish(frames, counts)
    if counts is not None:
        try:
            check_counts(frames, counts)
        except RemoteProtocolError:
            return None  # over the server's limits: the general decoder says so
    with collector_paused():
        return _publish(frames, counts)


def _publish(frames: Sequence[bytes], counts: Counts | None) -> Publish | None:
    header = _header(frames, _PUB_ARRAYS, PUB_START, MAX_HEADER_BYTES)
    if header is None:
        return None
    rid, confirm, items = header[2:5]
    if (
        type(rid) is not int
        or not 0 <= rid <= MAX_INT
        or type(confirm) is not bool
        or type(items) is not list
        or not items
        or (counts is not None and counts.items is not None and len(items) > counts.items)
        or (counts is not None and counts.subjects_per_item == 0)
    ):
        return None
    payloads = _payloads(header, frames, 5, len(items))
    if payloads is None:
        return None
    decoded = []
    for item, payload in zip(items, payloads, strict=True):
        if type(item) is not list or len(item) != 2 or type(payload) is not bytes:
            return None
        subjects, fmt = item
        if (
            type(subjects) is not list
            or len(subjects) != 1
            or type(subjects[0]) is not str
            or type(fmt) is not int
            or not 0 <= fmt <= 127
        ):
            return None
        decoded.append(PubItem((subjects[0],), fmt, payload))
    return Publish(rid, confirm, tuple(decoded), len(header) == 6)


def quick_delivery(frames: Sequence[bytes]) -> Delivery | None:
    """decode_delivery of an EV whose events carry no flags, or None."""
    batch = quick_batch(frames)
    if batch is None:
        return None
    sid, stream, lost, first, metas, payloads, inline = batch
    items = tuple(
        EventItem(seq, meta[0], meta[1], meta[2], payload)
        for seq, meta, payload in zip(itertools.count(first), metas, payloads)
    )
    return Delivery(sid, stream, lost, items, inline)


def quick_batch(frames: Sequence[bytes]) -> QuickBatch | None:
    """quick_delivery's check, without building its items: what a subscriber makes its events
    from directly (clients.inbox.plain_events). None for anything quick_delivery leaves."""
    header = _header(frames, _EV_ARRAYS, _EV_START, MAX_HEADER_BYTES)
    if header is None:
        return None
    sid, stream, lost, first, events = header[2:7]
    if (
        type(sid) is not str
        or type(stream) is not int
        or type(lost) is not int
        or type(first) is not int
        or type(events) is not list
        or not events
        or not (0 <= stream <= MAX_INT and 0 <= lost <= MAX_INT and 1 <= first <= MAX_INT)
        or first + len(events) - 1 > MAX_INT
    ):
        return None
    payloads = _payloads(header, frames, 7, len(events))
    if payloads is None:
        return None
    isfinite = math.isfinite
    for meta, payload in zip(events, payloads, strict=True):
        if type(meta) is not list or len(meta) != 3 or type(payload) is not bytes:
            return None
        subject, time, fmt = meta
        if (
            type(subject) is not str
            or type(time) is not float
            or not isfinite(time)
            or type(fmt) is not int
            or not 0 <= fmt <= 127
        ):
            return None
    return sid, stream, lost, first, events, payloads, len(header) == 8


def _header(
    frames: Sequence[bytes], arrays: frozenset[bytes], start: bytes, most: int
) -> list[Any] | None:
    """The header, unpacked, if it starts as one of `arrays` (whose first byte fixes its
    length) followed by `start`, and the frames are within bounds; else None."""
    if not frames or len(frames) > MAX_FRAMES or len(frames[0]) > most:
        return None
    head = frames[0]
    if head[:1] not in arrays or head[1 : 1 + len(start)] != start:
        return None
    try:  # an array, as its first byte says
        header: list[Any] = msgpack.unpackb(head, raw=False, strict_map_key=True, use_list=True)
    except ValueError:  # ExtraData too: an array of that length, then more bytes
        return None
    return header


def _payloads(
    header: list[Any], frames: Sequence[bytes], inline_at: int, count: int
) -> Sequence[Any] | None:
    """The `count` payloads: inline at `inline_at` in the header (and then no more frames), or
    one frame each after it; None if they are not there as that."""
    inline = len(header) == inline_at + 1
    payloads = header[inline_at] if inline else frames[1:]
    if inline and (len(frames) != 1 or type(payloads) is not list):
        return None
    return payloads if len(payloads) == count else None
