"""Durable subscribers through the pure core (es.broker, es.durables, es.flow, es.lane) with a
model shell and a model program that reads as the spec tells a client to (clients.streams):
whatever happens (the subscriber away and back, on the same sid or another, its connection lost
and back, a log at its bounds dropping its oldest events, commits of the group failing), the
program sees every event kept for it exactly once, in order, and is told of every other one
exactly once."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.streams import Streams
from clients.wire import (
    Ack,
    Delivery,
    Err,
    Loss,
    Options,
    PubItem,
    Publish,
    Subscribe,
    decode_delivery,
    decode_reply,
    encode,
)
from es.actions import Reply, Send
from es.config import Limits, ServerConfig
from es.outcomes import Acked, Linked
from tests.unit.flowsim import EP, Server
from tests.unit.storefake import KeptStorage

TOPIC = "orders"
LIVENESS = 10.0


@dataclass
class Program:
    """A durable subscriber's program: its inbox (the current sid's), what it handled, what it
    was told it lost. It keeps its Streams when it moves to another sid (it is one program)."""

    sid: str
    streams: Streams = field(default_factory=Streams)
    inbox: deque[list[bytes]] = field(default_factory=deque)
    handled: list[int] = field(default_factory=list)
    reported: int = 0
    consumed: int = 0  # the last seq consumed, in the current stream
    moves: int = 0

    def read(self, messages: int) -> None:
        while messages > 0 and self.inbox:
            messages -= 1
            message = decode_delivery(self.inbox.popleft())
            if isinstance(message, Loss):
                self.reported += self.streams.notice(message.stream, message.seq, message.lost)
                continue
            assert isinstance(message, Delivery)
            seqs = [e.seq for e in message.events]
            lost, had = self.streams.batch(message.stream, seqs[0], seqs[-1], message.lost)
            self.reported += lost
            self.handled += [int(e.payload) for e in message.events[had:]]
            self.consumed = max(self.consumed, seqs[-1])


class DurableServer(Server):
    """The flow model, with sends to the program's current sid going to its inbox."""

    def __init__(self, program: Program, **config: object) -> None:
        super().__init__(**config)  # type: ignore[arg-type]
        self.program = program
        self.sent_to: dict[str, deque[list[bytes]]] = {}

    def apply(self, actions: list) -> None:  # type: ignore[type-arg]
        for action in actions:
            if isinstance(action, Send) and action.sid not in self.readers:
                self.readers[action.sid] = _Sink(self.sent_to.setdefault(action.sid, deque()))
        super().apply(actions)


class _Sink:
    """Where the model shell puts what it sends to one sid (flowsim's Reader interface)."""

    def __init__(self, inbox: deque[list[bytes]]) -> None:
        self.inbox = inbox
        self.subject = ""


def _make(max_events: int, queue: int) -> tuple[DurableServer, Program, KeptStorage]:
    program = Program("sid-0")
    limits = Limits(max_queue_size=0, max_durable_events=max_events, max_durable_age=0)
    server = DurableServer(program, liveness=LIVENESS)
    server.broker.config = ServerConfig(limits=limits, liveness=LIVENESS)
    server.broker.core.config = server.broker.config
    store = KeptStorage()
    server.broker.use(store)
    server.queue = queue  # type: ignore[attr-defined]
    return server, program, store


def _subscribe(server: DurableServer, program: Program, queue: int) -> None:
    options = Options(policy="drop", queue_size=queue, durable="billing")
    frames = encode(Subscribe(1, program.sid, EP, (TOPIC,), options))
    server.request(frames, peer=program.sid.encode())
    program.inbox = server.sent_to.setdefault(program.sid, deque())
    server.hear([Linked(program.sid, True)])
    server.turn_end()


def _publish(server: DurableServer, first: int, count: int) -> list[Reply]:
    items = tuple(PubItem((TOPIC,), 0, str(first + i).encode()) for i in range(count))
    before = len(server.replies)
    server.request(encode(Publish(9, False, items)))
    return server.replies[before:]


def _ack(server: DurableServer, program: Program) -> None:
    if program.consumed:
        frames = encode(Ack(0, program.sid, program.consumed))
        server.hear([Acked(program.sid, frames)])
        server.turn_end()


step = st.one_of(
    st.tuples(st.just("publish"), st.integers(1, 12)),
    st.tuples(st.just("read"), st.integers(1, 6)),
    st.tuples(st.just("away"), st.just(0)),
    st.tuples(st.just("back"), st.booleans()),  # True: on a new sid
    st.tuples(st.just("relink"), st.just(0)),
    st.tuples(st.just("failing"), st.integers(1, 6)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(step, max_size=40), st.integers(5, 60), st.integers(1, 8))
def test_a_durable_subscriber_sees_each_kept_event_once_and_is_told_every_other(
    steps: list[tuple[str, object]], max_events: int, queue: int
) -> None:
    server, program, store = _make(max_events, queue)
    _subscribe(server, program, queue)
    published = 0
    away = False
    abandoned: set[int] = set()  # events sent to an inbox the program left unread
    for kind, arg in steps:
        if kind == "publish" or kind == "failing":
            count = int(arg)  # type: ignore[call-overload]
            store.full = kind == "failing"
            replies = _publish(server, published, count)
            store.full = False
            server.turn_end()  # the next commit succeeds: held events go out
            refused = [r for r in replies if isinstance(decode_reply(r.frames), Err)]
            assert len(refused) == len(replies) == (kind == "failing")  # STORAGE_FAILED
            published += count
        elif kind == "read" and not away:
            program.read(int(arg))  # type: ignore[call-overload]
            _ack(server, program)
        elif kind == "away" and not away:
            server.mono += LIVENESS + 1
            server.apply(server.flow.route(server.broker.sweep(server.mono), server.mono))
            server.turn_end()
            away = True
        elif kind == "back":
            if arg:  # the program moves to a new sid: what its old inbox held never arrives
                for frames in program.inbox:
                    message = decode_delivery(frames)
                    if isinstance(message, Delivery):
                        abandoned.update(int(e.payload) for e in message.events)
                program.moves += 1
                program.sid = f"sid-{program.moves}"
            _subscribe(server, program, queue)
            away = False
        elif kind == "relink" and not away:
            server.hear([Linked(program.sid, False)])
            server.hear([Linked(program.sid, True)])
            server.turn_end()
    if away:
        _subscribe(server, program, queue)
    _publish(server, published, 1)  # one more event shows any loss told on a lost connection
    published += 1
    for _ in range(10 * published + 10):  # drain: read and acknowledge until nothing comes
        if not program.inbox:
            break
        program.read(1000)
        _ack(server, program)
    assert program.handled == sorted(set(program.handled))  # in order, each once
    assert len(program.handled) + program.reported == published
    # The server counts each event it dropped before sending it once; the program also misses
    # those it was sent on a connection it left and that the log dropped before sending again.
    on_the_way = len(abandoned - set(program.handled))
    assert server.broker.totals.dropped + on_the_way == program.reported
    state = server.broker.subscriber(program.sid)
    assert state is not None and state.lane.depth == 0
