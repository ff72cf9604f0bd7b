"""The pure parts of a cluster node: the backbone event format, interest, and duplicates.

- Every event packs and unpacks to itself; any bytes unpack or raise BadFrame (never another
  error), so a stray message on the NATS cluster cannot crash a node.
- Interest follows the real subscription index through any run of subscribes, unsubscribes and
  removals: the filters listened on are exactly those the index's keys need.
- Origins takes each (node, epoch, seq) once, in order.
"""

from __future__ import annotations

import contextlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from es.cluster.frames import BadFrame, RemoteEvent, pack, unpack
from es.cluster.interest import Interest, Origins
from es.cluster.subjects import backbone, cover
from es.daemon.patterns import compile_pattern
from es.index import SubscriptionIndex

events = st.builds(
    RemoteEvent,
    node=st.text(min_size=1, max_size=20),
    epoch=st.integers(0, 2**64 - 1),
    seq=st.integers(0, 2**63),
    time=st.floats(allow_nan=False),
    subject=st.text(min_size=1, max_size=40),
    fmt=st.integers(0, 255),
    payload=st.binary(max_size=200),
)


@given(events)
def test_an_event_unpacks_to_itself(event: RemoteEvent) -> None:
    assert unpack(pack(event)) == event


@settings(max_examples=300)
@given(st.binary(max_size=80) | events.map(pack).map(lambda b: b[: len(b) // 2]))
def test_any_bytes_unpack_or_raise_bad_frame(data: bytes) -> None:
    with contextlib.suppress(BadFrame):
        unpack(data)


_GOOD = [1, "a", 7, 1, 1.5, "s", 0, b"x"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"not": "an array"}, "max_map_len"),
        ("text", "8 fields"),
        (_GOOD[:7], "8 fields"),
        ([2, *_GOOD[1:]], "version"),
        ([True, *_GOOD[1:]], "version"),
        ([1, "", *_GOOD[2:]], "non-empty"),
        ([*_GOOD[:5], "", *_GOOD[6:]], "non-empty"),
        ([*_GOOD[:2], -1, *_GOOD[3:]], "integers"),
        ([*_GOOD[:3], 1.0, *_GOOD[4:]], "integers"),
        ([*_GOOD[:4], 1, *_GOOD[5:]], "float"),
        ([*_GOOD[:7], "text"], "bytes"),
    ],
)
def test_what_is_not_an_event_is_refused_saying_why(fields: object, words: str) -> None:
    with pytest.raises(BadFrame, match=words):
        unpack(msgpack.packb(fields, use_bin_type=True))


# --- interest -------------------------------------------------------------------------------

NAMES = ["a", "A", "a.b", "A.B", "x.y", "a\\..*", "a\\.b.*", "x.*", ".*", "A\\.b"]
SIDS = ["s1", "s2", "s3"]
steps = st.lists(
    st.tuples(
        st.sampled_from(["subject", "pattern", "remove", "drop"]),
        st.sampled_from(SIDS),
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=3),
    ),
    max_size=30,
)


@settings(max_examples=300)
@given(steps)
def test_interest_is_what_the_index_keys_need(run: list[tuple[str, str, list[str]]]) -> None:
    index = SubscriptionIndex()
    index.journal = []
    interest = Interest()
    listening: set[str] = set()
    for kind, sid, names in run:
        if kind == "subject":
            index.add_subjects(sid, names)
        elif kind == "pattern":
            index.add_patterns(sid, [(n, compile_pattern(n, 1024)) for n in names])
        elif kind == "remove":
            index.remove(sid, names)
        else:
            index.drop(sid)
        start, stop = interest.apply(index.journal)
        index.journal.clear()
        assert not set(start) & listening and set(stop) <= listening
        listening = (listening | set(start)) - set(stop)
        wanted = {backbone(k) for k in index._exact} | {cover(p) for p in index._patterns}
        assert listening == interest.filters == wanted


def test_a_filter_that_comes_and_goes_in_one_batch_is_never_listened_on() -> None:
    interest = Interest()
    assert interest.apply([(False, True, "a"), (False, False, "a")]) == ([], [])
    assert interest.apply([(True, True, "x.*"), (True, True, "y.*")]) == (["ev.>"], [])
    assert interest.apply([(True, False, "x.*")]) == ([], [])
    assert interest.apply([(True, False, "y.*")]) == ([], ["ev.>"])


# --- duplicates -----------------------------------------------------------------------------


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 2), st.integers(0, 9))))
def test_origins_take_each_event_once_and_in_order(seen: list[tuple[str, int, int]]) -> None:
    origins = Origins()
    last: dict[tuple[str, int], int] = {}
    for node, epoch, seq in seen:
        wanted = seq > last.get((node, epoch), -1)
        assert origins.fresh(node, epoch, seq) is wanted
        if wanted:
            last[node, epoch] = seq


def test_origins_forget_the_oldest_past_their_bound() -> None:
    origins = Origins(kept=2)
    assert origins.fresh("a", 1, 5) and origins.fresh("b", 1, 5)
    assert origins.fresh("c", 1, 1)  # "a", the oldest, goes
    assert not origins.fresh("b", 1, 5)  # "b" is still remembered
    assert origins.fresh("a", 1, 5)  # "a" was forgotten: taken again
