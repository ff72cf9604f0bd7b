"""Bounds on the work of reading a request: counts checked before decoding, and the rest.

A server refuses an array longer than its limit with LIMIT_EXCEEDED (SPEC 6 and 9). Decoding a
header builds every element before anything counts them, so a PUB listing 100,000 items would
cost far more to refuse than one the server accepts. `check_counts` reads only the start of the
header, up to the length of the counted array, and refuses it there. `peek_rid` reads a rid for a
request refused unread (over its connection's budget), and `collector_paused` keeps the cycle
collector out of decoding (a header of nested arrays would set off collections of the heap).

Invariants:
- Pure and total like the codec: `check_counts` raises only RemoteProtocolError, with code
  LIMIT_EXCEEDED; `peek_rid` never raises.
- It never refuses what the full decoder would refuse for another reason first: the elements
  before the counted array must be well formed (and the frame count right for a header-only
  command), else it leaves the request to the decoder, whose error then wins.
- What it reads costs no more than the fields in front of the counted array: a few small values.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import msgpack

from clients.errors import ErrorCode, RemoteProtocolError
from clients.wire import fields
from clients.wire.messages import MAX_INT, VERSION

__all__ = ["PEEK_BYTES", "Counts", "check_counts", "collector_paused", "peek_rid"]

PEEK_BYTES = 256
"""What is read of a header to peek at its command and rid: any command and rid fit in it."""


@dataclass(frozen=True, slots=True)
class Counts:
    """The longest arrays a server takes in a request; None means no limit (the codec alone)."""

    items: int | None = None
    """PUB items, and NUMSUB subjects (SPEC 3.9: at most the server's events per PUB)."""
    subscriptions: int | None = None
    """SUB subjects, SUBMATCH patterns and UNSUB names: no subscriber may hold more."""
    subjects_per_item: int | None = None
    """Subjects of one PUB item (checked by the decoder, item by item, before it reads them)."""


@dataclass(frozen=True, slots=True)
class _Counted:
    """Where a command's counted array is: the header sizes it may have, the readers of the
    fields between rid and the array, and which limit counts it."""

    sizes: tuple[int, ...]
    before: tuple[fields.Reader, ...]
    limit: str
    what: str


_COUNTED = {
    "PUB": _Counted((5, 6), (fields.flag,), "items", "items in one PUB"),
    "NUMSUB": _Counted((4,), (), "items", "subjects in one NUMSUB"),
    "SUB": _Counted((7,), (fields.sid, fields.text), "subscriptions", "subjects in one SUB"),
    "SUBMATCH": _Counted(
        (7,), (fields.sid, fields.text), "subscriptions", "patterns in one SUBMATCH"
    ),
    "UNSUB": _Counted((5,), (fields.sid,), "subscriptions", "names in one UNSUB"),
}
_HEADER_ONLY = frozenset({"NUMSUB", "SUB", "SUBMATCH", "UNSUB"})
_UNREADABLE = (ValueError, TypeError, msgpack.OutOfData, RemoteProtocolError)


def check_counts(frames: Sequence[bytes], counts: Counts) -> None:
    """Raise LIMIT_EXCEEDED if the request's counted array is longer than `counts` allows,
    having read only the header up to that array's length. Anything it cannot read is left to
    the decoder (it returns). The caller has checked the frame count and header size."""
    if not frames:
        return
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(frames[0]))
    unpacker.feed(frames[0])
    try:
        size = unpacker.read_array_header()
        version: Any = unpacker.unpack() if size >= 2 else None
        command: Any = unpacker.unpack() if size >= 2 else None
        if not fields.is_int(version) or version != VERSION or not isinstance(command, str):
            return
        counted = _COUNTED.get(command)
        limit = None if counted is None else getattr(counts, counted.limit)
        if counted is None or limit is None or size not in counted.sizes:
            return
        if command in _HEADER_ONLY and len(frames) != 1:
            return
        rid = fields.uint(unpacker.unpack(), "rid")
        for read in counted.before:
            read(unpacker.unpack(), "field")
        length = unpacker.read_array_header()
    except _UNREADABLE:
        return
    if length > limit:
        raise RemoteProtocolError(
            ErrorCode.LIMIT_EXCEEDED, f"more than {limit} {counted.what}", rid
        )


def peek_rid(frames: Sequence[bytes]) -> int:
    """The rid of a request, reading only the start of its header: what an ERR must carry when
    the request is refused unread (SPEC 4); 0 where it cannot be read. Never raises."""
    if not frames:
        return 0
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True)
    unpacker.feed(frames[0][:PEEK_BYTES])
    try:
        if unpacker.read_array_header() < 3:
            return 0
        unpacker.skip()
        unpacker.skip()
        rid = unpacker.unpack()
    except _UNREADABLE:
        return 0
    return rid if fields.is_int(rid) and 0 <= rid <= MAX_INT else 0


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector paused for a block, as decoding a request needs: msgpack builds
    lists, maps and scalars that hold no cycle, so reference counting frees them all, while a
    header of 1 MiB of nested empty arrays would set off collections of the whole heap (450 ms
    to refuse it instead of 66, measured). It is put back as it was."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
