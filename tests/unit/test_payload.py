"""Message payloads: msgpack by default with portable extras; pickle only when allowed."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal

import pytest

from clients.errors import PayloadError
from clients.event import Event
from clients.payload import decode_payload, encode_payload, format_for
from clients.wire import Format


def round_trip(value: object) -> object:
    return decode_payload(encode_payload(value, Format.MSGPACK), Format.MSGPACK)


def test_core_types_round_trip() -> None:
    value = {
        "s": "x",
        "i": -3,
        "f": 2.5,
        "b": b"\x00",
        "l": [1, None, True],
        "m": {"k": []},
        1: "int key",
    }
    assert round_trip(value) == value


class Colour(enum.Enum):
    RED = "red"


def test_extra_python_types_travel_in_portable_forms() -> None:
    when = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.UTC)
    ident = uuid.UUID(int=7)
    assert round_trip(("SUN", 22.44)) == ["SUN", 22.44]
    assert round_trip({1, 2}) in ([1, 2], [2, 1])
    assert round_trip(when) == when
    assert round_trip(dt.date(2026, 1, 2)) == "2026-01-02"
    assert round_trip(Decimal("1.10")) == "1.10"
    assert round_trip(ident) == str(ident)
    # What the README says arrives: a time as ISO text, an enum as its value, an aware datetime
    # as the same instant in UTC.
    assert round_trip(dt.time(3, 4)) == "03:04:00"
    assert round_trip(Colour.RED) == "red"
    east = dt.datetime(2026, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert round_trip(east) == when and round_trip(east).tzinfo == dt.UTC


def test_unencodable_values_raise_type_error() -> None:
    with pytest.raises(TypeError):
        encode_payload(object(), Format.MSGPACK)
    with pytest.raises(TypeError):
        encode_payload(dt.datetime(2026, 1, 1), Format.MSGPACK)  # naive: no portable form
    with pytest.raises(TypeError):
        encode_payload("text", Format.RAW)


def test_pickle_is_refused_unless_allowed() -> None:
    data = encode_payload({"a": (1, 2)}, Format.PICKLE)
    with pytest.raises(PayloadError, match="does not allow pickle"):
        decode_payload(data, Format.PICKLE)
    assert decode_payload(data, Format.PICKLE, allow_pickle=True) == {"a": (1, 2)}


def test_corrupt_and_unknown_payloads_raise_payload_error() -> None:
    with pytest.raises(PayloadError):
        decode_payload(b"\xc1", Format.MSGPACK)
    with pytest.raises(PayloadError):
        decode_payload(b"x", 99)
    with pytest.raises(PayloadError):
        decode_payload(b"not a pickle", Format.PICKLE, allow_pickle=True)


def test_event_decodes_lazily_and_keeps_the_raw_payload() -> None:
    event = Event("s", 1.0, 1, b"\xc1", Format.MSGPACK)
    assert event.payload == b"\xc1" and event.subject == "s"
    with pytest.raises(PayloadError):
        _ = event.msg


def test_serializer_names() -> None:
    assert format_for("raw") is Format.RAW
    with pytest.raises(ValueError, match="serializer"):
        format_for("yaml")
