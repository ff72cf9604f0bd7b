"""Count limits refused before decoding: a request over them costs no more than its first fields.

The proof that nothing was decoded: the elements after the array's length are garbage (0xc1 is a
byte msgpack never uses), so a decoder that looked at them would refuse with BAD_REQUEST instead.
"""

from __future__ import annotations

import struct

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.errors import ErrorCode, RemoteProtocolError
from clients.wire import (
    Counts,
    NumSub,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_request,
    encode,
    peek_rid,
)

COUNTS = Counts(items=1000, subscriptions=10_000, subjects_per_item=100)
GARBAGE = b"\xc1" * 64


def packed(*values: object) -> bytes:
    return b"".join(msgpack.packb(v, use_bin_type=True) for v in values)


def array32(length: int) -> bytes:
    """A msgpack array header of `length` elements, whatever follows it."""
    return b"\xdd" + struct.pack(">I", length)


def code_of(frames: list[bytes], counts: Counts | None = COUNTS) -> tuple[str, int]:
    with pytest.raises(RemoteProtocolError) as info:
        decode_request(frames, counts)
    return info.value.code, info.value.rid


def test_a_pub_of_100000_items_is_refused_without_reading_its_items() -> None:
    head = b"\x95" + packed(1, "PUB", 7, True) + array32(100_000) + packed([["a"], 1]) + GARBAGE
    assert code_of([head]) == (ErrorCode.LIMIT_EXCEEDED, 7)
    assert code_of([head], None)[0] == ErrorCode.BAD_REQUEST  # the codec alone reads on


def test_a_pub_over_the_limit_is_refused_whatever_its_frames() -> None:
    head = b"\x95" + packed(1, "PUB", 8, False) + array32(5000) + GARBAGE
    assert code_of([head, *[b"p"] * 5000]) == (ErrorCode.LIMIT_EXCEEDED, 8)
    inline = b"\x96" + packed(1, "PUB", 9, False) + array32(1001) + GARBAGE
    assert code_of([inline]) == (ErrorCode.LIMIT_EXCEEDED, 9)


@pytest.mark.parametrize(
    ("start", "limit"),
    [
        (b"\x97" + packed(1, "SUB", 3, "sid", "tcp://127.0.0.1:1"), 10_000),
        (b"\x97" + packed(1, "SUBMATCH", 3, "sid", "tcp://127.0.0.1:1"), 10_000),
        (b"\x95" + packed(1, "UNSUB", 3, "sid"), 10_000),
        (b"\x94" + packed(1, "NUMSUB", 3), 1000),
    ],
    ids=["SUB", "SUBMATCH", "UNSUB", "NUMSUB"],
)
def test_each_counted_array_is_refused_over_its_limit(start: bytes, limit: int) -> None:
    assert code_of([start + array32(limit + 1) + GARBAGE]) == (ErrorCode.LIMIT_EXCEEDED, 3)
    assert code_of([start + array32(limit) + GARBAGE])[0] == ErrorCode.BAD_REQUEST  # read on


def test_arrays_at_their_limits_decode() -> None:
    names = tuple(f"s{i}" for i in range(1000))
    items = tuple(PubItem(names[:100], 1, b"") for _ in range(1000))
    for message in (
        Publish(1, False, items),
        Publish(1, False, items, inline=True),
        Subscribe(2, "sid", "tcp://127.0.0.1:1", names * 10),
        SubscribeMatch(3, "sid", "tcp://127.0.0.1:1", names * 10),
        Unsubscribe(4, "sid", names * 10),
        NumSub(5, names),
    ):
        assert decode_request(encode(message), COUNTS) == message


def test_an_item_with_too_many_subjects_is_refused_before_they_are_read() -> None:
    over = [[*["a"] * 100, b"bin is not a subject"], 1]
    head = packed([1, "PUB", 6, True, [[["a"], 1], over]])
    assert code_of([head, b"", b""]) == (ErrorCode.LIMIT_EXCEEDED, 6)
    assert code_of([head, b"", b""], None)[0] == ErrorCode.BAD_REQUEST


@pytest.mark.parametrize(
    "header",
    [
        [2, "PUB", 7, True, [[["a"], 1]] * 5000],
        [1, "PUB", 7, 1, [[["a"], 1]] * 5000],
        [1, "UNSUB", 7, "sid", ["a"] * 20_000, "extra"],
        [1, "UNSUB", 7, "", ["a"] * 20_000],
        [1, "UNSUB", -1, "sid", ["a"] * 20_000],
        [1, "SUB", 7, "sid", 5, ["a"] * 20_000, {}],
    ],
    ids=["version", "confirm", "fields", "sid", "rid", "endpoint"],
)
def test_a_malformed_start_is_the_decoders_to_refuse(header: list[object]) -> None:
    frames = [packed(header)]
    assert code_of(frames) == code_of(frames, None)
    assert code_of(frames)[0] != ErrorCode.LIMIT_EXCEEDED


def test_a_header_only_command_with_frames_is_malformed_first() -> None:
    frames = [packed([1, "UNSUB", 7, "sid", ["a"] * 20_000]), b"extra"]
    assert code_of(frames) == code_of(frames, None) == (ErrorCode.BAD_REQUEST, 7)


headers = st.builds(
    lambda command, rid, fields, length, tail: (
        bytes([0x90 + 4 + len(fields)]) + packed(1, command, rid, *fields) + array32(length) + tail
    ),
    st.sampled_from(["PUB", "SUB", "SUBMATCH", "UNSUB", "NUMSUB", "PING"]),
    st.integers(-2, 2**53),
    st.lists(st.sampled_from([True, "sid", "tcp://127.0.0.1:1", 5, b"x", ""]), max_size=3),
    st.integers(0, 20_000),
    st.binary(max_size=12) | st.just(GARBAGE),
)


@settings(max_examples=400)
@given(headers, st.integers(0, 3))
def test_with_counts_a_request_decodes_as_without_or_is_refused_for_its_count(
    head: bytes, extra: int
) -> None:
    frames = [head, *[b"p"] * extra]
    plain: object
    try:
        plain = decode_request(frames)
    except RemoteProtocolError as exc:
        plain = exc.code
    try:
        bounded: object = decode_request(frames, COUNTS)
    except RemoteProtocolError as exc:
        bounded = exc.code
    if bounded != plain:
        assert bounded == ErrorCode.LIMIT_EXCEEDED


def test_peek_rid_reads_the_rid_of_a_request_refused_unread() -> None:
    assert peek_rid(encode(Unsubscribe(77, "sid", tuple(["x"] * 50_000)))) == 77
    assert peek_rid([packed([1, "PING", 5])]) == 5
    for frames in ([], [b""], [b"\xc1"], [packed([1, "PING"])], [packed([1, "PING", -3])]):
        assert peek_rid(frames) == 0
    assert peek_rid([packed([1, "PING", 2**53])]) == 0
