"""A subscriber's own count of losses (clients.streams): the larger of told and seen, once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clients.streams import Streams


def test_the_gap_counts_when_it_is_larger_than_what_was_told() -> None:
    streams = Streams()
    assert streams.batch(7, 1, 3, 0) == 0
    assert streams.batch(7, 6, 6, 2) == 2  # told 2, gap 2
    assert streams.batch(7, 10, 10, 1) == 3  # told 1, but 7 to 9 are missing: lost on the way
    assert streams.notice(7, 15, 5) == 5  # 11 to 15
    assert streams.batch(7, 16, 16, 0) == 0


def test_a_late_message_of_the_past_counts_nothing_twice() -> None:
    streams = Streams()
    streams.batch(7, 1, 10, 0)
    assert streams.batch(7, 5, 5, 0) == 0
    assert streams.batch(7, 11, 11, 0) == 0  # still expects 11


def test_streams_are_kept_apart_and_old_ones_forgotten() -> None:
    streams = Streams(kept=2)
    streams.batch(1, 1, 5, 0)
    streams.batch(2, 1, 1, 0)
    assert streams.batch(1, 6, 6, 0) == 0
    streams.notice(3, 4, 4)  # a third stream: stream 2, heard least recently, is forgotten
    assert streams.batch(2, 2, 2, 0) == 1  # expected from 1 again


step = st.one_of(
    st.tuples(st.just("drop"), st.integers(1, 5)),
    st.tuples(st.just("deliver"), st.integers(1, 5)),
    st.tuples(st.just("notice"), st.just(0)),
    st.tuples(st.just("vanish"), st.integers(1, 5)),  # sent, then lost with a broken connection
)


@given(st.lists(step, max_size=60))
def test_what_is_reported_is_every_event_that_did_not_arrive(steps: list[tuple[str, int]]) -> None:
    """A server's stream, as SPEC 7.3 numbers it: dropped events are told on the next EV or in
    a LOST; events that vanish on the way are told by no one. Once one more event arrives, the
    subscriber has reported them all, each once."""
    streams, seq, untold, reported, missing = Streams(), 0, 0, 0, 0
    for kind, n in steps:
        if kind == "drop":
            seq, untold, missing = seq + n, untold + n, missing + n
        elif kind == "deliver":
            reported += streams.batch(9, seq + 1, seq + n, untold)
            seq, untold = seq + n, 0
        elif kind == "notice" and untold:
            reported += streams.notice(9, seq, untold)
            untold = 0
        elif kind == "vanish":
            seq, untold, missing = seq + n, 0, missing + n  # what it told vanished with it
    reported += streams.batch(9, seq + 1, seq + 1, untold)  # one more event shows the rest
    assert reported == missing
