"""History and replay in the pure core, case by case (es.history, es.catchup, es.replays): rules
and their bounds, what a request chooses, a catch-up's reads, durable subscribers asking for
history, what storage brings back, failed commits, introspection, configuration."""

from __future__ import annotations

from typing import Any

import pytest

from clients.wire import (
    Delivery,
    Err,
    Ok,
    Options,
    PubItem,
    Publish,
    Replay,
    Stats,
    Subscribe,
    SubscribeMatch,
    decode_delivery,
    decode_reply,
    encode,
)
from es.actions import Batch
from es.catchup import Catchup
from es.config import ConfigError, Limits, ServerConfig
from es.durablelog import MemoryLog, Row
from es.history import HISTORY, MAX_RULES, History, RuleError, parse_rule
from es.outcomes import Linked
from tests.unit.flowsim import EP, Reader, Server
from tests.unit.storefake import KeptStorage

RULE = r"orders\.=1000"


def _history(*rules: str) -> History:
    return History([parse_rule(r) for r in rules], stream=7)


def _keep(
    history: History, subject: str, time: float = 0.0, size: int = 10
) -> tuple[int, list[int]]:
    return history.keep(subject, time, size, history.rule_for(subject))


# --- rules -----------------------------------------------------------------------------------


def test_a_rule_gives_its_limits_in_any_order_and_the_rest_are_defaults() -> None:
    rule = parse_rule(r"orders\..*=1d,100000")
    assert (rule.pattern, rule.max_age, rule.max_events, rule.max_bytes) == (
        r"orders\..*",
        86_400.0,
        100_000,
        64 << 20,
    )
    rule = parse_rule("a=16MiB, 30m")
    assert (rule.max_age, rule.max_events, rule.max_bytes) == (1800.0, 100_000, 16 << 20)
    assert parse_rule("a=b=5").pattern == "a=b"  # the last '=' splits
    assert parse_rule("x=2.5h,1000B").describe() == "x=9000s,100000,1000B"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("orders", "must be PATTERN=LIMITS"),
        ("=100", "must be PATTERN=LIMITS"),
        ("(a=100", "RE2 cannot compile"),
        ("a=", "is not an age"),
        ("a=100,200", "gives its events twice"),
        ("a=5 parsecs", "is not an age"),
        ("a=0", "is not an age"),
        ("a=1.5", "is not an age"),
        ("a=0d", "is not an age"),
    ],
)
def test_a_rule_that_makes_no_sense_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(RuleError, match=why.replace("(", r"\(")):
        parse_rule(text)


def test_the_server_refuses_to_start_with_a_bad_rule_or_too_many() -> None:
    with pytest.raises(ConfigError, match="history rule"):
        ServerConfig(history=("orders",))
    with pytest.raises(ConfigError, match=f"at most {MAX_RULES}"):
        ServerConfig(history=tuple(f"a{i}=10" for i in range(MAX_RULES + 1)))


# --- what a history keeps --------------------------------------------------------------------


def test_the_first_rule_that_matches_keeps_an_event_within_its_own_bounds() -> None:
    history = _history(r"orders\.eu=2", r"orders\.=100", r"audit=3,25B")
    assert [_keep(history, "orders.eu")[0] for _ in range(3)] == [1, 2, 3]
    assert list(history.entries) == [2, 3]  # the first rule's bound: its oldest went
    assert _keep(history, "orders.us") == (4, [])  # the second rule: its own bound
    assert history.rule_for("nothing") == -1
    assert _keep(history, "audit", size=20) == (5, [])
    assert _keep(history, "audit", size=20) == (6, [5])  # 40 bytes: over 25
    assert _keep(history, "audit", size=30) == (7, [6, 7])  # alone too large: dropped too
    assert history.counts() == [(2, 20, 0.0), (1, 10, 0.0), (0, 0, None)]
    assert history.size == 30


def test_old_events_expire_by_their_rules_age() -> None:
    history = _history(r"a=10s", r"b=1000")
    _keep(history, "a", time=100.0)
    _keep(history, "b", time=100.0)
    _keep(history, "a", time=105.0)
    assert history.expire(112.0) == [1]
    assert list(history.entries) == [2, 3]


def test_a_request_chooses_the_last_n_since_a_time_or_from_a_seq() -> None:
    history = _history(r"o\.=1000")
    for i in range(6):
        _keep(history, "o.eu" if i % 2 else "o.us", time=float(i))
    eu = "o.eu".__eq__
    assert history.select(eu, Replay(last=2)) == [4, 6]
    assert history.select(eu, Replay(last=10)) == [2, 4, 6]
    assert history.select(eu, Replay(last=0)) == []
    assert history.select(eu, Replay(since=2.5)) == [4, 6]
    assert history.select(eu, Replay(start=4)) == [4, 6]
    assert history.select(eu, Replay(start=4, stream=7)) == [4, 6]
    assert history.select(eu, Replay(start=4, stream=8)) == [2, 4, 6]  # another history's seqs


def test_the_rule_of_each_subject_is_remembered_up_to_a_bound() -> None:
    history = _history("a=5")
    for i in range(10_001):
        history.rule_for(f"s{i}")
    assert len(history._rule_of) <= 10_000


# --- a catch-up ------------------------------------------------------------------------------


def _rows(*seqs: int) -> dict[int, Row]:
    from clients.wire import pack_event

    return {s: (s, pack_event("o", 1.0, 0, {"history": s}), b"p", 1.0) for s in seqs}


def test_a_catch_up_reads_the_history_then_what_came_meanwhile() -> None:
    catchup = Catchup(first=5, seqs=[10, 11, 13], max_events=2, max_bytes=1 << 20)
    assert catchup.end == 8
    catchup.keep(Batch("s", 8, [b"e8", b"e9", b"e10"], [b"", b"", b""], 0))
    assert catchup.missed == 1  # past its bound: missing, so counted lost
    kept = _rows(10, 13)  # 11 was dropped from the history meanwhile
    rows = catchup.read(5, 10, 1 << 20, lambda seqs: {s: kept[s] for s in seqs if s in kept})
    assert [r[0] for r in rows] == [5, 7, 8, 9]
    assert decode_delivery_flags(rows[0][1]) == {"history": 10, "replayed": True}
    assert [r[0] for r in catchup.read(8, 1, 1 << 20, lambda _: {})] == [8]
    catchup.ack(8)
    assert [r[0] for r in catchup.read(8, 5, 1 << 20, lambda _: {})] == [9]


def test_a_catch_up_whose_history_is_all_gone_reads_what_came_meanwhile() -> None:
    catchup = Catchup(first=1, seqs=list(range(1, 5000)), max_events=10, max_bytes=100)
    catchup.keep(Batch("s", 5000, [b"e"], [b"p"], 1))
    assert [r[0] for r in catchup.read(1, 3, 1 << 20, lambda _: {})] == [5000]


def test_a_catch_up_keeps_what_came_meanwhile_within_its_bytes() -> None:
    catchup = Catchup(first=1, seqs=[], max_events=10, max_bytes=5)
    catchup.keep(Batch("s", 1, [b"ab", b"cd"], [b"x", b"y"], 2))
    assert catchup.missed == 1 and catchup.live.backlog.count == 1


def decode_delivery_flags(packed: bytes) -> dict[str, Any]:
    import msgpack

    return dict(msgpack.unpackb(packed)[3])


# --- through the broker ------------------------------------------------------------------------


class Program(Reader):
    """A reader that remembers the events it read (their payloads and flags)."""

    seen: list[tuple[bytes, int | None, bool]]

    def read(self, messages: int) -> None:
        while messages > 0 and self.inbox:
            message = decode_delivery(self.inbox[0])
            if isinstance(message, Delivery):
                self.seen += [(e.payload, e.history, e.replayed) for e in message.events]
            super().read(1)
            messages -= 1


def _server(*rules: str, store: KeptStorage | None = None, **limits: Any) -> Server:
    server = Server(history=rules or (RULE,), limits=Limits(max_queue_size=0, **limits))
    if store is not None:
        server.broker.use(store)
        server.broker.restore([], [], 0.0, 0.0)
    return server


def _publish(server: Server, subject: str, *payloads: bytes, rid: int = 9) -> None:
    items = tuple(PubItem((subject,), 0, p) for p in payloads)
    server.request(encode(Publish(rid, True, items)))


def _subscribe(
    server: Server, sid: str, replay: Replay | None, pattern: bool = False, **options: Any
) -> Ok | Err:
    program = server.readers.get(sid)
    if program is None:
        program = server.readers[sid] = Program(sid, "orders.eu")
        program.seen = []  # type: ignore[attr-defined]
    asked = Options(history=replay, **options)
    kind = SubscribeMatch if pattern else Subscribe
    names = (r"orders\.",) if pattern else ("orders.eu",)
    before = len(server.replies)
    server.request(encode(kind(1, sid, EP, names, asked)), peer=sid.encode())
    server.hear([Linked(sid, True)])
    reply = decode_reply(server.replies[before].frames)
    assert isinstance(reply, Ok | Err)
    return reply


def _read_all(server: Server, sid: str) -> list[tuple[bytes, int | None, bool]]:
    program = server.readers[sid]
    for _ in range(10_000):
        if not program.inbox:
            break
        server.read(sid, 1)
    return program.seen  # type: ignore[attr-defined, no-any-return]


def test_a_subscription_gets_the_history_it_asks_for_then_live_events() -> None:
    server = _server()
    _publish(server, "orders.eu", b"1", b"2", b"3")
    _publish(server, "orders.us", b"x")
    _publish(server, "other", b"y")
    reply = _subscribe(server, "s", Replay(last=2), queue_size=1)
    assert isinstance(reply, Ok)
    assert (
        reply.body["replayed"] == 2 and reply.body["history"] == server.broker.core.history.stream
    )
    _publish(server, "orders.eu", b"4")
    assert _read_all(server, "s") == [(b"2", 2, True), (b"3", 3, True), (b"4", 5, False)]
    # a pattern, from a seq, on the same subscriber once it caught up
    _subscribe(server, "s", Replay(start=3), pattern=True)
    assert _read_all(server, "s")[3:] == [(b"3", 3, True), (b"x", 4, True), (b"4", 5, True)]


def test_without_rules_a_request_for_history_gets_none() -> None:
    server = Server()
    reply = _subscribe(server, "s", Replay(last=5))
    assert isinstance(reply, Ok) and reply.body["replayed"] == 0
    reply = _subscribe(server, "t", None)
    assert isinstance(reply, Ok) and "replayed" not in reply.body


def test_a_second_request_while_catching_up_goes_behind_the_first() -> None:
    server = _server()
    _publish(server, "orders.eu", *[str(i).encode() for i in range(10)])
    _subscribe(server, "s", Replay(start=1), queue_size=2)
    _subscribe(server, "s", Replay(last=3), queue_size=2)  # still catching up with the first
    _publish(server, "orders.eu", b"live")
    got = [p for p, _, _ in _read_all(server, "s")]
    assert got == [str(i).encode() for i in range(10)] + [b"7", b"8", b"9", b"live"]


def test_a_durable_subscriber_gets_its_replay_in_its_log_within_its_bounds() -> None:
    store = KeptStorage()
    server = _server(store=store, max_durable_events=5)
    _publish(server, "orders.eu", *[str(i).encode() for i in range(8)])
    reply = _subscribe(server, "d", Replay(last=6), durable="billing", queue_size=1)
    assert isinstance(reply, Err) and reply.code == "STORE_FULL"
    reply = _subscribe(server, "d", Replay(last=4), durable="billing", queue_size=1)
    assert isinstance(reply, Ok) and reply.body["replayed"] == 4
    assert store.log.backlog("billing").count == 4
    assert [p for p, _, r in _read_all(server, "d") if r] == [b"4", b"5", b"6", b"7"]


def test_durable_names_starting_with_a_dollar_are_the_servers_own() -> None:
    reply = _subscribe(_server(), "d", None, durable="$history")
    assert isinstance(reply, Err) and reply.code == "BAD_REQUEST"


def test_storage_brings_the_history_back_under_the_rules_of_the_day() -> None:
    store = KeptStorage()
    server = _server(r"orders\.eu=1000", r"orders\.us=1000", store=store)
    _publish(server, "orders.eu", b"1", b"2", b"3")
    _publish(server, "orders.us", b"4")
    stream = server.broker.core.history.stream
    again = _server(r"orders\.eu=2", store=store)  # fewer events, and no rule for orders.us
    history = again.broker.core.history
    assert (history.stream, list(history.entries), history.next_seq) == (stream, [2, 3], 5)
    assert store.log.backlog(HISTORY).count == 2
    _publish(again, "orders.eu", b"5")
    assert list(history.entries) == [3, 5]
    assert _server(store=store).broker.core.history.stream == stream
    gone = _server(store=store)  # the rules given on the day decide
    gone.broker.core.config = ServerConfig()
    gone.broker.replays.load()
    assert not gone.broker.core.history.entries


def test_events_past_their_age_go_at_a_sweep() -> None:
    server = _server(r"orders\.=10s")
    _publish(server, "orders.eu", b"1")
    server.broker.sweep(100.0, now=1000.0)
    assert not server.broker.core.history.entries


def test_a_publish_the_history_could_not_write_is_answered_storage_failed() -> None:
    store = KeptStorage()
    server = _server(store=store)
    _publish(server, "orders.eu", b"1")
    store.full = True
    before = len(server.replies)
    _publish(server, "orders.eu", b"2", rid=7)
    (answer,) = [decode_reply(r.frames) for r in server.replies[before:]]
    assert isinstance(answer, Err) and answer.code == "STORAGE_FAILED" and answer.rid == 7
    store.full = False
    _publish(server, "orders.eu", b"3")
    assert server.broker.core.healthy
    reply = _subscribe(server, "s", Replay(start=1))
    assert isinstance(reply, Ok) and reply.body["replayed"] == 3
    assert [p for p, _, _ in _read_all(server, "s")] == [b"1", b"3"]
    assert server.readers["s"].lost == 1  # seq 2 is in the index, not in the log: told lost


def test_fsync_every_commits_each_publish_the_history_keeps() -> None:
    store = KeptStorage()
    server = _server(store=store)
    server.broker.config = server.broker.core.config = ServerConfig(history=(RULE,), fsync="every")
    commits = store.log.commits
    server.receive(encode(Publish(9, False, (PubItem(("orders.eu",), 0, b"1"),))))
    assert store.log.commits == commits + 1


def test_stats_show_the_history_and_each_rule() -> None:
    server = _server(r"orders\.eu=1h,5", r"x=10")
    _publish(server, "orders.eu", b"1")
    server.request(encode(Stats(3)))
    body = decode_reply(server.replies[-1].frames).body  # type: ignore[union-attr]
    stats = body["server"]
    assert stats["history_events"] == 1 and stats["history_bytes"] > 1
    first, second = stats["history_rules"]
    assert first["pattern"] == r"orders\.eu" and first["events"] == 1
    assert (first["max_age"], first["max_events"]) == (3600.0, 5)
    assert second == {
        "pattern": "x",
        "events": 0,
        "bytes": 0,
        "oldest": 0.0,
        "max_events": 10,
        "max_bytes": 64 << 20,
        "max_age": 0.0,
    }


def test_a_broken_log_is_logged_and_replays_find_its_events_missing() -> None:
    class Broken(MemoryLog):
        def append(self, name: str, rows: list[Row]) -> None:
            raise StorageError("disk gone")

        def drop(self, name: str, seqs: tuple[int, int]) -> int:
            raise StorageError("disk gone")

        def read(self, name: str, start: int, most: int, most_bytes: int) -> list[Row]:
            raise StorageError("disk gone")

    from es.daemon.storage import StorageError

    server = _server(r"orders\.=1")
    server.broker.core.store.log = Broken()  # type: ignore[misc]
    errors = server.broker.core.storage_errors
    _publish(server, "orders.eu", b"1", b"2")  # append and the bound's drop both fail
    assert server.broker.core.storage_errors == errors + 2
    reply = _subscribe(server, "s", Replay(start=1))
    assert isinstance(reply, Ok) and reply.body["replayed"] == 1
    _read_all(server, "s")
    assert server.readers["s"].lost == 1
    reply = _subscribe(server, "d", Replay(start=1), durable="d")  # its log gets nothing
    assert isinstance(reply, Ok) and reply.body["replayed"] == 1
    assert server.broker.subscriber("d").lane.next_seq == 1  # type: ignore[union-attr]


def test_a_restart_whose_commit_fails_comes_up_all_the_same() -> None:
    store = KeptStorage()
    server = _server(store=store)
    _publish(server, "orders.eu", b"1", b"2")
    store.full = True  # the rules of the day drop one: that commit fails
    again = _server(r"orders\.=1", store=store)
    assert list(again.broker.core.history.entries) == [2]
    assert again.broker.core.storage_errors == 1


def test_a_subscriber_caught_up_is_an_ordinary_one_again() -> None:
    server = _server()
    _publish(server, "orders.eu", b"1")
    _subscribe(server, "s", Replay(last=1), queue_size=5)
    _read_all(server, "s")
    state = server.broker.subscriber("s")
    assert state is not None and not state.lane.spill
    _publish(server, "orders.eu", b"2")  # numbered as any other: the catch-up is forgotten
    assert state.catchup is None and state.keep is None
    assert server.broker.replays.refill(state) == []
    _subscribe(server, "s", Replay(last=2), queue_size=5)
    _read_all(server, "s")  # its ACKs let go of the catch-up once it caught up
    assert state.catchup is None and state.keep is None


def test_a_second_request_after_catching_up_unacknowledged_starts_a_new_catch_up() -> None:
    server = _server()
    _publish(server, "orders.eu", b"1", b"2")
    _subscribe(server, "s", Replay(last=1), queue_size=5)  # all in its queue at once: caught up
    _subscribe(server, "s", Replay(last=2), queue_size=5)  # before any ACK
    assert [p for p, _, _ in _read_all(server, "s")] == [b"2", b"1", b"2"]
