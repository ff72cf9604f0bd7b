"""Properties of the publish path: whatever the mix of subjects in a PUB, each subscriber gets
exactly the events on its subjects, in order and numbered from 1, and every event is counted
once for its subject (the path looks a subject up once per stretch of events on it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.errors import RequestError
from clients.wire import (
    PUB_BYTES_ACCEPTED,
    Options,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    encode,
)
from es.actions import Fanout
from es.config import Limits
from tests.unit.brokerkit import EP, PEER, delivered, make

NAMES = ["a", "A", "b", "c"]  # "A" is "a" folded: the same subject, as a subscriber sees it
SIDS = ["s1", "s2", "s3"]

wants = st.fixed_dictionaries({sid: st.sets(st.sampled_from(["a", "b", "c"])) for sid in SIDS})
items = st.lists(
    st.tuples(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3), st.binary(max_size=3)),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300)
@given(wants, items)
def test_each_subscriber_gets_its_events_in_order_and_each_is_counted_once(
    wanted: dict[str, set[str]], published: list[tuple[list[str], bytes]]
) -> None:
    broker = make()
    for sid, subjects in wanted.items():
        if subjects:
            broker.handle(PEER, encode(Subscribe(1, sid, EP, tuple(subjects), Options())), 1.0)
    pub = Publish(5, False, tuple(PubItem(tuple(s), 1, p) for s, p in published))
    actions = broker.handle(PEER, encode(pub), 2.0)
    got = {}
    for action in actions:
        if isinstance(action, Fanout):
            for batch in action.batches:
                got[batch.sid] = [(e.subject, e.payload, e.seq) for e in delivered(batch).events]
    for sid, subjects in wanted.items():
        expected = [(s, p) for names, p in published for s in names if s.lower() in subjects]
        events = got.get(sid, [])
        assert [(s, p) for s, p, _ in events] == expected
        assert [seq for _, _, seq in events] == list(range(1, len(expected) + 1))
    counted = {entry[0].lower(): entry[1] for entry in broker.core.subjects.values()}
    assert counted == Counter(s.lower() for names, _ in published for s in names)
    assert broker.core.events_in == sum(len(names) for names, _ in published)


# --- the one-event hot path decides as the general path -------------------------------------

BIG = PUB_BYTES_ACCEPTED + 1
SUBJECTS = ["a", "A", "b", "$x", "$es.x", "", "long" * 20, "é" * 30, "€" * 30, "𝄞" * 3, "𝄞" * 17]
one_events = st.lists(
    st.tuples(
        st.sampled_from(SUBJECTS),
        st.sampled_from([0, 1, 40, 64, 65, BIG]),  # payload sizes around the limits below
        st.booleans(),  # confirm
        st.sampled_from([b"p1", b"p2"]),  # publishing connection
    ),
    min_size=1,
    max_size=12,
)
limits = st.builds(
    Limits,
    max_subject_bytes=st.sampled_from([8, 64, 256]),
    max_message_bytes=st.sampled_from([40, 64, 1 << 20]),
    max_publish_bytes=st.sampled_from([PUB_BYTES_ACCEPTED, 16 << 20]),
)
subscribers = st.lists(
    st.tuples(
        st.sampled_from(["subjects", "patterns"]),
        st.lists(st.sampled_from(["a", "b", "$x", "(a|b)", "l.*"]), min_size=1, max_size=2),
    ),
    max_size=3,
)


def _outcome(publish: Callable[[], list[Any]]) -> object:
    try:
        actions = publish()
    except RequestError as exc:
        return (exc.code, str(exc))
    out: list[object] = []
    for action in actions:
        if isinstance(action, Fanout):
            batches = sorted(
                (b.sid, b.first, b.events, b.payloads, b.size, b.block) for b in action.batches
            )
            out.append(("fanout", batches, action.confirms))
        else:
            out.append(action)
    return out


@settings(max_examples=300)
@given(limits, subscribers, one_events)
def test_the_one_event_path_decides_as_the_general_one(
    limit: Limits, subs: list[tuple[str, list[str]]], events: list[tuple[str, int, bool, bytes]]
) -> None:
    quick, general = make(limits=limit), make(limits=limit)
    for broker in (quick, general):
        for k, (kind, names) in enumerate(subs):
            cls = Subscribe if kind == "subjects" else SubscribeMatch
            broker.handle(PEER, encode(cls(1, f"s{k}", EP, tuple(names), Options())), 1.0)
    for n, (subject, size, confirm, peer) in enumerate(events):
        request = Publish(n, confirm, (PubItem((subject,), 1, b"x" * size),))
        now = 2.0 + n
        a = _outcome(partial(quick.publishing.publish, peer, request, now))
        b = _outcome(partial(general.publishing.general, peer, request, now))
        assert a == b
    for attribute in ("published", "events_in", "subjects", "publishers"):
        assert getattr(quick.core, attribute) == getattr(general.core, attribute)
