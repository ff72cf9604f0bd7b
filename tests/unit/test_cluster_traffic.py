"""A cluster node's pure parts around the broker: what goes onto the backbone, what comes off
it, peers and barriers (es.cluster.traffic, es.cluster.peers, the broker's remote path).

- Departures number every event of every publish taken, one per subject, in order.
- Arrivals give the broker every new event once, in order, in runs of one origin time; the
  property test holds this for any interleaving of copies, garbage and origins.
- The broker forwards what its clients publish, never what other nodes sent it, and fans the
  latter out at their origin time; what it refuses of them it counts.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.payload import decode_payload, encode_payload
from clients.wire import Options, PubItem, Publish, encode, public_id
from es.actions import Fanout, Hold
from es.broker import REMOTE
from es.cluster.frames import BadFrame, RemoteEvent, pack, pack_control, unpack, unpack_control
from es.cluster.peers import Barrier, Lookout, Peers
from es.cluster.subjects import backbone
from es.cluster.traffic import MAX_RUN, Arrivals, Departures
from es.config import Limits
from tests.unit.brokerkit import PEER, deliveries, err, make, ok, sub
from tests.unit.flowsim import Server


def test_departures_number_each_event_of_each_publish_in_order() -> None:
    out = Departures("a", 7).messages(
        [
            ((PubItem(("X", "y"), 1, b"p"),), 5.0),
            ((PubItem(("z",), 2, b"q"), PubItem(("X",), 1, b"r")), 6.0),
        ]
    )
    assert [s for s, _ in out] == [backbone("X"), backbone("y"), backbone("z"), backbone("X")]
    events = [unpack(body) for _, body in out]
    assert [(e.seq, e.subject, e.time, e.payload) for e in events] == [
        (1, "X", 5.0, b"p"),
        (2, "y", 5.0, b"p"),
        (3, "z", 6.0, b"q"),
        (4, "X", 6.0, b"r"),
    ]
    assert {(e.node, e.epoch) for e in events} == {("a", 7)}


arrivals = st.lists(
    st.one_of(
        st.tuples(
            st.sampled_from("ab"),
            st.integers(1, 2),
            st.integers(1, 30),
            st.sampled_from([1.0, 2.0]),
        ),
        st.just(None),  # garbage
    ),
    max_size=60,
)


@given(arrivals)
def test_arrivals_give_each_new_event_once_in_order_in_runs(drawn: list[object]) -> None:
    bodies: list[bytes] = []
    for entry in drawn:
        if entry is None:
            bodies.append(b"\xc1garbage")
            continue
        node, epoch, seq, time = entry  # type: ignore[misc]
        bodies.append(pack(RemoteEvent(node, epoch, seq, time, f"s{seq}", 0, b"%d" % seq)))
    taken = Arrivals()
    runs = taken.runs(bodies)
    last: dict[tuple[str, int], int] = {}
    wanted, bad, copies = [], 0, 0
    for entry in drawn:
        if entry is None:
            bad += 1
            continue
        node, epoch, seq, time = entry  # type: ignore[misc]
        if seq > last.get((node, epoch), 0):
            last[node, epoch] = seq
            wanted.append((time, f"s{seq}"))
        else:
            copies += 1
    got = [(time, item.subjects[0]) for time, items in runs for item in items]
    assert got == wanted
    assert (taken.bad, taken.duplicates) == (bad, copies)
    assert all(0 < len(items) <= MAX_RUN for _, items in runs)
    for (t1, first), (t2, _) in itertools.pairwise(runs):
        assert t1 != t2 or len(first) == MAX_RUN  # a new run: a new time, or the last was full


def test_a_long_run_of_one_time_is_cut_at_max_run() -> None:
    bodies = [pack(RemoteEvent("a", 1, n, 1.0, "s", 0, b"")) for n in range(1, MAX_RUN + 2)]
    runs = Arrivals().runs(bodies)
    assert [len(items) for _, items in runs] == [MAX_RUN, 1]


def test_the_broker_forwards_its_clients_publishes_and_not_other_nodes_events() -> None:
    broker = make()
    broker.core.forward = []
    ok(sub(broker, "s1", "news"))
    broker.core.forward.clear()  # its meta-events
    items = (PubItem(("news",), 1, b"x"),)
    broker.handle(PEER, encode(Publish(5, False, items)), 3.0)
    assert broker.core.forward[-1] == (items, 3.0)  # after its $es.publisher.seen
    broker.core.forward.clear()
    actions = broker.remote([(9.0, (PubItem(("NEWS",), 1, b"y"),))], mono=4.0)
    assert broker.core.forward == []  # not sent on again
    fanout = next(a for a in actions if isinstance(a, Fanout))
    delivery = deliveries(fanout, broker)["s1"]
    assert [(e.subject, e.time) for e in delivery.events] == [("NEWS", 9.0)]
    assert broker.core.remote_in == 1 and REMOTE not in broker.core.publishers


def test_the_broker_counts_what_it_refuses_of_other_nodes_events() -> None:
    broker = make()
    ok(sub(broker, "s1", "news"))
    runs = [
        (1.0, (PubItem(("x" * 300,), 1, b""),)),  # over this node's subject limit
        (2.0, (PubItem(("news",), 1, b"ok"), PubItem(("news",), 1, b"ok"))),
    ]
    broker.remote(runs, mono=1.0)
    assert (broker.core.remote_refused, broker.core.remote_in) == (1, 2)


def test_a_nodes_meta_events_name_it_and_go_to_the_other_nodes() -> None:
    broker = make()
    broker.core.forward, broker.core.node = [], "a"
    ok(sub(broker, "watcher", "$es.subscriber.joined"))
    actions = sub(broker, "s2", "news")
    fanout = next(a for a in actions if isinstance(a, Fanout))
    body = decode_payload(deliveries(fanout, broker)["watcher"].events[0].payload, 1)
    assert body["node"] == "a" and body["id"] == public_id("s2")
    forwarded = [item.subjects[0] for items, _ in broker.core.forward for item in items]
    assert "$es.subscriber.joined" in forwarded and "$es.subscription.added" in forwarded


def test_another_nodes_meta_events_reach_subscribers_here_and_never_a_queue_group() -> None:
    broker = make()
    ok(sub(broker, "watcher", "$es.service.gone"))
    payload = encode_payload({"name": "svc", "id": "x", "reason": "r", "node": "b"}, 1)
    runs = [
        (7.0, (PubItem(("$es.service.gone",), 1, payload),)),
        (8.0, (PubItem(("news",), 1, b"n"),)),
    ]
    actions = broker.remote(runs, mono=1.0)
    fanout = next(a for a in actions if isinstance(a, Fanout))
    event = deliveries(fanout, broker)["watcher"].events[0]
    assert (event.subject, event.time, decode_payload(event.payload, 1)["node"]) == (
        "$es.service.gone",
        7.0,
        "b",
    )
    assert broker.core.remote_in == 2 and broker.core.remote_refused == 0


def test_stats_show_the_cluster_when_a_node_says_what() -> None:
    broker = make()
    assert "cluster" not in broker.stats(1.0)["server"]
    broker.core.cluster_stats = lambda: {"node": "a"}
    assert broker.stats(1.0)["server"]["cluster"] == {"node": "a"}


# --- control messages, peers, barriers ---------------------------------------------------------


def test_control_messages_round_trip_and_refuse_anything_else() -> None:
    assert unpack_control(pack_control("hb", "a", 3)) == ("hb", "a", 3)
    for bad in [
        b"\xc1",
        pack_control("hb", "a", 3)[:-1],
        pack(RemoteEvent("a", 1, 1, 1.0, "s", 0, b"")),
    ]:
        with pytest.raises(BadFrame):
            unpack_control(bad)
    with pytest.raises(BadFrame, match="unknown"):
        unpack_control(pack_control("hello", "a", 1))
    with pytest.raises(BadFrame, match="epoch"):
        unpack_control(pack_control("hb", "a", -1))


def test_peers_are_live_while_heard_and_news_when_new_restarted_or_back() -> None:
    peers = Peers(liveness=3.0)
    assert peers.heard("b", 1, 0.0)  # new
    assert not peers.heard("b", 1, 1.0)
    assert peers.heard("b", 2, 2.0)  # restarted
    assert peers.live(5.0) == {"b"} and peers.live(5.1) == set()
    assert peers.heard("b", 2, 9.0)  # back after being taken for gone


def test_a_barrier_ends_when_everyone_waited_for_answered_or_at_its_deadline() -> None:
    barrier = Barrier({"b", "c"}, deadline=2.0)
    barrier.answer("x")  # not waited for: changes nothing
    barrier.answer("b")
    assert not barrier.done(1.0)
    barrier.answer("c")
    assert barrier.done(1.0) and barrier.answered == {"b", "c"}
    late = Barrier({"b"}, deadline=2.0)
    assert not late.done(1.9) and late.done(2.0)
    assert Barrier(set(), deadline=0.0).done(-1.0)


def test_after_a_gap_on_the_backbone_every_subscribers_next_event_says_resumed() -> None:
    broker = make()
    ok(sub(broker, "s1", "news"))
    ok(sub(broker, "s2", "news"))
    broker.resume_all()
    run = [(1.0, (PubItem(("news",), 1, b"a"), PubItem(("news",), 1, b"b")))]
    fanout = next(a for a in broker.remote(run, mono=1.0) if isinstance(a, Fanout))
    for delivery in deliveries(fanout, broker).values():
        assert [e.resumed for e in delivery.events] == [True, False]
    again = next(a for a in broker.remote(run, mono=2.0) if isinstance(a, Fanout))
    assert not any(e.resumed for d in deliveries(again, broker).values() for e in d.events)


def test_runs_keep_the_links_gaps_in_place() -> None:
    def body(seq: int) -> bytes:
        return pack(RemoteEvent("a", 1, seq, float(seq), "s", 0, b""))

    runs = Arrivals().runs_with_gaps([body(1), None, None, body(2), body(3), None])
    times = [None if run is None else run[0] for run in runs]
    assert times == [1.0, None, None, 2.0, 3.0, None]  # a run per time, the gaps where they were


@given(st.lists(st.sets(st.sampled_from("bcde"))))
def test_the_lookout_reports_each_loss_once_and_a_return_only_after_a_loss(
    views: list[set[str]],
) -> None:
    lookout = Lookout()
    live: set[str] = set()
    lost_before: set[str] = set()
    for view in views:
        lost, back = lookout.look(view)
        assert set(lost) == live - view
        assert set(back) == view & lost_before - live
        lost_before = (lost_before | set(lost)) - set(back)
        live = view


def test_a_node_keeps_the_streams_retained_events_newest_first_within_its_bounds() -> None:
    broker = make(limits=Limits(max_retained=2))
    core = broker.core

    def event(subject: str, time: float, payload: bytes = b"x") -> RemoteEvent:
        return RemoteEvent("b", 1, 1, time, subject, 0, payload)

    broker.keep_retained([(event("a", 10.0), None), (event("b", 10.0), 5.0)], now=12.0, mono=100.0)
    assert core.retained.get("a", 100.0) is not None
    held = core.retained.get("B", 100.0)
    assert held is not None and held.expires == 103.0  # 5 s from its publish, 2 s ago
    broker.keep_retained([(event("a", 9.0, b"older"), None)], now=12.0, mono=100.0)
    kept = core.retained.get("a", 100.0)
    assert kept is not None and kept.payload == b"x"  # the newer one stays
    broker.keep_retained([(event("c", 1.0), 5.0)], now=12.0, mono=100.0)  # already over
    broker.keep_retained([(event("d", 11.0), None)], now=12.0, mono=100.0)  # no room
    assert core.retained.get("c", 100.0) is None and core.remote_refused == 1
    broker.keep_retained([(event("a", 11.0, b""), None)], now=12.0, mono=100.0)  # cleared
    assert core.retained.get("a", 100.0) is None


def test_retained_events_go_to_the_stream_and_come_back_from_it() -> None:
    departures = Departures("a", 7)
    items = (PubItem(("Lamp",), 1, b"on", retain=True, ttl=3.0), PubItem(("x",), 1, b"y"))
    ((subject, body, ttl),) = departures.retained(items, 5.0)
    assert (subject, ttl) == ("rt.lamp", 3.0)
    assert unpack(body) == RemoteEvent("a", 7, 0, 5.0, "Lamp", 1, b"on")
    assert departures.seq == 0  # numbers are for the events on the backbone
    arrivals = Arrivals()
    assert arrivals.retained([(body, 3.0), (b"\xc1", None)]) == [(unpack(body), 3.0)]
    assert arrivals.bad == 1


@given(
    st.lists(
        st.lists(st.sampled_from(["news", "x" * 300, "$es.service.gone", "other"]), min_size=1),
        max_size=6,
    )
)
def test_every_event_from_another_node_is_counted_taken_or_refused_once(
    runs: list[list[str]],
) -> None:
    broker = make()
    ok(sub(broker, "s1", "news"))
    items = [
        (float(n), tuple(PubItem((s,), 1, b"p") for s in subjects))
        for n, subjects in enumerate(runs)
    ]
    broker.remote(items, mono=1.0)
    core = broker.core
    assert core.remote_in + core.remote_refused == sum(len(subjects) for subjects in runs)
    refused = sum(len(subjects) for subjects in runs if "x" * 300 in subjects)  # a run goes whole
    assert core.remote_refused == refused - sum(
        s.startswith("$") for subjects in runs if "x" * 300 in subjects for s in subjects
    )


def test_a_retained_publish_waits_for_the_stream_and_is_taken_at_its_first_time() -> None:
    broker = make(limits=Limits(max_retained=1))
    broker.core.forward, broker.core.hold_retained = [], True
    ok(sub(broker, "s1", "lamp"))
    broker.core.forward.clear()  # its meta-events
    items = (PubItem(("Lamp",), 1, b"on", retain=True), PubItem(("x",), 1, b"y"))
    (hold,) = broker.handle(PEER, encode(Publish(5, True, items)), 3.0)
    assert hold == Hold(PEER, Publish(5, True, items), 3.0)
    assert broker.core.forward == [] and broker.core.retained.get("lamp", 0.0) is None  # not yet
    actions = broker.publish_held(hold, mono=4.0)  # the stream took it
    fanout = next(a for a in actions if isinstance(a, Fanout))
    assert [(e.subject, e.time) for e in deliveries(fanout, broker)["s1"].events] == [("Lamp", 3.0)]
    assert broker.core.forward[-1] == (items, 3.0)  # after its $es.publisher.seen
    assert broker.core.retained.get("lamp", 4.0) is not None
    plain = (PubItem(("lamp",), 1, b"p"),)  # no retained event: no wait
    assert isinstance(broker.handle(PEER, encode(Publish(6, False, plain)), 5.0)[0], Fanout)


def test_a_retained_publish_that_is_refused_is_refused_before_it_waits_or_after() -> None:
    broker = make(limits=Limits(max_retained=1))
    broker.core.hold_retained = True
    big = tuple(PubItem((s,), 1, b"v", retain=True) for s in ("a", "b"))
    assert err(broker.handle(PEER, encode(Publish(5, False, big)), 3.0)) == "LIMIT_EXCEEDED"
    one = Publish(6, True, (PubItem(("a",), 1, b"v", retain=True),))
    first, second = (broker.handle(PEER, encode(one), 3.0)[0] for _ in range(2))
    assert isinstance(first, Hold) and isinstance(second, Hold)
    assert isinstance(broker.publish_held(first, mono=4.0)[0], Fanout)
    other = Hold(PEER, Publish(7, True, (PubItem(("b",), 1, b"v", retain=True),)), 3.0)
    assert err(broker.publish_held(other, mono=4.0)) == "LIMIT_EXCEEDED"  # room taken meanwhile


def test_a_bug_in_taking_a_held_publish_is_an_internal_error_not_a_crash() -> None:
    broker = make()
    broker.publishing.publish = None  # type: ignore[assignment]  # a bug, to be contained
    hold = Hold(PEER, Publish(5, False, (PubItem(("a",), 1, b"v", retain=True),)), 3.0)
    assert err(broker.publish_held(hold, mono=4.0)) == "INTERNAL"


def test_other_nodes_events_taken_during_a_stall_wait_for_no_one_and_losses_are_exact() -> None:
    server = Server(evict_stalled=0, liveness=10_000)
    server.subscribe("slow", "news", Options("block", 2, 5.0))
    server.subscribe("fast", "news", Options("drop", 100, 0.0))
    server.subscribe("full", "more", Options("block", 2, 5.0))
    server.publish("more", [1, 1])  # its queue full, nothing waiting
    server.publish("news", [1, 1, 1])  # one over the slow one's queue: a stall
    assert server.flow.waiting() == ["slow"]
    server.remote("news", [1] * 4)  # taken during the stall (its link crowded): no waiting
    server.remote("more", [1])  # nor for the full one: no second stall, one event dropped
    full = server.broker.subscriber("full")
    assert server.flow.waiting() == ["slow"] and full is not None and full.lane.dropped == 1
    server.read("fast", 10)
    assert server.readers["fast"].received == 7  # the fast one got everything
    slow = server.broker.subscriber("slow")
    assert slow is not None and slow.lane.dropped == 4  # counted exactly, told when it reads
    server.tick(10.0)  # the stall runs out: the publish's waiting event is dropped too
    for _ in range(3):
        server.read("slow", 10)
    reader = server.readers["slow"]
    assert (reader.received, reader.lost, reader.published) == (2, 5, 7)
    fanout = next(a for a in make().remote([(1.0, (PubItem(("x",), 0, b""),))], 1.0, False))
    assert isinstance(fanout, Fanout) and not fanout.waits
