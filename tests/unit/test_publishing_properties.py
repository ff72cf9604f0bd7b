"""Properties of the publish path: whatever the mix of subjects in a PUB, each subscriber gets
exactly the events on its subjects, in order and numbered from 1, and every event is counted
once for its subject (the path looks a subject up once per stretch of events on it)."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import Options, PubItem, Publish, Subscribe, encode
from es.actions import Fanout
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
