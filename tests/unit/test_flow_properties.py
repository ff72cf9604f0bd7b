"""Exact loss accounting, as a property: whatever is published, however big the events, the
queues, the readers' pace and the stalls, every event meant for a subscriber is accounted for
once, `lost` always equals the gap in seq, and once everyone has read everything and time has
passed, each subscriber got or was told of every event published to it (SPEC 7.3, 7.4). Events
from other nodes of a cluster too, those taken during a stall without waiting (SPEC 15.5)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import Options
from tests.unit.flowsim import Server

subscriber = st.tuples(
    st.integers(0, 12),  # queue size in events (0: unbounded)
    st.sampled_from(["block", "drop"]),
    st.sampled_from([0.0, 0.5, 2.0]),  # max_stall
)
step = st.one_of(
    st.tuples(
        st.just("pub"),
        st.integers(0, 2),  # subject (= subscriber index)
        st.lists(st.integers(0, 700), min_size=1, max_size=12),  # payload sizes
        st.booleans(),  # gathered with the next publish (one turn)
    ),
    st.tuples(
        st.just("remote"),  # from another node of a cluster (es.cluster)
        st.integers(0, 2),
        st.lists(st.integers(0, 700), min_size=1, max_size=12),
    ),
    st.tuples(st.just("read"), st.integers(0, 2), st.integers(0, 4), st.booleans()),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 0.6, 3.0])),
    st.tuples(st.just("refuse"), st.integers(0, 2)),
    st.tuples(st.just("link"), st.integers(0, 2), st.booleans()),
)


@settings(max_examples=600, deadline=None)
@given(
    subscribers=st.lists(subscriber, min_size=1, max_size=3),
    steps=st.lists(step, max_size=60),
    max_events=st.integers(1, 6),
)
def test_every_event_is_accounted_for_and_every_loss_told_once(
    subscribers: list[tuple[int, str, float]],
    steps: list[tuple],  # type: ignore[type-arg]
    max_events: int,
) -> None:
    server = Server(max_events=max_events, max_bytes=1000, evict_stalled=0, liveness=10_000)
    sids = []
    for i, (queue, policy, stall) in enumerate(subscribers):
        sids.append(f"s{i}")
        server.subscribe(f"s{i}", f"subject.{i}", Options(policy, queue, stall))
    for op in steps:
        match op:
            case ("pub", k, sizes, gather):
                server.publish(f"subject.{k % len(sids)}", sizes, gather)
            case ("remote", k, sizes):
                server.remote(f"subject.{k % len(sids)}", sizes)
            case ("read", k, messages, ack):
                server.read(sids[k % len(sids)], messages, ack)
            case ("tick", seconds):
                server.tick(seconds)
            case ("refuse", k):
                server.refusing.add(sids[k % len(sids)])
            case ("link", k, up):
                server.link(sids[k % len(sids)], up)
        for sid in sids:
            server.check(sid)
    # The end of the burst: every reader reads everything and acknowledges, time passes.
    server.refusing.clear()
    for _ in range(200):
        server.tick(10.0)
        for sid in sids:
            server.read(sid, 1_000)
        if not server.flow.busy and all(not r.inbox for r in server.readers.values()):
            break
    for sid in sids:
        server.check(sid)
        reader = server.readers[sid]
        state = server.broker.subscriber(sid)
        assert state is not None
        assert reader.received + reader.lost == reader.published  # all got, or told of
        assert reader.lost == state.lane.dropped  # told each loss once, exactly
    totals = server.broker.totals
    assert totals.dropped == sum(server.readers[s].lost for s in sids)
    assert totals.delivered == sum(server.readers[s].received for s in sids)
    assert totals.notices == sum(server.readers[s].notices for s in sids)
    assert totals.messages == sum(server.readers[s].batches for s in sids)
