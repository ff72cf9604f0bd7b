"""A subscriber's own count of losses (clients.streams): the larger of told and seen, once; and
the events it makes of a batch, by the hot path (clients.inbox.plain_events) or the general."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.event import Event
from clients.inbox import events_of, plain_events
from clients.streams import Streams
from clients.wire import Delivery, decode_delivery, encode_delivery, pack_event, quick_batch


def test_the_gap_counts_when_it_is_larger_than_what_was_told() -> None:
    streams = Streams()
    assert streams.batch(7, 1, 3, 0) == (0, 0)
    assert streams.batch(7, 6, 6, 2) == (2, 0)  # told 2, gap 2
    assert streams.batch(7, 10, 10, 1) == (3, 0)  # told 1, but 7 to 9 are missing on the way
    assert streams.notice(7, 15, 5) == 5  # 11 to 15
    assert streams.batch(7, 16, 16, 0) == (0, 0)


def test_events_sent_again_are_had_already_and_their_loss_told_once() -> None:
    streams = Streams()
    streams.batch(7, 1, 10, 0)
    assert streams.batch(7, 5, 5, 0) == (0, 1)  # had already
    assert streams.batch(7, 8, 12, 3) == (0, 3)  # 8 to 10 had; the loss before 8 was told
    assert streams.batch(7, 13, 13, 0) == (0, 0)  # still expects 13


def test_a_durable_stream_new_to_this_program_counts_only_the_loss_told() -> None:
    streams = Streams(durable=True)
    assert streams.batch(7, 1001, 1010, 0) == (0, 0)  # an earlier program consumed 1 to 1000
    assert streams.batch(7, 1015, 1015, 2) == (4, 0)  # then gaps count as usual
    assert streams.notice(8, 50, 3) == 3
    assert Streams().batch(7, 1001, 1001, 0) == (1000, 0)  # not durable: the gap from 1 counts


def test_streams_are_kept_apart_and_old_ones_forgotten() -> None:
    streams = Streams(kept=2)
    streams.batch(1, 1, 5, 0)
    streams.batch(2, 1, 1, 0)
    assert streams.batch(1, 6, 6, 0) == (0, 0)
    streams.notice(3, 4, 4)  # a third stream: stream 2, heard least recently, is forgotten
    assert streams.batch(2, 2, 2, 0) == (1, 0)  # expected from 1 again


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
            reported += streams.batch(9, seq + 1, seq + n, untold)[0]
            seq, untold = seq + n, 0
        elif kind == "notice" and untold:
            reported += streams.notice(9, seq, untold)
            untold = 0
        elif kind == "vanish":
            seq, untold, missing = seq + n, 0, missing + n  # what it told vanished with it
    reported += streams.batch(9, seq + 1, seq + 1, untold)[0]  # one more event shows the rest
    assert reported == missing


durable_step = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 5)),
    st.tuples(st.just("drop"), st.integers(1, 5)),
    st.tuples(st.just("resend"), st.integers(0, 1000)),
)


@given(st.lists(durable_step, max_size=60))
def test_a_durable_stream_sent_again_is_seen_once(steps: list[tuple[str, int]]) -> None:
    """A durable subscriber's stream (SPEC 7.10): events kept in the log are sent again from
    any earlier point (a reconnection, a restart), with `lost` only for losses not told yet (the
    server's lane). The program sees every kept event once, in order, and the dropped ones are
    reported once each."""
    streams, seq, handed = Streams(), 0, 0
    dropped: set[int] = set()
    seen: list[int] = []
    reported = 0

    def send(first: int, last: int) -> None:
        nonlocal handed, reported
        kept = [s for s in range(first, last + 1) if s not in dropped]
        while kept:  # consecutive runs, each one EV
            run = [kept[0]]
            while len(run) < len(kept) and kept[len(run)] == run[-1] + 1:
                run.append(kept[len(run)])
            lost = max(0, run[0] - handed - 1)
            told, had = streams.batch(9, run[0], run[-1], lost)
            reported += told
            seen.extend(run[had:])
            handed = max(handed, run[-1])
            kept = kept[len(run) :]

    for kind, n in steps:
        if kind == "publish":
            send(seq + 1, seq + n)
            seq += n
        elif kind == "drop":
            dropped.update(range(seq + 1, seq + n + 1))
            seq += n
        else:
            send(n % (handed + 1) + 1, handed)
    send(seq + 1, seq + 1)  # one more event shows the rest
    assert seen == [s for s in range(1, seq + 2) if s not in dropped]
    assert reported == len(dropped)


# --- events made straight from a checked batch, as from a decoded one -------------------------

batches = st.lists(
    st.tuples(
        st.sampled_from([1, 2]),  # stream
        st.integers(0, 3),  # lost told
        st.integers(1, 12),  # first seq
        st.lists(st.tuples(st.sampled_from(["a", "B"]), st.integers(0, 3)), min_size=1, max_size=4),
    ),
    max_size=8,
)


_SHOWN = [
    "subject",
    "time",
    "seq",
    "payload",
    "format",
    "stream",
    "lost",
    "resumed",
    "retained",
    "history",
    "replayed",
    "msg",
]


def _seen(events: list[Event]) -> list[tuple[object, ...]]:
    return [(*(getattr(e, name) for name in _SHOWN), e.redelivered) for e in events]


@settings(max_examples=300)
@given(batches, st.booleans())
def test_plain_events_are_the_events_of_the_decoded_batch(
    sent: list[tuple[int, int, int, list[tuple[str, int]]]], durable: bool
) -> None:
    """Fresh, repeated (a durable subscriber's sent again) and gapped batches, in any order."""
    quick, general = Streams(durable=durable), Streams(durable=durable)
    for stream, lost, first, bodies in sent:
        metas = [[subject, 1.5, 0] for subject, _ in bodies]
        payloads = [b"%d" % n for _, n in bodies]
        frames = encode_delivery(
            "s", stream, lost, first, [pack_event(*m) for m in metas], payloads
        )
        batch = quick_batch(frames)
        assert batch is not None
        delivery = decode_delivery(frames)
        assert isinstance(delivery, Delivery)
        made, lost_made = plain_events(stream, lost, first, batch[4], batch[5], quick, False)
        want, lost_wanted = events_of(delivery, general, False)
        assert (_seen(made), lost_made) == (_seen(want), lost_wanted)
