"""The broker's and the flow's less travelled paths: what the shell tells back (outcomes), what
storage brings back after a restart, the bounds of what they remember, and the flow's answers
to the shell. Pure: no sockets, a fake clock. Together with test_broker.py, test_flow.py and
the property tests, every branch of es/broker.py and es/flow.py is taken (see the README on
coverage)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from clients.errors import ErrorCode, RequestError
from clients.wire import (
    Ack,
    Bye,
    Delivery,
    Err,
    ListSubjects,
    NumSub,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    decode_delivery,
    decode_reply,
    decode_request,
    encode,
    encode_delivery,
    pack_event,
)
from es import broker as broker_module
from es import brokerstate, publishing
from es.actions import Action, Batch, Close, Fanout, Link, Open, Progress, Reply, Send
from es.broker import Broker
from es.config import Limits, ServerConfig
from es.flow import BACKLOG, Flow, Inbound
from es.outcomes import Acked, Full, Handshaken, Linked, OpenFailed, Stalled
from es.records import StoredEvent, StoredSubscriber
from tests.unit.storefake import KeptStorage

EP = "tcp://127.0.0.1:5000"
PEER = b"peer"


def make(**settings: Any) -> Broker:
    limits = settings.pop("limits", Limits())
    streams = itertools.count(100)
    return Broker(ServerConfig(limits=limits, **settings), 0.0, lambda: next(streams))


def reply(actions: list[Action]) -> Ok | Err:
    (only,) = [a for a in actions if isinstance(a, Reply)]
    return decode_reply(only.frames)


def subscribe(broker: Broker, flow: Flow, sid: str, *subjects: str, **options: Any) -> None:
    flow.route(
        broker.handle(PEER, encode(Subscribe(1, sid, EP, subjects, Options(**options))), 1.0), 1.0
    )


def publish(broker: Broker, flow: Flow, *subjects: str, confirm: bool = False) -> list[Any]:
    frames = encode(Publish(5, confirm, (PubItem(subjects, 0, b"m"),)))
    return flow.route(broker.handle(PEER, frames, 2.0, 2.0), 2.0)


# --- what the shell tells the broker ------------------------------------------------------------


def test_outcomes_about_nobody_are_ignored() -> None:
    broker = make()
    told = [Linked("x", True), Handshaken("x", False), Acked("x", []), Stalled("x"), Full("x")]
    assert broker.hear(told, 1.0) == []


def test_a_link_that_comes_back_is_told_to_the_flow_which_sends_again() -> None:
    broker, flow = make(), Flow()
    subscribe(broker, flow, "s1", "a")
    assert broker.hear([Linked("s1", True)], 1.0) == [Link("s1", True, False)]
    assert broker.hear([Linked("s1", False)], 2.0) == [Link("s1", False, False)]
    back = broker.hear([Linked("s1", True)], 3.0)
    assert back == [Link("s1", True, True)]
    publish(broker, flow, "a")
    (sent,) = [s for s in flow.flush() if isinstance(s, Send)]
    assert sent.count == 1
    lane = broker.subscriber("s1").lane  # type: ignore[union-attr]
    assert lane.in_flight == 1
    flow.route(back, 3.0)  # what was in flight may never arrive: it takes no room any more
    assert lane.in_flight == 0 and lane.may_wait


def test_handshakes_stalls_and_full_queues_feed_the_subscribers_health() -> None:
    broker = make()
    flow = Flow()
    subscribe(broker, flow, "s1", "a")
    broker.hear([Handshaken("s1", False), Stalled("s1"), Full("s1")], 5.0)
    state = broker.subscriber("s1")
    assert state is not None and state.stalls == 1 and state.health.full_since == 5.0
    assert broker.sweep(6.0) == [Close("s1")]  # a refused handshake: gone at the next sweep


def test_only_an_ack_for_the_same_sid_counts_on_a_delivery_connection() -> None:
    broker, flow = make(), Flow()
    subscribe(broker, flow, "s1", "a")
    publish(broker, flow, "a")
    flow.flush()
    assert broker.hear([Acked("s1", [b"\xc1"])], 3.0) == []  # garbage
    assert broker.hear([Acked("s1", encode(Ping(1)))], 3.0) == []  # not an ACK
    assert broker.hear([Acked("s1", encode(Ack(0, "s2", 1)))], 3.0) == []  # another's
    assert broker.hear([Acked("s1", encode(Ack(0, "s1", 1)))], 3.0) == [Progress("s1")]


def test_a_socket_that_could_not_be_opened_undoes_the_subscriber() -> None:
    store = KeptStorage()
    broker, flow = make(), Flow()
    broker.use(store)
    subscribe(broker, flow, "s1", "a")
    assert "s1" in store.subscriber_records
    failed = OpenFailed("s1", PEER, 7, ErrorCode.BAD_ENDPOINT, "cannot connect")
    close, err = broker.hear([failed], 2.0)
    assert close == Close("s1") and isinstance(err, Reply)
    assert decode_reply(err.frames) == Err(7, ErrorCode.BAD_ENDPOINT, "cannot connect")
    assert broker.subscriber("s1") is None and "s1" not in store.subscriber_records
    flow.route([close], 2.0)
    assert flow.route([Fanout([Batch("s1", 1, [pack_event("a", 0.0, 0)], [b"m"], 1)])], 2.0) == []


def test_the_room_the_shell_allows_is_kept() -> None:
    broker, flow = make(), Flow()
    broker.limit_room(1)
    subscribe(broker, flow, "s1", "a")
    refused = broker.handle(PEER, encode(Subscribe(1, "s2", EP, ("a",))), 1.0)
    assert isinstance(reply(refused), Err) and reply(refused).code == ErrorCode.LIMIT_EXCEEDED  # type: ignore[union-attr]
    assert make(liveness=9.0).heartbeat_interval == 3.0


def test_a_bug_in_the_core_is_an_internal_error_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = make()

    def broken(*args: Any) -> list[Action]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(broker.publishing, "publish", broken)
    answer = reply(broker.handle(PEER, encode(Publish(5, True, (PubItem(("a",), 0, b""),))), 1.0))
    assert isinstance(answer, Err) and answer.code == ErrorCode.INTERNAL


def test_goodbyes_name_each_subscribers_stream() -> None:
    broker, flow = make(), Flow()
    subscribe(broker, flow, "s1", "a")
    ((sid, frames),) = broker.goodbyes()
    message = decode_delivery(frames)
    assert sid == "s1" and message == Bye("s1", broker.subscriber("s1").stream)  # type: ignore[union-attr]


# --- what the broker remembers is bounded -------------------------------------------------------


def test_remembered_evictions_publishers_and_subjects_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(broker_module, "_EVICTIONS_KEPT", 1)
    monkeypatch.setattr(publishing, "_PUBLISHERS_KEPT", 1)
    monkeypatch.setattr(brokerstate, "SUBJECTS_KEPT", 1)
    broker, flow = make(liveness=10.0), Flow()
    subscribe(broker, flow, "s1", "a")
    subscribe(broker, flow, "s2", "b")
    assert len(broker.sweep(100.0)) == 2
    assert broker.core.evicted == {"s2": "silent"}  # the first one forgotten
    for peer in (b"p1", b"p2"):
        broker.handle(peer, encode(Publish(5, False, (PubItem(("x", "y"), 0, b""),))), 1.0)
    assert list(broker.core.publishers) == [b"p2"] and list(broker.core.subjects) == ["y"]


def test_listing_subjects_stops_at_its_budget_and_numsub_at_its_limit() -> None:
    broker = make(limits=Limits(max_items_per_publish=256))
    names = [f"{i:04d}" + "s" * 246 for i in range(1000)]  # 250 KB of names, with overhead
    items = tuple(PubItem(tuple(names[k : k + 100]), 0, b"") for k in range(0, 1000, 100))
    taken = broker.handle(PEER, encode(Publish(5, False, items)), 1.0)
    assert not [a for a in taken if isinstance(a, Reply)]  # no error
    listed = reply(broker.handle(PEER, encode(ListSubjects(1)), 3.0))
    assert isinstance(listed, Ok) and listed.body["truncated"]
    assert 800 < len(listed.body["subjects"]) < 1000
    over = reply(broker.handle(PEER, encode(NumSub(2, tuple(f"s{i}" for i in range(257)))), 3.0))
    assert isinstance(over, Err) and over.code == ErrorCode.LIMIT_EXCEEDED


# --- after a restart ----------------------------------------------------------------------------


def test_restore_takes_back_what_fits_and_marks_the_first_event_resumed() -> None:
    store = KeptStorage()
    kept = [
        StoredSubscriber("s2", EP, "block", 10, 1.0, patterns=("x" * 5000,)),  # too long now
        StoredSubscriber("s1", EP, "drop", 10, 1.0, subjects=("a",), patterns=("^b",)),
        StoredSubscriber("s3", EP, "block", 10, 1.0, subjects=("c",)),  # no room for it
    ]
    store.subscriber_records = {r.sid: r for r in kept}
    events = [
        StoredEvent("a", 0, b"alive", 1.0, None),
        StoredEvent("b1", 0, b"alive until 50", 1.0, 50.0),
        StoredEvent("c", 0, b"expired", 1.0, 5.0),
    ]
    broker = make(limits=Limits(max_pattern_bytes=100))
    broker.use(store)
    broker.limit_room(1)
    opened = broker.restore(kept, events, mono=100.0, now=10.0)
    assert [(o.sid, o.queue_size) for o in opened if isinstance(o, Open)] == [("s1", 10)]
    assert "s2" not in store.subscriber_records and "s3" in store.subscriber_records
    assert broker.core.retained.get("b1", 100.0) is not None  # 40 s left, on the new clock
    assert broker.core.retained.get("b1", 141.0) is None
    flow = Flow()
    flow.route(opened, 100.0)
    publish(broker, flow, "a")
    (sent,) = [s for s in flow.flush() if isinstance(s, Send)]
    delivery = decode_delivery(sent.frames)
    assert isinstance(delivery, Delivery) and delivery.events[0].resumed


# --- the flow's answers to the shell -------------------------------------------------------------


def test_the_flow_says_whom_it_waits_for_until_when_and_when_to_stop_reading() -> None:
    broker, flow = make(queue_size=1, max_stall=5.0), Flow()
    subscribe(broker, flow, "s1", "a")
    flow.route(broker.hear([Linked("s1", True)], 1.0), 1.0)
    assert flow.deadline() is None and flow.reading()
    told = publish(broker, flow, "a") + publish(broker, flow, "a")  # the second waits
    assert Stalled("s1") in told
    assert flow.waiting() == ["s1"] and flow.deadline() == 2.0 + 5.0
    flow.flush()
    assert flow.watched() == ["s1"]
    ping = Inbound(PEER, encode(Ping(9)), None)
    for _ in range(BACKLOG):
        assert not flow.admit(ping)
    assert not flow.reading() and flow.next_ready() is None  # a stall is on: nothing is ready
    flow.route([Close("s1")], 3.0)  # gone: nobody is waited for any more
    assert not flow.stalled and flow.next_ready() == ping


def test_a_stalled_publish_that_gets_room_counts_its_subscriber_as_a_receiver() -> None:
    broker, flow = make(queue_size=1, max_stall=5.0), Flow()
    subscribe(broker, flow, "s1", "a")
    flow.route(broker.hear([Linked("s1", True)], 1.0), 1.0)
    publish(broker, flow, "a")
    publish(broker, flow, "a", confirm=True)  # waits for room
    flow.flush()
    assert flow.stalled
    flow.route(broker.handle(PEER, encode(Ack(0, "s1", 1)), 3.0, 3.0), 3.0)  # room
    assert not flow.stalled
    (confirmed,) = [a for a in flow.flush() if isinstance(a, Reply)]
    assert decode_reply(confirmed.frames) == Ok(5, {"receivers": 1})


def test_progress_and_links_of_subscribers_the_flow_does_not_know_change_nothing() -> None:
    flow = Flow()
    assert flow.route([Progress("x"), Link("x", True, True)], 1.0) == []
    send = Send("x", [], 1, 0, 0)
    flow.refused([send])  # nothing to count it against
    assert flow.flush() == []


def test_a_request_routed_as_it_is_passes_through() -> None:
    reply_action = Reply(PEER, [b"x"])
    assert Flow().route([reply_action], 1.0) == [reply_action]
    assert decode_request(encode(SubscribeMatch(1, "s", EP, ("a",), Options()))) is not None
    assert encode_delivery("s", 1, 0, 1, [pack_event("a", 0.0, 0)], [b""])


def test_a_partial_resume_and_a_resume_with_no_room() -> None:
    broker, flow = make(queue_size=2, max_stall=5.0), Flow()
    for sid, subject in (("s1", "a"), ("s2", "b")):
        subscribe(broker, flow, sid, subject)
        flow.route(broker.hear([Linked(sid, True)], 1.0), 1.0)
    publish(broker, flow, "a")
    publish(broker, flow, "a")
    flow.flush()  # two in flight: the queue is full
    three = Publish(5, True, (PubItem(("a", "a", "a"), 0, b"m"),))
    flow.route(broker.handle(PEER, encode(three), 2.0, 2.0), 2.0)  # waits for room for 3
    flow.route(broker.handle(PEER, encode(Publish(6, True, (PubItem(("b",), 0, b""),))), 2.0), 2.0)
    flow.flush()
    assert flow.waiting() == ["s1"]
    flow.route(broker.handle(PEER, encode(Ack(0, "s1", 1)), 3.0, 3.0), 3.0)  # room for one
    assert flow.waiting() == ["s1"]  # two still wait
    lane = broker.subscriber("s1").lane  # type: ignore[union-attr]
    assert lane.waiting is not None and lane.waiting.count == 2
    flow.flush()
    flow.route(broker.handle(PEER, encode(Ack(0, "s1", 3)), 4.0, 4.0), 4.0)  # room for two
    replies = [decode_reply(a.frames) for a in flow.flush() if isinstance(a, Reply)]
    assert replies == [Ok(5, {"receivers": 1}), Ok(6, {"receivers": 1})]


def test_a_link_back_with_the_queue_full_of_events_not_sent_yet_moves_nothing() -> None:
    broker, flow = make(queue_size=1, max_stall=5.0), Flow()
    subscribe(broker, flow, "s1", "a")
    flow.route(broker.hear([Linked("s1", True)], 1.0), 1.0)
    publish(broker, flow, "a")  # pending: not sent yet, and the queue holds one
    publish(broker, flow, "a", confirm=True)  # waits for room
    lane = broker.subscriber("s1").lane  # type: ignore[union-attr]
    flow.route([Link("s1", True, True)], 2.0)  # nothing in flight to forget: still no room
    assert lane.waiting is not None and flow.waiting() == ["s1"]


def test_a_lane_with_nothing_waiting_resumes_and_expires_nothing() -> None:
    from es.lane import Lane

    lane = Lane("s1", 7, window=1)
    assert lane.resume() == 0 and lane.expire() == 0


def test_the_parts_refuse_on_their_own_what_the_decoder_refuses_first() -> None:
    broker = make(limits=Limits(max_items_per_publish=256, max_publish_bytes=1 << 18))
    with pytest.raises(RequestError) as many:
        broker.introspection.numsub(tuple(f"s{i}" for i in range(257)))
    assert many.value.code == ErrorCode.LIMIT_EXCEEDED
    cases = [
        ((PubItem(("a",), 0, b""),) * 257, ErrorCode.LIMIT_EXCEEDED),
        ((PubItem(("a",), 0, b"x" * ((1 << 18) + 1)),), ErrorCode.TOO_LARGE),
        ((PubItem((), 0, b""),), ErrorCode.BAD_SUBJECT),
        ((PubItem(tuple("abcdefghijklmnopqrstuvwxyz") * 4, 0, b""),), ErrorCode.LIMIT_EXCEEDED),
    ]
    for items, code in cases:
        with pytest.raises(RequestError) as refused:
            broker.publishing.publish(PEER, Publish(1, False, items), 1.0)
        assert refused.value.code == code


def test_subjects_listed_by_pattern_names_and_acks_of_nobody() -> None:
    broker, flow = make(), Flow()
    for subject in ("stock.a", "news.b"):
        publish(broker, flow, subject)
    listed = reply(broker.handle(PEER, encode(ListSubjects(1, r"^stock\.")), 3.0))
    assert isinstance(listed, Ok) and [s["subject"] for s in listed.body["subjects"]] == ["stock.a"]
    for name in ("", "n" * 1000):
        bad = Subscribe(1, "s1", EP, ("a",), Options(name=name))
        refused = reply(broker.handle(PEER, encode(bad), 1.0))
        assert isinstance(refused, Err) and refused.code == ErrorCode.BAD_REQUEST
    assert broker.handle(PEER, encode(Ack(0, "nobody", 3)), 1.0) == []


def test_restore_subscribers_of_subjects_only_and_of_patterns_only() -> None:
    broker = make()
    kept = [
        StoredSubscriber("s1", EP, "block", 10, 1.0, subjects=("a",)),
        StoredSubscriber("s2", EP, "block", 10, 1.0, patterns=("^b",)),
    ]
    opened = broker.restore(kept, [], mono=1.0, now=1.0)
    assert [o.sid for o in opened if isinstance(o, Open)] == ["s1", "s2"]
    assert (broker.index.subject_count, broker.index.pattern_count) == (1, 1)


def test_a_loss_notice_that_could_not_be_sent_is_told_again() -> None:
    from es.lane import Lane

    lane = Lane("s1", 7, window=1)

    def one() -> Batch:
        seq = lane.number(1)
        return Batch("s1", seq, [pack_event("a", 0.0, 0)], [b"m"], 1)

    assert lane.offer(one(), None) == 1 and len(lane.take()) == 1  # in flight: the queue is full
    assert lane.offer(one(), None) == 0  # dropped
    assert lane.ack(1)
    (notice,) = lane.take()
    assert notice.count == 0 and notice.lost == 1 and lane.totals.notices == 1
    lane.refuse([notice])  # the socket would not take it
    assert lane.totals.notices == 0 and lane.dropped - lane.reported == 1
    (again,) = lane.take()
    assert again.count == 0 and again.lost == 1
