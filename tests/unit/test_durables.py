"""Durable subscribers in the pure core, case by case (es.durables, es.lane's spill mode): who
may take a name, what an UNSUB does to one, what storage brings back, bounds and ages, ACKs of
events an earlier connection delivered, sends the shell could not make."""

from __future__ import annotations

from collections import deque

import pytest

from clients.wire import (
    Ack,
    Delivery,
    Err,
    Ok,
    Options,
    PubItem,
    Publish,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_delivery,
    decode_reply,
    encode,
)
from es.actions import Batch, Send
from es.config import Limits, ServerConfig
from es.durablelog import MemoryLog, StoredDurable
from es.lane import Lane
from es.outcomes import Acked, Linked
from tests.unit.flowsim import EP
from tests.unit.storefake import KeptStorage
from tests.unit.test_durable_properties import DurableServer, Program

TOPIC = "orders"


def _server(**limits: object) -> tuple[DurableServer, KeptStorage]:
    server = DurableServer(Program("s"))
    config = ServerConfig(limits=Limits(max_queue_size=0, **limits))  # type: ignore[arg-type]
    server.broker.config = server.broker.core.config = config
    store = KeptStorage()
    server.broker.use(store)
    return server, store


def _reply(server: DurableServer, frames: list[bytes], peer: bytes = b"c") -> Ok | Err:
    before = len(server.replies)
    server.request(frames, peer=peer)
    (reply,) = server.replies[before:]
    decoded = decode_reply(reply.frames)
    assert isinstance(decoded, Ok | Err)
    return decoded


def _sub(
    sid: str, durable: str | None = "d", policy: str = "drop", queue: int = 4, rid: int = 1
) -> list[bytes]:
    options = Options(policy=policy, queue_size=queue, durable=durable)  # type: ignore[arg-type]
    return encode(Subscribe(rid, sid, EP, (TOPIC,), options))


def _pub(first: int, count: int, size: int = 1, rid: int = 9) -> list[bytes]:
    items = tuple(
        PubItem((TOPIC,), 0, str(first + i).encode().rjust(size, b"0")) for i in range(count)
    )
    return encode(Publish(rid, True, items))


def _code(reply: Ok | Err) -> str:
    assert isinstance(reply, Err)
    return reply.code


def test_who_may_take_a_durable_name_and_how() -> None:
    server, _ = _server(max_durables=1)
    assert isinstance(_reply(server, _sub("a")), Ok)
    assert isinstance(_reply(server, _sub("a", durable=None)), Ok)  # keeps its name
    assert _code(_reply(server, _sub("a", durable="other"))) == "BAD_REQUEST"
    assert _code(_reply(server, _sub("b", durable=""))) == "BAD_REQUEST"
    named = Options(durable="d", name="service")
    assert _code(_reply(server, encode(Subscribe(1, "b", EP, (TOPIC,), named)))) == "BAD_REQUEST"
    assert _code(_reply(server, _sub("b", durable="x" * 129))) == "BAD_REQUEST"
    assert _code(_reply(server, _sub("b", durable="second"))) == "LIMIT_EXCEEDED"
    assert isinstance(_reply(server, _sub("p", durable=None)), Ok)  # an ordinary subscriber
    assert _code(_reply(server, _sub("p"))) == "BAD_REQUEST"  # cannot take one later
    server.broker.core.subscribers["a"].owner = "key-of-a"  # made with key files
    assert _code(_reply(server, _sub("b"))) == "NOT_OWNER"
    server.broker.core.caller = None


def test_a_durable_subscriber_moves_with_its_patterns_and_the_old_sid_is_told() -> None:
    server, _ = _server()
    match = SubscribeMatch(2, "a", EP, (r"^ord",), Options(durable="d", queue_size=4))
    assert isinstance(_reply(server, encode(match)), Ok)
    assert isinstance(_reply(server, _sub("b")), Ok)
    assert server.broker.index.subscriptions("b").patterns == {r"^ord"}
    assert server.broker.subscriptions.heartbeat("a") == {"known": False, "evicted": "replaced"}


def test_unsubscribing_some_keeps_the_log_and_all_forgets_it() -> None:
    server, store = _server()
    _reply(server, _sub("a"))
    _reply(server, encode(SubscribeMatch(2, "a", EP, ("^x",), Options())))
    _reply(server, _pub(0, 3))
    assert _reply(server, encode(Unsubscribe(3, "a", ("^x",)))) == Ok(3, {"count": 1})
    assert [r.patterns for r in store.log.durables()] == [()]
    assert store.log.backlog("d").count == 3
    assert _reply(server, encode(Unsubscribe(4, "a", (TOPIC,)))) == Ok(4, {"count": 0})
    assert list(store.log.durables()) == [] and store.log.backlog("d").count == 0
    assert server.broker.core.durables == {}


def test_block_mode_refuses_a_publish_past_the_bounds_and_drop_mode_a_huge_event() -> None:
    server, _ = _server(max_durable_events=3, max_durable_bytes=100)
    _reply(server, _sub("a", policy="block", queue=1))
    assert isinstance(_reply(server, _pub(0, 3)), Ok)
    assert _code(_reply(server, _pub(3, 1))) == "STORE_FULL"
    server, _ = _server(max_durable_bytes=100)
    _reply(server, _sub("a", policy="drop"))
    assert _code(_reply(server, _pub(0, 1, size=200))) == "STORE_FULL"


def test_drop_mode_drops_nothing_in_the_window() -> None:
    server, _ = _server(max_durable_events=3)
    _reply(server, _sub("a", queue=8))  # everything fits in the window: nothing to drop
    assert isinstance(_reply(server, _pub(0, 5)), Ok)
    assert server.broker.subscriber("a").lane.dropped == 0  # type: ignore[union-attr]


def test_old_spilled_events_expire() -> None:
    server, store = _server(max_durable_age=60.0)
    _reply(server, _sub("a", queue=1))
    server.mono = 0.0
    server.broker.sweep(mono=100.0, now=0.0)  # nothing to look at yet
    _reply(server, _pub(0, 3))  # stamped now = 0: one sent, two spilled
    server.broker.sweep(mono=101.0, now=30.0)  # too soon after the last look
    assert store.log.backlog("d").count == 3
    server.broker.sweep(mono=200.0, now=90.0)
    assert store.log.backlog("d").count == 1  # only the one in the queue's window stays
    assert server.broker.subscriber("a").lane.dropped == 2  # type: ignore[union-attr]
    server.mono = 100.0
    _reply(server, _pub(3, 2))  # stamped now = 100: spilled, young
    server.broker.sweep(mono=300.0, now=120.0)
    assert store.log.backlog("d").count == 3


def test_storage_brings_back_durable_subscribers() -> None:
    server, store = _server()
    records = [
        StoredDurable("d", "a", EP, "drop", 4, 0.0, None, None, (TOPIC,), ("^o",), 77, 4, 1),
        StoredDurable("bad", "b", EP, "drop", 4, 0.0, None, None, (), ("(a)\\1",), 78),
    ]
    log = MemoryLog()
    for record in records:
        log.put_durable(record)
    log.append("d", [(s, b"e", b"p", 0.0) for s in (2, 3)])
    store.log = log  # type: ignore[assignment]
    opens = server.broker.restore([], [], mono=0.0, now=0.0)
    assert [o.sid for o in opens] == ["a"]  # the one whose pattern no longer compiles stays out
    state = server.broker.subscriber("a")
    assert state is not None and state.stream == 77 and state.lane.next_seq == 4


def test_an_ack_past_what_this_lane_sent_is_taken() -> None:
    server, _ = _server()
    _reply(server, _sub("a", queue=2))
    _reply(server, _pub(0, 5))  # 2 sent, 3 spilled
    lane = server.broker.subscriber("a").lane  # type: ignore[union-attr]
    server.hear([Acked("a", encode(Ack(0, "a", 4)))])  # it had 3 and 4 from before
    assert lane.acked == 4 and lane.handed >= 4
    lane2 = Lane("x", 1, 10)
    lane2.durable(next_seq=9, acked=0)
    lane2.refill(_batch("x", 1, 5), 8)
    assert lane2._had(3) is None and lane2.pending_events == 2 and lane2.spilled_from == 6


def test_a_send_that_fails_goes_back_to_the_log() -> None:
    lane = Lane("x", 1, 10)
    lane.durable(next_seq=6, acked=0)
    lane.refill(_batch("x", 1, 5), 5)
    sends = lane.take()
    lane.refuse(sends)
    assert lane.spilled_from == 1 and lane.dropped == 0 and lane.in_flight == 0


def test_a_failed_commit_drops_the_turns_events_from_the_queue_unsent() -> None:
    lane = Lane("x", 1, 10)
    lane.durable(next_seq=1, acked=0)
    for first in (1, 3):
        lane.number(2)
        lane.offer(_batch("x", first, 2), None)
    assert lane.discard(2) == 3 and lane.pending_events == 1 and lane.dropped == 3
    assert lane.discard(9) == 0
    plain = Lane("y", 1, 10)
    assert plain.discard(1) == 0


def test_lane_spill_edges() -> None:
    lane = Lane("x", 1, 2)
    lane.durable(next_seq=1, acked=0)
    lane.refill(None, 5)  # nothing spilled: nothing to do
    assert lane.forget(3) == 0
    lane.number(4)
    lane.offer(_batch("x", 1, 4), None)
    assert lane.spilled_from == 3 and lane.forget(2) == 0
    lane.refill(None, 4)  # the log had none of them: dropped
    assert lane.dropped == 2 and lane.spilled_from is None


def test_a_restarted_program_reads_again_what_it_had_not_acknowledged() -> None:
    server, _ = _server()
    _reply(server, _sub("a", queue=4))
    _reply(server, _pub(0, 3))
    inbox = server.sent_to["a"]
    server.hear([Linked("a", True)])
    server.hear([Linked("a", False)])
    server.hear([Linked("a", True)])  # back: sent again from the log
    server.turn_end()
    seqs = [
        [e.seq for e in m.events] for m in map(decode_delivery, inbox) if isinstance(m, Delivery)
    ]
    assert seqs == [[1, 2, 3], [1, 2, 3]]
    assert server.broker.subscriber("a").lane.dropped == 0  # type: ignore[union-attr]


def _batch(sid: str, first: int, count: int) -> Batch:
    events = [b"e"] * count
    return Batch(sid, first, events, [b"p"] * count, count)


@pytest.mark.parametrize("full", [False, True])
def test_the_sends_of_durable_subscribers_wait_while_commits_fail(full: bool) -> None:
    server, store = _server()
    _reply(server, _sub("a", queue=4))
    store.full = full
    server.receive(_pub(0, 2, rid=5))
    server.turn_end()
    got = deque(server.sent_to.get("a", deque()))
    store.full = False
    assert bool(got) != full  # held while the commit fails
    server.turn_end()
    assert server.sent_to["a"]  # then the loss is told
    assert isinstance(Send, type)


class _BrokenLog(MemoryLog):
    """A log whose drops fail (a damaged file)."""

    def drop(self, name: str, seqs: tuple[int, int]) -> int:
        from es.daemon.storage import StorageError

        raise StorageError("damaged")


def test_a_failed_commit_fails_the_request_that_made_it_and_the_groups_publishes() -> None:
    server, store = _server(max_durable_events=3)
    _reply(server, _sub("a", queue=1))
    server.receive(_pub(0, 5, rid=7))  # gathered: not committed yet (drops the oldest too)
    store.full = True
    before = len(server.replies)
    server.request(_sub("b", durable=None), peer=b"b")  # commits the group first: it fails
    answers = [decode_reply(r.frames) for r in server.replies[before:]]
    assert [a.rid for a in answers if isinstance(a, Err)] == [7, 1]
    server.hear([Acked("a", encode(Ack(0, "a", 1)))])  # no refill while commits fail
    store.full = False
    server.turn_end()
    assert server.broker.core.healthy


def test_what_a_failed_commit_leaves_to_redo_may_fail_too() -> None:
    server, _ = _server()
    _reply(server, _sub("a", queue=1))
    core = server.broker.core
    core.group_drops.append(("d", (1, 1)))
    core.store.log = _BrokenLog()  # type: ignore[misc]
    server.broker.durables._redo()  # logged; the next commit tries again
    assert core.log_dirty


def test_fsync_every_commits_each_publish() -> None:
    server, store = _server()
    server.broker.config = server.broker.core.config = ServerConfig(fsync="every")
    _reply(server, _sub("a"))
    commits = store.log.commits  # type: ignore[attr-defined]
    server.receive(_pub(0, 1))
    assert store.log.commits == commits + 1  # type: ignore[attr-defined]


def test_a_durable_subscriber_whose_socket_cannot_be_made_is_away() -> None:
    from es.outcomes import OpenFailed

    server, _ = _server()
    _reply(server, _sub("a"))
    server.hear([OpenFailed("a", b"c", 1, "BAD_ENDPOINT", "no")])
    state = server.broker.subscriber("a")
    assert state is not None and state.detached
    assert server.broker.subscriptions.heartbeat("a") == {
        "known": False,
        "evicted": "unreachable",
    }
    assert server.broker.subscriptions.heartbeat("a") == {"known": False}  # told once
    server.apply(server.flow.route([*server.broker.sweep(0.0)], 0.0))  # not evicted again


def test_memory_log_reads() -> None:
    log = MemoryLog()
    assert log.read("none", 1, 10, 10) == []
    log.append("d", [(1, b"e", b"p" * 10, 0.0), (2, b"e", b"p" * 10, 0.0)])
    assert [row[0] for row in log.read("d", 1, 10, 15)] == [1]


def test_restore_with_subjects_only_and_with_patterns_only() -> None:
    server, store = _server()
    log = MemoryLog()
    log.put_durable(StoredDurable("d", "a", EP, "drop", 4, 0.0, None, None, (TOPIC,), (), 7))
    log.put_durable(StoredDurable("e", "b", EP, "drop", 4, 0.0, None, None, (), ("^o",), 8))
    store.log = log  # type: ignore[assignment]
    assert len(server.broker.restore([], [], mono=0.0, now=0.0)) == 2


def test_an_ack_past_the_spilled_start() -> None:
    lane = Lane("x", 1, 2)
    lane.durable(next_seq=9, acked=0)
    lane.refill(_batch("x", 1, 2), 8)
    lane._had(5)
    assert lane.spilled_from == 6 and lane.pending_events == 0


def test_the_flow_ignores_news_of_lanes_it_no_longer_has() -> None:
    from es.actions import Close, Refilled, Refuse

    server, _ = _server()
    out = server.flow.route(
        [Refilled("gone", None, 1), Close("gone", detach=True), Refuse(b"p", 3, [b"x"])], 0.0
    )
    assert len(out) == 2  # the Close goes on to the shell, and the refusal as a reply


def test_events_wait_in_the_log_while_commits_fail_and_come_out_after() -> None:
    server, store = _server()
    _reply(server, encode(Subscribe(1, "o", EP, ("other",), Options(policy="drop"))), b"o")
    _reply(server, _sub("a", queue=1))
    _reply(server, _pub(0, 3))  # committed: seq 1 sent, 2 and 3 spilled
    server.hear([Acked("a", encode(Ack(0, "a", 1)))])  # in the group: 2 taken back
    store.full = True
    other = encode(Publish(6, True, (PubItem(("other",), 0, b"x"),)))
    server.receive(other)  # a confirmed publish that reached no durable subscriber
    server.receive(_pub(3, 1, rid=7))
    before = len(server.replies)
    server.turn_end()  # the commit fails: 7 is refused, 6 confirmed
    answers = {decode_reply(r.frames).rid: decode_reply(r.frames) for r in server.replies[before:]}
    assert isinstance(answers[6], Ok) and isinstance(answers[7], Err)
    assert server.broker.core.log.backlog("d").acked == 1  # the ACK is in the next group
    server.hear([Acked("a", encode(Ack(0, "a", 2)))])  # room, but the log waits
    store.full = False
    server.turn_end()  # the commit succeeds: what waited in the log goes out
    lane = server.broker.subscriber("a").lane  # type: ignore[union-attr]
    assert lane.in_flight == 1  # 3, taken back; 4 was never kept, and is found missing next
    assert lane.spilled_from == 4


def test_a_write_on_its_own_commits_the_group_first_and_answers_its_failure() -> None:
    server, store = _server()
    _reply(server, _sub("a", queue=4))
    server.receive(_pub(0, 1, rid=5))  # gathered, not committed
    store.full = True
    retained = Publish(8, True, (PubItem(("kept",), 0, b"v", retain=True),))
    before = len(server.replies)
    server.receive(encode(retained))  # its write commits the group first, which fails
    codes = [(a.rid, getattr(a, "code", "")) for a in _answers(server, before)]
    assert (8, "STORAGE_FAILED") in codes
    store.full = False
    server.turn_end()
    codes = [(a.rid, getattr(a, "code", "")) for a in _answers(server, before)]
    assert (5, "STORAGE_FAILED") in codes


def _answers(server: DurableServer, before: int) -> list[Ok | Err]:
    return [decode_reply(r.frames) for r in server.replies[before:]]  # type: ignore[misc]


def test_introspection_shows_what_a_durable_subscribers_log_holds() -> None:
    server, _ = _server()
    _reply(server, _sub("a", queue=1))
    _reply(server, encode(Subscribe(1, "o", EP, ("other",), Options())), b"o")
    server.mono = 5.0
    _reply(server, _pub(0, 3))  # published at 5
    server.broker.core.wall = 8.0  # the clock of the request that asks (STATS)
    stats = server.broker.stats(now=8.0)
    entry = next(e for e in stats["subscribers"] if e["durable"] == "d")
    assert (entry["stored"], entry["away"], entry["in_flight"], entry["depth"]) == (3, False, 1, 3)
    assert entry["stored_bytes"] > 3 and entry["oldest"] == 3.0
    assert stats["server"]["durables"] == 1 and stats["server"]["stored_events"] == 3
    other = next(e for e in stats["subscribers"] if e["durable"] is None)
    assert other["stored"] == 0
    for seq in (1, 2, 3):
        server.hear([Acked("a", encode(Ack(0, "a", seq)))])
    entry = server.broker.stats(now=9.0)["subscribers"][0]
    assert (entry["stored"], entry["oldest"]) == (0, 0.0)


def test_the_client_refuses_what_a_server_would() -> None:
    from clients.inbox import asked_options

    assert asked_options(None, None, None, None, None, "d").durable == "d"
    with pytest.raises(ValueError, match="non-empty"):
        asked_options(None, None, None, None, None, "")
    with pytest.raises(ValueError, match="service"):
        asked_options(None, None, None, None, "svc", "d")


def test_storage_brings_back_as_many_durable_subscribers_as_there_is_room_for() -> None:
    server, store = _server()
    log = MemoryLog()
    log.put_durable(StoredDurable("d", "a", EP, "drop", 4, 0.0, None, None, (TOPIC,), (), 7))
    log.put_durable(StoredDurable("e", "b", EP, "drop", 4, 0.0, None, None, (TOPIC,), (), 8))
    store.log = log  # type: ignore[assignment]
    server.broker.limit_room(1)
    assert [o.sid for o in server.broker.restore([], [], mono=0.0, now=0.0)] == ["a"]


def test_drops_undone_by_a_failed_commit_are_done_again_in_the_next_group() -> None:
    server, store = _server()
    _reply(server, _sub("a", queue=1))
    _reply(server, _pub(0, 3))
    core = server.broker.core
    core.group_drops.append(("d", (2, 2)))
    server.broker.durables._redo()
    assert core.group_drops == [("d", (2, 2))] and store.log.backlog("d").count == 2


def test_a_sub_reply_says_whether_a_durable_subscribers_events_were_kept() -> None:
    server, _ = _server()
    first = _reply(server, _sub("a"))
    assert isinstance(first, Ok) and first.body["kept"] is False  # a new name
    again = _reply(server, _sub("a"))
    assert isinstance(again, Ok) and again.body["kept"] is True
    moved = _reply(server, _sub("b"))
    assert isinstance(moved, Ok) and moved.body["kept"] is True
    plain = _reply(server, _sub("p", durable=None))
    assert isinstance(plain, Ok) and "kept" not in plain.body
