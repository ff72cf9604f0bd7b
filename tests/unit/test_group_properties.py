"""Queue groups through the pure core (es.broker, es.grouping, es.groups, es.flow, es.lane) with
the model shell of tests/unit/flowsim.py: whatever members join, read, acknowledge and leave
(with what they held), every event published to the group is acknowledged by exactly one member
once the survivors have read everything; a member is only handed an event again when the one
that held it went; members lose nothing, and never hold more than their queue; and the group's
counts (handed, redelivered) are exact."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import (
    Ack,
    Delivery,
    Options,
    PubItem,
    Publish,
    Subscribe,
    Unsubscribe,
    decode_delivery,
    encode,
)
from es.config import Limits
from tests.unit.flowsim import EP, Reader, Server

GROUP = "workers"
TOPIC = "jobs"


class Member(Reader):
    """A member's program: what it handled (payloads, flagged redelivered or not), and how far
    it acknowledged."""

    handled: list[tuple[bytes, bool]]
    acked_to: int

    def read(self, messages: int) -> None:
        while messages > 0 and self.inbox:
            message = decode_delivery(self.inbox[0])
            if isinstance(message, Delivery):
                self.handled += [(e.payload, e.redelivered) for e in message.events]
            super().read(1)
            messages -= 1


def join(server: Server, sid: str, queue: int) -> Member:
    member = Member(sid, TOPIC)
    member.handled, member.acked_to = [], 0
    server.readers[sid] = member
    options = Options(queue_size=queue, group=GROUP)
    server.request(encode(Subscribe(1, sid, EP, (TOPIC,), options)), peer=sid.encode())
    from es.outcomes import Linked

    server.hear([Linked(sid, True)])
    return member


def work(server: Server, member: Member, messages: int) -> list[bytes]:
    """Read up to `messages` messages, then acknowledge all it read: what this settled."""
    member.read(messages)
    done = [p for p, _ in member.handled[member.acked_to : member.consumed_to]]
    if member.consumed_to > member.acked_to:
        member.acked_to = member.consumed_to
        server.request(encode(Ack(0, member.sid, member.consumed_to)), peer=member.sid.encode())
    return done


Op = tuple[str, int, int]
ops = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 30), st.just(0)),
        st.tuples(st.just("work"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("read_only"), st.integers(0, 3), st.integers(1, 4)),
        st.tuples(st.just("leave"), st.integers(0, 3), st.just(0)),
        st.tuples(st.just("join"), st.integers(1, 20), st.just(0)),
    ),
    max_size=50,
)


@settings(max_examples=300, deadline=None)
@given(queues=st.lists(st.integers(1, 20), min_size=1, max_size=3), steps=ops)
def test_every_event_is_acknowledged_by_one_member_and_handed_again_only_when_its_member_went(
    queues: list[int], steps: list[Op]
) -> None:
    server = Server(limits=Limits(max_queue_size=0))
    members = [join(server, f"m{i}", q) for i, q in enumerate(queues)]
    joined = len(members)
    settled: list[bytes] = []  # acknowledged, by whoever
    published: list[bytes] = []
    held_by_gone: set[bytes] = set()
    for kind, a, b in steps:
        live = [m for m in members if m.sid in server.readers]
        if kind == "publish":
            payloads = [str(len(published) + i).encode() for i in range(a)]
            published += payloads
            items = tuple(PubItem((TOPIC,), 0, p) for p in payloads)
            server.request(encode(Publish(9, False, items)))
        elif kind in ("work", "read_only") and live:
            member = live[a % len(live)]
            if kind == "work":
                settled += work(server, member, b)
            else:
                member.read(b)
        elif kind == "leave" and len(live) > 1:
            member = live[a % len(live)]
            member.read(
                len(member.inbox)
            )  # what it was handed, read or not, and never acknowledged
            acked = {p for p, _ in member.handled[: member.acked_to]}
            held_by_gone |= {p for p, _ in member.handled} - acked
            server.request(encode(Unsubscribe(2, member.sid, ())), peer=member.sid.encode())
            del server.readers[member.sid]
        elif kind == "join":
            members.append(join(server, f"m{joined}", a))
            joined += 1
    live = [m for m in members if m.sid in server.readers]
    for _ in range(10_000):  # the survivors read and acknowledge everything
        if not any(m.inbox or m.consumed_to > m.acked_to for m in live):
            break
        for member in live:
            settled += work(server, member, 8)
    assert sorted(settled, key=int) == published  # each acknowledged once, none lost
    first_hands = Counter(p for m in members for p, again in m.handled if not again)
    assert all(first_hands[p] == 1 for p in published)  # handed out once, then only again
    for member in members:
        assert member.lost == 0
        for payload, again in member.handled:
            assert not again or payload in held_by_gone  # handed again only after its member went
    group = server.broker.core.groups[GROUP]
    assert group.held == 0 and not group.again
    # What STATS says of the group (handed, redelivered) is exactly what the members got.
    assert group.handed == sum(len(m.handled) for m in members)
    assert group.redelivered == sum(again for m in members for _, again in m.handled)
    for member in live:
        state = server.broker.subscriber(member.sid)
        assert state is not None and state.lane.dropped == 0
