"""History and replay through the pure core (es.broker, es.replays, es.catchup, es.flow,
es.lane) with the model shell of tests/unit/flowsim.py: whatever the sizes (the subscriber's
queue, the history's bound, what may wait behind a replay) and whenever the program reads (its
connection lost and back now and then), a subscriber that asks for history is told of every
event numbered for it exactly once, as received or as lost; what it receives is the history it
asked for, then the events published after its request, in order, each once; and when no bound
is reached it loses nothing: replay then live with no gap."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import (
    Delivery,
    Options,
    PubItem,
    Publish,
    Replay,
    SubscribeMatch,
    decode_delivery,
    encode,
)
from es.config import Limits
from es.outcomes import Linked
from tests.unit.flowsim import EP, Reader, Server

SID = "replayer"
KEPT = "orders.eu"  # kept by the history rule
LIVE = "other.eu"  # matched by the subscription, not kept by the history

Step = tuple[str, int]

steps = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 40)),
        st.tuples(st.just("publish_other"), st.integers(1, 10)),
        st.tuples(st.just("read"), st.integers(1, 6)),
        st.tuples(st.just("relink"), st.just(0)),
    ),
    max_size=40,
)


class Program(Reader):
    """A subscriber's program that remembers the payloads it received, in order."""

    payloads: list[bytes]

    def read(self, messages: int) -> None:
        while messages > 0 and self.inbox:
            message = decode_delivery(self.inbox[0])
            if isinstance(message, Delivery):
                self.payloads += [e.payload for e in message.events]
            super().read(1)
            messages -= 1


def publish(server: Server, subject: str, count: int, serial: list[int]) -> list[bytes]:
    """Publish `count` events with payloads numbered on from `serial`; return their payloads."""
    payloads = [str(serial[0] + i).encode() for i in range(count)]
    serial[0] += count
    items = tuple(PubItem((subject,), 0, p) for p in payloads)
    server.request(encode(Publish(9, False, items)))
    return payloads


def drain(server: Server, program: Program) -> None:
    """Read and acknowledge until nothing more comes."""
    for _ in range(100_000):
        if not program.inbox:
            break
        server.read(SID, 1)


@settings(max_examples=300, deadline=None)
@given(
    before=st.integers(0, 200),
    kept=st.integers(1, 120),
    queue=st.integers(1, 30),
    behind=st.integers(1, 60),
    asked=st.sampled_from(["all", "last", "from"]),
    n=st.integers(0, 150),
    after=steps,
)
def test_a_replay_then_live_events_each_once_in_order_and_every_loss_told(
    before: int, kept: int, queue: int, behind: int, asked: str, n: int, after: list[Step]
) -> None:
    limits = Limits(max_queue_size=0, max_durable_events=behind)
    server = Server(history=(r"orders\.=" + str(kept),), limits=limits)
    serial = [0]
    history = publish(server, KEPT, before, serial) if before else []
    history = history[-kept:]  # what the rule still keeps
    replay = {"all": Replay(start=1), "last": Replay(last=n), "from": Replay(start=n + 1)}[asked]
    if asked == "last":
        chosen = history[max(0, len(history) - n) :] if n else []
    elif asked == "from":
        chosen = [p for p in history if int(p) + 1 >= n + 1]  # history seq = serial + 1
    else:
        chosen = history
    program = Program(SID, KEPT)
    program.payloads = []
    server.readers[SID] = program
    options = Options(queue_size=queue, history=replay)
    request = SubscribeMatch(1, SID, EP, (r"(orders|other)\.",), options)
    server.request(encode(request), peer=SID.encode())
    server.hear([Linked(SID, True)])
    live: list[bytes] = []
    for kind, count in after:
        if kind == "publish":
            live += publish(server, KEPT, count, serial)
        elif kind == "publish_other":
            live += publish(server, LIVE, count, serial)
        elif kind == "relink":  # its connection lost and back: what was in flight may be gone
            server.hear([Linked(SID, False)])
            server.hear([Linked(SID, True)])
        else:
            server.read(SID, count)
    drain(server, program)
    lane = server.broker.subscriber(SID).lane  # type: ignore[union-attr]
    numbered = lane.next_seq - 1
    assert program.received + program.lost == numbered
    assert numbered == len(chosen) + len(live)
    expected = chosen + live
    assert program.payloads == [p for p in expected if p in set(program.payloads)]
    bounded = len(live) > behind or kept < before + len(live)
    if not bounded:
        assert program.payloads == expected and program.lost == 0
    assert not lane.catching_up and lane.spilled_from is None
