"""Queue groups in the pure core, case by case (es.groups, es.grouping): who may join and how,
what an UNSUB does, members removed by the sweep or unreachable, bounds, durable groups in
storage and after a restart, failed writes, introspection, confirmations."""

from __future__ import annotations

from typing import Any

import pytest

from clients.wire import (
    Ack,
    Err,
    Ok,
    Options,
    PubItem,
    Publish,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_reply,
    encode,
)
from es.config import Limits, QueuePolicy, ServerConfig
from es.daemon.storage import StorageError
from es.durablelog import MemoryLog, Row
from es.grouping import index_name
from es.groups import Group
from es.outcomes import Linked, OpenFailed
from tests.unit.flowsim import EP, Server
from tests.unit.storefake import KeptStorage
from tests.unit.test_group_properties import Member

TOPIC = "jobs"


def _server(store: KeptStorage | None = None, **limits: Any) -> Server:
    server = Server(limits=Limits(max_queue_size=0, **limits))
    if store is not None:
        server.broker.use(store)
        server.broker.restore([], [], 0.0, 0.0)
    return server


def _join(
    server: Server,
    sid: str,
    group: str | None = "g",
    queue: int = 10,
    durable: str | None = None,
    pattern: bool = False,
    endpoint: str = EP,
    **options: Any,
) -> Ok | Err:
    if sid not in server.readers:
        member = server.readers[sid] = Member(sid, TOPIC)
        member.handled = []  # type: ignore[attr-defined]
    asked = Options(queue_size=queue, group=group, durable=durable, **options)
    kind = SubscribeMatch if pattern else Subscribe
    names = (r"jobs\.",) if pattern else (TOPIC,)
    before = len(server.replies)
    server.request(encode(kind(1, sid, endpoint, names, asked)), peer=sid.encode())
    server.hear([Linked(sid, True)])
    reply = decode_reply(server.replies[before].frames)
    assert isinstance(reply, Ok | Err)
    return reply


def _publish(server: Server, *payloads: bytes, subject: str = TOPIC, confirm: bool = False) -> Any:
    before = len(server.replies)
    items = tuple(PubItem((subject,), 0, p) for p in payloads)
    server.request(encode(Publish(9, confirm, items)))
    replies = [decode_reply(r.frames) for r in server.replies[before:]]
    return replies[0] if replies else None


def _work(server: Server, sid: str) -> list[tuple[bytes, bool]]:
    """Read and acknowledge everything `sid` has, until nothing more comes."""
    member = server.readers[sid]
    for _ in range(1000):
        if not member.inbox:
            break
        server.read(sid, 1)
    return member.handled  # type: ignore[attr-defined, no-any-return]


def _unsub(server: Server, sid: str, *names: str) -> Ok | Err:
    before = len(server.replies)
    server.request(encode(Unsubscribe(2, sid, names)), peer=sid.encode())
    reply = decode_reply(server.replies[before].frames)
    assert isinstance(reply, Ok | Err)
    return reply


def _code(reply: Ok | Err) -> str:
    assert isinstance(reply, Err)
    return reply.code


def _stats(server: Server) -> dict[str, Any]:
    server.request(encode(Stats(3)))
    return decode_reply(server.replies[-1].frames).body  # type: ignore[union-attr, no-any-return]


def test_who_may_join_a_group_and_how() -> None:
    server = _server(max_groups=1)
    assert _code(_join(server, "a", group="")) == "BAD_REQUEST"
    assert _code(_join(server, "a", group="$g")) == "BAD_REQUEST"
    assert _code(_join(server, "a", durable="other")) == "BAD_REQUEST"
    assert _code(_join(server, "a", name="svc")) == "BAD_REQUEST"
    assert isinstance(_join(server, "a"), Ok)
    assert _code(_join(server, "b", group="h")) == "LIMIT_EXCEEDED"  # one group at most
    assert _code(_join(server, "b", durable="g")) == "BAD_REQUEST"  # g is not durable
    assert _code(_join(server, "a", group="h")) == "BAD_REQUEST"  # a group cannot change
    server.broker.core.groups["g"].owner = "someone else's key"
    assert _code(_join(server, "b")) == "NOT_OWNER"
    server.broker.core.groups["g"].owner = None
    reply = _join(server, "a", pattern=True)  # a member's later SUB names no group: its own
    assert isinstance(reply, Ok) and reply.body["count"] == 2  # the group's


def test_a_durable_subscriber_cannot_join_a_group_nor_a_member_be_full() -> None:
    server = _server()
    _join(server, "d", group=None, durable="solo")
    assert _code(_join(server, "d")) == "BAD_REQUEST"
    server.broker.limit_room(1)
    assert _code(_join(server, "m")) == "LIMIT_EXCEEDED"


def test_each_event_goes_to_one_member_in_turn_and_a_confirm_counts_the_group_once() -> None:
    server = _server()
    _join(server, "a", queue=2)
    _join(server, "b", queue=2)
    answer = _publish(server, b"1", b"2", b"3", b"4", b"5", confirm=True)
    assert isinstance(answer, Ok) and answer.body == {"receivers": 1}
    # a takes 1 and 2, b 3 and 4 (their queues); 5 waits for the first ACK: a's
    assert [p for p, _ in _work(server, "a")] == [b"1", b"2", b"5"]
    assert [p for p, _ in _work(server, "b")] == [b"3", b"4"]
    stats = _stats(server)["server"]["groups"][0]
    assert (stats["handed"], stats["stored"], stats["pending"], stats["waiting"]) == (5, 0, 0, 0)


def test_a_member_removed_by_the_sweep_or_unreachable_hands_its_events_on() -> None:
    server = _server()
    _join(server, "a", queue=3)
    _join(server, "b", queue=3)
    _publish(server, b"1", b"2", b"3", b"4", b"5", b"6")
    server.mono += 100.0  # a is silent: removed as dead
    server.broker.core.subscribers["b"].health.heard(server.mono)
    server.apply(server.flow.route(server.broker.sweep(server.mono), server.mono))
    assert "a" not in server.broker.core.subscribers
    got = _work(server, "b")
    assert sorted(p for p, _ in got) == [b"1", b"2", b"3", b"4", b"5", b"6"]
    assert sum(again for _, again in got) == 3
    _join(server, "c")
    _publish(server, b"7")
    server.hear([OpenFailed("c", b"c", 1, "BAD_REQUEST", "no socket")])  # unreachable: it goes
    assert [p for p, _ in _work(server, "b")][-1:] == [b"7"]


def test_an_unsub_removes_from_the_group_and_one_with_no_names_leaves() -> None:
    server = _server()
    _join(server, "a")
    _join(server, "b", pattern=True)
    reply = _unsub(server, "a", TOPIC)
    assert isinstance(reply, Ok) and reply.body == {"count": 1}  # the group keeps its pattern
    reply = _unsub(server, "a")
    assert isinstance(reply, Ok) and reply.body == {"count": 0}
    assert "a" not in server.broker.core.subscribers
    assert list(server.broker.core.groups["g"].members) == ["b"]
    reply = _unsub(server, "b", r"jobs\.")  # its last subscription: the member goes, the group too
    assert isinstance(reply, Ok) and reply.body == {"count": 0}
    assert not server.broker.core.groups and not server.broker.core.group_sids


def test_a_new_socket_for_a_member_hands_what_the_old_one_held_out_again() -> None:
    server = _server()
    _join(server, "a", queue=5)
    _publish(server, b"1", b"2")
    server.readers["a"].inbox.clear()  # the old socket's: never read
    _join(server, "a", queue=5, endpoint="tcp://127.0.0.1:5001")
    assert _work(server, "a") == [(b"1", True), (b"2", True)]


def test_bounds_refuse_in_block_mode_and_drop_the_oldest_waiting_in_drop_mode() -> None:
    server = _server(max_durable_events=3, max_durable_bytes=1000)
    _join(server, "a", queue=1, policy="block")
    _publish(server, b"1", b"2", b"3")
    answer = _publish(server, b"4", confirm=True)
    assert isinstance(answer, Err) and answer.code == "STORE_FULL"
    drops = _server(max_durable_events=3, max_durable_bytes=1000)
    _join(drops, "a", queue=1, policy="drop")
    _publish(drops, b"1", b"2", b"3")
    _publish(drops, b"4")  # 2 goes (1 is handed out)
    assert [p for p, _ in _work(drops, "a")] == [b"1", b"3", b"4"]
    assert _stats(drops)["server"]["groups"][0]["dropped"] == 1
    size = _server(max_durable_events=100, max_durable_bytes=100)  # 17 bytes an event here
    _join(size, "a", queue=1, policy="drop")
    _publish(size, b"1", b"2", b"3")
    _publish(size, b"w" * 40)  # 107 bytes: 2 goes
    assert _publish(size, b"y" * 90, confirm=True).code == "STORE_FULL"  # alone too large
    assert [p for p, _ in _work(size, "a")] == [b"1", b"3", b"w" * 40]


def test_a_drop_mode_group_with_everything_handed_out_has_nothing_to_drop() -> None:
    server = _server(max_durable_events=2)
    _join(server, "a", queue=5, policy="drop")
    _publish(server, b"1", b"2")
    _publish(server, b"3")  # over by one, nothing waiting: kept all the same
    assert [p for p, _ in _work(server, "a")] == [b"1", b"2", b"3"]


def test_a_durable_group_is_kept_in_storage_and_comes_back_after_a_restart() -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g", queue=2)
    _join(server, "b", durable="g", pattern=True)  # a later member: the same record, more
    _publish(server, b"1", b"2", b"3")
    _work(server, "a")
    assert store.log.backlog(index_name("g")).count == 1  # 3 waits for b's ACK
    assert store.log.durables()[0].patterns == (r"jobs\.",)  # type: ignore[index]
    again = _server(store)
    group = again.broker.core.groups["g"]
    assert group.durable and not group.members
    assert again.broker.index.count(index_name("g")) == 2
    _join(again, "c", durable="g")
    assert [p for p, _ in _work(again, "c")] == [b"3"]
    _unsub(again, "c", TOPIC)
    _unsub(again, "c")  # the member leaves; the group keeps its pattern and stays
    assert "g" in again.broker.core.groups
    _join(again, "d")
    reply = _unsub(again, "d", TOPIC, r"jobs\.")  # the last subscription: no longer kept
    assert isinstance(reply, Ok) and reply.body == {"count": 0}
    assert not store.log.durables() and not again.broker.core.groups


def test_a_durable_group_without_subscriptions_keeps_no_log_and_ends_with_its_members() -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g")
    _join(server, "b")
    _unsub(server, "a", TOPIC)  # the group's last subscription: b stays a member of nothing
    group = server.broker.core.groups["g"]
    assert not group.durable and list(group.members) == ["b"]
    _unsub(server, "b")
    assert not server.broker.core.groups


def test_a_stored_group_whose_pattern_no_longer_compiles_is_left_as_it_is() -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g", pattern=True)
    small = Server(limits=Limits(max_queue_size=0, max_pattern_bytes=2))
    small.broker.use(store)
    small.broker.restore([], [], 0.0, 0.0)
    assert not small.broker.core.groups


def test_a_durable_group_commits_with_the_group_and_fsync_every_commits_each_publish() -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g")
    server.broker.config = server.broker.core.config = ServerConfig(fsync="every")
    commits = store.log.commits
    server.receive(encode(Publish(9, False, (PubItem((TOPIC,), 0, b"1"),))))
    assert store.log.commits == commits + 1
    store.full = True
    answer = _publish(server, b"2", confirm=True)
    assert isinstance(answer, Err) and answer.code == "STORAGE_FAILED"


def test_a_log_that_cannot_keep_an_event_loses_it_and_says_so() -> None:
    class Broken(MemoryLog):
        def append(self, name: str, rows: list[Row]) -> None:
            raise StorageError("disk gone")

    server = _server()
    _join(server, "a")
    server.broker.groups.memory = Broken()
    errors = server.broker.core.storage_errors
    _publish(server, b"1")
    assert server.broker.core.storage_errors == errors + 1
    assert _work(server, "a") == []


def test_an_event_gone_from_the_log_before_it_is_handed_again_is_not() -> None:
    server = _server()
    _join(server, "a", queue=2)
    _publish(server, b"1", b"2")
    _join(server, "b", queue=2)
    server.broker.groups.memory.drop(index_name("g"), (1, 1))  # as a failed commit would
    _unsub(server, "a")
    assert _work(server, "b") == [(b"2", True)]


def test_introspection_shows_groups_and_their_members() -> None:
    server = _server()
    _join(server, "a")
    _publish(server, b"1")
    stats = _stats(server)
    (group,) = stats["server"]["groups"]
    assert group["name"] == "g" and group["subjects"] == [TOPIC] and group["pending"] == 1
    assert group["oldest"] >= 0.0 and group["members"] == [stats["subscribers"][0]["id"]]
    assert stats["subscribers"][0]["group"] == "g"
    _work(server, "a")
    assert _stats(server)["server"]["groups"][0]["oldest"] == 0.0


def test_an_ack_from_a_member_whose_group_ended_is_taken_quietly() -> None:
    server = _server()
    _join(server, "a")
    _publish(server, b"1")
    state = server.broker.subscriber("a")
    assert state is not None
    server.broker.core.groups.clear()
    assert server.broker.groups.acked(state, 1) == []
    assert server.broker.groups.leave(state) == []


def test_the_pure_group_ignores_news_of_non_members() -> None:
    group = Group("g", False, QueuePolicy("drop", 1, 0.0), None, 1)  # type: ignore[arg-type]
    assert group.leave("nobody") == [] and group.acked("nobody", 5) == []
    group.join("a", 0)
    group.join("a", 3)  # its queue size again
    assert group.members["a"].room == 3


@pytest.mark.parametrize("queue", [0])
def test_a_member_with_an_unbounded_queue_holds_a_thousand_at_most(queue: int) -> None:
    server = _server()
    _join(server, "a", queue=queue)
    _publish(server, *[b"e"] * 1000)
    _publish(server, b"e")
    assert server.broker.core.groups["g"].members["a"].room == 1000
    assert _stats(server)["server"]["groups"][0]["waiting"] == 1
    server.request(encode(Ack(0, "a", 1)), peer=b"a")
    assert _stats(server)["server"]["groups"][0]["waiting"] == 0


@pytest.mark.parametrize("pattern", [False, True])
def test_a_durable_group_of_subjects_only_or_patterns_only_comes_back(pattern: bool) -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g", pattern=pattern)
    again = _server(store)
    assert again.broker.index.count(index_name("g")) == 1


def test_a_durable_group_at_its_bounds_drops_in_the_group_commit() -> None:
    store = KeptStorage()
    server = _server(store, max_durable_events=2)
    _join(server, "a", durable="g", queue=1, policy="drop")
    _publish(server, b"1", b"2")
    _publish(server, b"3")  # 2 goes, in the group
    assert server.broker.core.group_drops == [] and store.log.backlog(index_name("g")).count == 2


def test_a_publish_to_a_durable_subscriber_and_a_durable_group_fails_once_when_not_stored() -> None:
    store = KeptStorage()
    server = _server(store)
    _join(server, "a", durable="g")
    _join(server, "d", group=None, durable="solo")
    store.full = True
    before = len(server.replies)
    server.request(encode(Publish(9, False, (PubItem((TOPIC,), 0, b"1"),))))
    answers = [decode_reply(r.frames) for r in server.replies[before:]]
    assert [a.code for a in answers if isinstance(a, Err)] == ["STORAGE_FAILED"]


def test_meta_events_never_go_to_a_group_and_cost_its_members_nothing() -> None:
    server = _server()
    before = len(server.replies)
    asked = Options(queue_size=5, group="watchers")
    server.readers["w"] = Member("w", TOPIC)
    server.readers["w"].handled = []  # type: ignore[attr-defined]
    server.request(encode(SubscribeMatch(1, "w", EP, (r"^\$es\.",), asked)), peer=b"w")
    assert isinstance(decode_reply(server.replies[before].frames), Ok)
    _join(server, "a")  # a subscriber joins: $es.subscriber.joined, which no member gets
    server.apply(server.flow.route(server.broker.sweep(server.mono + 100.0), server.mono))
    assert _work(server, "w") == []


def test_a_burst_is_spread_among_the_members_with_room() -> None:
    server = _server()
    _join(server, "a", queue=1000)
    _join(server, "b", queue=1000)
    _join(server, "c", queue=1000)
    _publish(server, *[str(i).encode() for i in range(200)])
    shares = [len(server.readers[sid].inbox) for sid in "abc"]
    assert shares == [1, 1, 1]  # one EV each
    assert [len(_work(server, sid)) for sid in "abc"] == [67, 67, 66]


def test_the_client_checks_what_a_subscription_asks_of_the_history() -> None:
    import datetime

    from clients.inbox import asked_history, asked_options
    from clients.wire import Replay

    moment = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)
    assert asked_history({"since": moment}) == Replay(since=moment.timestamp())
    with pytest.raises(ValueError, match="aware"):
        asked_history({"since": moment.replace(tzinfo=None)})
    with pytest.raises(ValueError, match="must be a map"):
        asked_history(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="history must give one of"):
        asked_history({"last": 3, "since": 1.0})
    with pytest.raises(ValueError, match="'workers' \\(or True\\)"):
        asked_options(None, None, None, None, None, "other", "workers")
