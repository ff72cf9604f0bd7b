"""Turning a published message into a payload frame and back.

Invariants:
- msgpack is the default and the only portable format; the few extra Python types accepted are
  written in portable forms (a reader in any language sees arrays, strings and timestamps).
- Pickle is never decoded unless the caller passed allow_pickle=True: unpickling runs code chosen
  by whoever made the bytes.
- Decoding failures raise PayloadError, never a msgpack or pickle exception.
"""

from __future__ import annotations

import datetime as dt
import pickle
import threading
import uuid
from decimal import Decimal
from enum import Enum
from typing import Any

import msgpack

from clients.errors import PayloadError
from clients.wire import Format

__all__ = ["FORMAT_NAMES", "decode_payload", "encode_payload", "format_for"]

FORMAT_NAMES = {"raw": Format.RAW, "msgpack": Format.MSGPACK, "pickle": Format.PICKLE}


def format_for(name: str) -> Format:
    """The format code of a serializer name (`msgpack`, `raw`, `pickle`); ValueError for others."""
    try:
        return FORMAT_NAMES[name]
    except KeyError:
        raise ValueError(
            f"serializer must be one of {sorted(FORMAT_NAMES)}, not {name!r}"
        ) from None


def _portable(value: Any) -> Any:
    """msgpack's `default` hook: the extra Python types, in forms every language reads."""
    if isinstance(value, set | frozenset):
        return list(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise TypeError("a naive datetime has no portable form: give it a tzinfo")
        return msgpack.Timestamp.from_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"cannot send a {type(value).__name__} with msgpack")


class _Packers(threading.local):
    """One msgpack Packer per thread: msgpack.packb builds a new one for every call, which costs
    four times what packing a small message does; a Packer's buffer must not be shared by threads
    (the `default` hook is Python, so another thread could run inside a pack)."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer(default=_portable, use_bin_type=True, datetime=False).pack


_packers = _Packers()


def encode_payload(message: Any, fmt: Format) -> bytes:
    """`message` as payload bytes in format `fmt` (TypeError if it cannot be)."""
    if fmt is Format.RAW:
        if type(message) is bytes:  # the common case: no copy
            return message
        if not isinstance(message, bytes | bytearray | memoryview):
            raise TypeError("the raw serializer sends bytes only")
        return bytes(message)
    if fmt is Format.PICKLE:
        return pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    try:
        data: bytes = _packers.pack(message)
    except (TypeError, ValueError, OverflowError) as exc:
        raise TypeError(f"message cannot be encoded with msgpack: {exc}") from None
    return data


def decode_payload(payload: bytes, fmt: int, allow_pickle: bool = False) -> Any:
    """A payload back into a message; pickle only with `allow_pickle` (PayloadError otherwise)."""
    if fmt == Format.MSGPACK:
        try:
            return msgpack.unpackb(payload, raw=False, strict_map_key=False, timestamp=3)
        except (ValueError, TypeError) as exc:
            raise PayloadError(f"message is not valid msgpack: {exc}") from None
    if fmt == Format.RAW:
        return payload
    if fmt == Format.PICKLE:
        if not allow_pickle:
            raise PayloadError(
                "message is pickled and this subscriber does not allow pickle "
                "(Subscriber(allow_pickle=True) if you trust every publisher)"
            )
        try:
            return pickle.loads(payload)
        except Exception as exc:  # unpickling can raise anything the pickled code raises
            raise PayloadError(f"message does not unpickle: {exc!r}") from None
    raise PayloadError(f"unknown message format {fmt}")
