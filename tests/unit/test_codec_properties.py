"""Properties of the codec: the decoders are total, and encoding round-trips."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import msgpack
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.errors import RemoteProtocolError
from clients.wire import (
    Ack,
    Delivery,
    EventItem,
    Heartbeat,
    Options,
    Ping,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_delivery,
    decode_reply,
    decode_request,
    encode,
    peek_command,
)
from clients.wire.codec import decode_delivery_general, decode_general
from clients.wire.counts import Counts
from clients.wire.quick import QUICK_BYTES, quick_delivery, quick_publish

uints = st.integers(min_value=0, max_value=2**53 - 1)
texts = st.text(max_size=20)
sids = st.text(min_size=1, max_size=20)  # an empty sid is malformed (SPEC 3)
subjects = st.lists(texts, max_size=4).map(tuple)
options = st.builds(
    Options,
    st.sampled_from([None, "block", "drop"]),
    st.none() | uints,
    st.none() | st.floats(min_value=0, max_value=1e6),
)
payloads = st.binary(max_size=64)
requests = st.one_of(
    st.builds(Subscribe, uints, sids, texts, subjects, options),
    st.builds(SubscribeMatch, uints, sids, texts, subjects, options),
    st.builds(Unsubscribe, uints, sids, subjects),
    st.builds(
        Publish,
        uints,
        st.booleans(),
        st.lists(
            st.builds(PubItem, subjects, st.integers(0, 127), payloads), min_size=1, max_size=4
        ).map(tuple),
    ),
    st.builds(Ping, uints),
    st.builds(Ack, uints, sids, uints),
    st.builds(Heartbeat, uints, sids),
)


def _delivery(
    sid: str, stream: int, lost: int, first: int, bodies: list[tuple[str, float, int, bytes]]
) -> Delivery:
    """A delivery of events numbered one after the other from `first` (SPEC 5)."""
    events = (EventItem(first + i, *body) for i, body in enumerate(bodies))
    return Delivery(sid, stream, lost, tuple(events))


bodies = st.tuples(
    texts, st.floats(allow_nan=False, allow_infinity=False), st.integers(0, 127), payloads
)
deliveries = st.builds(
    _delivery,
    texts,
    uints,
    uints,
    st.integers(min_value=1, max_value=2**53 - 4),
    st.lists(bodies, min_size=1, max_size=4),
)

# Values msgpack can carry, nested: the raw material for headers that are almost right.
msgpack_ints = st.integers(min_value=-(2**63), max_value=2**64 - 1)
leaves = st.none() | st.booleans() | msgpack_ints | st.floats() | texts | st.binary(max_size=8)
values = st.recursive(
    leaves,
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(texts, kids, max_size=3),
    max_leaves=12,
)
headers = st.one_of(
    st.lists(values, max_size=8).map(lambda v: msgpack.packb(v, use_bin_type=True)),
    st.tuples(
        st.sampled_from(
            ["SUB", "SUBMATCH", "UNSUB", "PUB", "PING", "STATS", "ACK", "OK", "ERR", "EV"]
        ),
        st.lists(values, max_size=6),
    ).map(lambda t: msgpack.packb([1, t[0], *t[1]], use_bin_type=True)),
    st.binary(max_size=64),
)
frame_lists = st.tuples(headers, st.lists(st.binary(max_size=8), max_size=3)).map(
    lambda t: [t[0], *t[1]]
)


@st.composite
def mutated(draw: st.DrawFn) -> list[bytes]:
    """A valid request or delivery with one byte of its header changed or cut."""
    frames = encode(draw(requests | deliveries))
    header = bytearray(frames[0])
    at = draw(st.integers(0, len(header) - 1))
    if draw(st.booleans()):
        header[at] = draw(st.integers(0, 255))
    else:
        del header[at:]
    return [bytes(header), *frames[1:]]


@settings(max_examples=300)
@given(frame_lists)
def test_peek_command_never_raises_and_agrees_with_the_decoder(frames: list[bytes]) -> None:
    command = peek_command(frames)
    with contextlib.suppress(RemoteProtocolError):
        request = encode(decode_request(frames))
        assert command == msgpack.unpackb(request[0])[1]


@settings(max_examples=500)
@given(mutated())
def test_mutated_frames_decode_or_raise_the_protocol_error(frames: list[bytes]) -> None:
    for decode in (decode_request, decode_reply, decode_delivery):
        with contextlib.suppress(RemoteProtocolError):
            decode(frames)


@settings(max_examples=500)
@given(frame_lists)
def test_any_frames_decode_or_raise_the_protocol_error(frames: list[bytes]) -> None:
    for decode in (decode_request, decode_reply, decode_delivery):
        with contextlib.suppress(RemoteProtocolError):
            decode(frames)


@given(requests)
def test_requests_round_trip(message: object) -> None:
    assert decode_request(encode(message)) == message  # type: ignore[arg-type]


@given(deliveries)
def test_deliveries_round_trip(message: Delivery) -> None:
    assert decode_delivery(encode(message)) == message


# PUB items as a publisher might write them, right or wrong in any field: the decoder's short
# path for [[subject], format] must decide exactly as the general one.
item_values = st.lists(
    st.one_of(st.lists(texts | leaves, max_size=3), leaves), min_size=2, max_size=3
) | st.tuples(st.lists(texts, min_size=1, max_size=1), st.integers(-2, 130) | leaves).map(list)


def _outcome(decode: Callable[[], object]) -> object:
    try:
        return decode()
    except RemoteProtocolError as exc:
        return (exc.code, str(exc))


@settings(max_examples=500)
@given(st.lists(item_values, min_size=1, max_size=4), st.none() | st.integers(0, 3))
def test_pub_items_of_any_shape_decode_as_the_general_path_decodes_them(
    items: list[list[object]], per_item: int | None
) -> None:
    header = [1, "PUB", 7, False, items, [b"p%d" % i for i in range(len(items))]]
    limits = Counts(None, None, per_item)
    _decides_as_the_general_path([msgpack.packb(header, use_bin_type=True)], limits)


def test_a_big_pub_takes_the_quick_path_only_within_the_counts_and_with_plain_items() -> None:
    """A fast publisher's batch: a header over QUICK_BYTES, inline or with payload frames."""
    limits = Counts(1000, 10_000, 100)
    plain = [[[f"orders.eu.{i % 7}"], 1] for i in range(400)]
    payloads = [b"p%d" % i for i in range(400)]
    odd = [[["s"], 128], [["s"], 1, {"retain": True}]]  # the last item wrong, or not plain
    for inline in (True, False):
        for items in (plain, *([*plain[:-1], last] for last in odd)):
            header = [1, "PUB", 7, False, items, *([payloads] if inline else [])]
            frames = [msgpack.packb(header, use_bin_type=True), *([] if inline else payloads)]
            assert len(frames[0]) > QUICK_BYTES
            _decides_as_the_general_path(frames, limits)
            assert (quick_publish(frames, limits) is not None) == (items is plain)
            over = Counts(399, 10_000, 100)  # left to the general decoder, which refuses it
            assert quick_publish(frames, over) is None
            assert _outcome(lambda: decode_request(frames, over))[0] == "LIMIT_EXCEEDED"  # noqa: B023


# PUB requests near the hot shape, each field right or wrong: quick_publish must return what
# the general decoder returns, or leave the request to it (None).
hot_items = st.tuples(st.lists(texts, min_size=1, max_size=1), st.integers(0, 127)).map(list)
_WRONG = ["version", "command", "rid", "confirm", "items", "item", "inline", "frames"]


Field = Callable[[object, st.SearchStrategy[object], str], object]


def _framed(
    draw: st.DrawFn, header: list[object], bodies: list[bytes], field: Field, wrong: str | None
) -> list[bytes]:
    """The frames of a PUB or EV: its payloads inline (the header's last element) or in frames
    of their own, now and then too few or too many (`wrong` "inline" or "frames")."""
    inline = draw(st.booleans())
    if inline:
        header.append(field(bodies, st.just(bodies[1:]) | values, "inline"))
    frames = [msgpack.packb(header, use_bin_type=True)]
    if not inline:
        frames += field(bodies, st.just(bodies[1:]) | st.just([*bodies, b"z"]), "frames")
    elif wrong == "frames":
        frames.append(b"z")
    return frames


@st.composite
def near_pubs(draw: st.DrawFn) -> list[bytes]:
    """A PUB of hot-shaped items, inline or in frames; often one thing in it wrong."""
    wrong = draw(st.none() | st.sampled_from(_WRONG))

    def field(right: object, bad: st.SearchStrategy[object], name: str) -> object:
        return draw(bad) if wrong == name else right

    items = draw(st.lists(hot_items, min_size=1, max_size=4))
    if wrong == "item":
        at = draw(st.integers(0, len(items) - 1))
        edges = st.sampled_from([-1, 128, True, 1.5, None])
        items[at] = draw(item_values | st.tuples(st.lists(texts, min_size=1, max_size=1), edges))
        items[at] = list(items[at])
    bodies = [draw(payloads) for _ in items]
    header: list[object] = [
        field(1, st.sampled_from([2, True, 1.0]) | values, "version"),
        field("PUB", st.sampled_from(["pub", "SUB"]) | values, "command"),
        field(draw(uints), st.sampled_from([-1, 2**53, True, "7"]) | values, "rid"),
        field(draw(st.booleans()), st.sampled_from([0, 1, None]) | values, "confirm"),
        field(items, st.just([]) | values, "items"),
    ]
    return _framed(draw, header, bodies, field, wrong)


counts = st.builds(
    Counts, st.none() | st.integers(0, 5), st.none(), st.sampled_from([None, 0, 1, 2])
)


def _decides_as_the_general_path(frames: list[bytes], limits: Counts | None) -> None:
    quick = quick_publish(frames, limits)
    if quick is not None:
        assert _outcome(lambda: decode_general(frames, limits)) == quick
    assert _outcome(lambda: decode_request(frames, limits)) == _outcome(
        lambda: decode_general(frames, limits)
    )


@settings(max_examples=1000)
@given(near_pubs(), st.none() | counts)
def test_the_quick_publish_path_decides_as_the_general_one(
    frames: list[bytes], limits: Counts | None
) -> None:
    _decides_as_the_general_path(frames, limits)


@settings(max_examples=300)
@given(frame_lists | mutated(), st.none() | counts)
def test_the_quick_publish_path_leaves_other_requests_alone(
    frames: list[bytes], limits: Counts | None
) -> None:
    _decides_as_the_general_path(frames, limits)


def test_the_quick_publish_path_takes_what_publishers_send() -> None:
    for inline in (b"", b"x" * 100):  # short payloads go inline, longer ones in frames
        request = Publish(3, False, (PubItem(("a.b",), 1, inline), PubItem(("c",), 0, b"y")))
        assert quick_publish(encode(request), Counts(1000, 10_000, 100)) == request


def test_the_quick_publish_path_at_the_edges_of_each_field() -> None:
    """The boundaries, each tried on its own (the property above finds them only now and then)."""
    ok = [1, "PUB", 7, False, [[["a"], 1]], [b"p"]]
    edges: list[tuple[int, object]] = [
        (2, 2**53 - 1), (2, 2**53), (2, -1), (3, True), (3, 0),
        (4, [[["a"], 127]]), (4, [[["a"], 128]]), (4, [[["a"], -1]]), (4, [[["a"], True]]),
        (4, [[[], 1]]), (4, [[["a", "b"], 1]]), (4, [[["a"], 1, {}]]), (4, [[[b"a"], 1]]),
        (5, [b"p", b"q"]), (5, ["p"]),
    ]  # fmt: skip
    for at, value in edges:
        header = [*ok[:at], value, *ok[at + 1 :]]
        for limits in (None, Counts(1, None, 1), Counts(0, None, 0), Counts(None, None, 0)):
            _decides_as_the_general_path([msgpack.packb(header, use_bin_type=True)], limits)


# EV batches near the hot shape: quick_delivery must return what the general decoder returns,
# or leave the batch to it (None).
hot_events = st.tuples(texts, st.floats(-1e12, 1e12), st.integers(0, 127)).map(list)
_WRONG_EV = ["version", "command", "sid", "stream", "lost", "first", "events", "event", "inline"]


@st.composite
def near_evs(draw: st.DrawFn) -> list[bytes]:
    """An EV of flagless events, inline or in frames; often one thing in it wrong."""
    wrong = draw(st.none() | st.sampled_from([*_WRONG_EV, "frames"]))

    def field(right: object, bad: st.SearchStrategy[object], name: str) -> object:
        return draw(bad) if wrong == name else right

    events = draw(st.lists(hot_events, min_size=1, max_size=4))
    if wrong == "event":
        at = draw(st.integers(0, len(events) - 1))
        edges = st.sampled_from([["a", 1.0, 128], ["a", 1, 0], ["a", math.inf, 0], [1, 1.0, 0]])
        flagged = st.just(["a", 1.0, 0, 1])
        events[at] = draw(edges | flagged | st.lists(values, max_size=4))
    bodies = [draw(payloads) for _ in events]
    last = 2**53 - len(events)  # the highest first whose last seq is still 2**53-1
    header: list[object] = [
        field(1, st.sampled_from([2, True]) | values, "version"),
        field("EV", st.sampled_from(["ev", "LOST"]) | values, "command"),
        field(draw(sids), st.sampled_from(["", 1, None]), "sid"),
        field(draw(uints), st.sampled_from([-1, 2**53, True]), "stream"),
        field(draw(uints), st.sampled_from([-1, 2**53, False]), "lost"),
        field(draw(st.integers(1, last)), st.sampled_from([0, last + 1, 1.0]), "first"),
        field(events, st.just([]) | values, "events"),
    ]
    return _framed(draw, header, bodies, field, wrong)


def _delivers_as_the_general_path(frames: list[bytes]) -> None:
    quick = quick_delivery(frames)
    if quick is not None:
        assert _outcome(lambda: decode_delivery_general(frames)) == quick
    assert _outcome(lambda: decode_delivery(frames)) == _outcome(
        lambda: decode_delivery_general(frames)
    )


@settings(max_examples=1000)
@given(near_evs())
def test_the_quick_delivery_path_decides_as_the_general_one(frames: list[bytes]) -> None:
    _delivers_as_the_general_path(frames)


@settings(max_examples=300)
@given(frame_lists | mutated())
def test_the_quick_delivery_path_leaves_other_messages_alone(frames: list[bytes]) -> None:
    _delivers_as_the_general_path(frames)


def test_the_quick_delivery_path_at_the_edges_of_each_field() -> None:
    """The boundaries, each tried on its own."""
    ok = [1, "EV", "s", 0, 0, 1, [["a", 1.0, 0]], [b"p"]]
    edges: list[tuple[int, object]] = [
        (3, 2**53 - 1), (3, 2**53), (4, 2**53 - 1), (4, -1), (5, 0), (5, 2**53 - 1), (5, 2**53),
        (6, [["a", 1.0, 127]]), (6, [["a", 1.0, 128]]), (6, [["a", math.nan, 0]]),
        (6, [["a", 1.0, 0, 0]]), (6, [["a", 1.0, 0, 1]]), (6, [["a", 1, 0]]), (7, ["p"]),
    ]  # fmt: skip
    for at, value in edges:
        header = [*ok[:at], value, *ok[at + 1 :]]
        _delivers_as_the_general_path([msgpack.packb(header, use_bin_type=True)])
    assert quick_delivery([msgpack.packb(ok, use_bin_type=True)]) is not None
