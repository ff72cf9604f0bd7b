"""Connections on hold (es.flow: `hold`, `release`): pure, no sockets.

A publish that waits for a write elsewhere (the cluster's stream of retained events) puts its
connection on hold: that connection's later requests wait aside, in order, while other
connections go on; nothing is lost, duplicated or reordered within a connection.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from clients.wire import Ping, PubItem, Publish, Stats, encode
from es.flow import BACKLOG, Flow, Inbound


def pub(peer: bytes, rid: int) -> Inbound:
    return Inbound(peer, encode(Publish(rid, False, (PubItem(("s",), 0, b"x"),))), None)


def stats(peer: bytes, rid: int) -> Inbound:
    return Inbound(peer, encode(Stats(rid)), None)


def drain(flow: Flow) -> list[Inbound]:
    out = []
    while (inbound := flow.next_ready()) is not None:
        out.append(inbound)
    return out


def test_a_connection_on_hold_waits_aside_while_others_go_on() -> None:
    flow = Flow()
    flow.hold(b"a")
    assert flow.holding
    assert not flow.admit(pub(b"a", 2))  # after the held publish: aside
    assert flow.admit(stats(b"a", 3))  # reads only: at once
    assert flow.admit(pub(b"b", 1))  # another connection goes on
    assert not flow.admit(Inbound(b"a", encode(Ping(4)), None))  # a flush waits its turn
    assert drain(flow) == []
    flow.release(b"a")
    assert not flow.holding
    assert [i.frames for i in drain(flow)] == [pub(b"a", 2).frames, encode(Ping(4))]
    assert flow.admit(pub(b"a", 5))  # nothing waits any more


def test_what_a_connection_on_hold_has_in_the_backlog_goes_aside_too() -> None:
    flow = Flow()
    flow.release(b"x")  # not on hold: nothing happens
    flow.hold(b"a")
    flow.admit(pub(b"a", 1))
    flow.release(b"a")  # back in the backlog, first
    flow.hold(b"a")  # its first request there holds it again before the rest is handled
    assert drain(flow) == []
    flow.release(b"a")
    assert [i.frames for i in drain(flow)] == [pub(b"a", 1).frames]


def test_what_waits_aside_is_bounded_and_the_shell_stops_reading_past_it() -> None:
    flow = Flow()
    flow.hold(b"a")
    for rid in range(BACKLOG - 1):
        flow.admit(pub(b"a", rid))
    assert flow.reading()
    flow.admit(pub(b"a", BACKLOG))
    assert not flow.reading()
    flow.release(b"a")  # now in the backlog, whose bound is the same
    assert not flow.reading()
    assert len(drain(flow)) == BACKLOG and flow.reading()


@settings(max_examples=500)
@given(
    st.lists(
        st.tuples(st.sampled_from(["read", "hold", "release", "handle"]), st.sampled_from("abc")),
        max_size=60,
    )
)
def test_every_request_is_handled_once_in_its_connections_order(
    steps: list[tuple[str, str]],
) -> None:
    flow = Flow()
    sent: dict[bytes, list[int]] = {}
    handled: dict[bytes, list[int]] = {}
    on_hold: set[bytes] = set()
    rids: dict[int, int] = {}  # id of each request read -> its number

    def handle(inbound: Inbound) -> None:
        assert inbound.peer not in on_hold  # never while its connection is on hold
        handled.setdefault(inbound.peer, []).append(rids[id(inbound)])

    rid = 0
    for step, name in steps:
        peer = name.encode()
        if step == "read":
            rid = (rid + 1) % 100
            sent.setdefault(peer, []).append(rid)
            inbound = pub(peer, rid)
            rids[id(inbound)] = rid
            if flow.admit(inbound):
                handle(inbound)
        elif step == "hold":
            flow.hold(peer)
            on_hold.add(peer)
        elif step == "release":
            flow.release(peer)
            on_hold.discard(peer)
        elif (inbound := flow.next_ready()) is not None:
            handle(inbound)
    for peer in list(on_hold):
        flow.release(peer)
    on_hold.clear()
    for inbound in drain(flow):
        handle(inbound)
    assert handled == {peer: rids for peer, rids in sent.items() if rids}
    assert not flow.busy and flow.reading()


def test_a_hold_takes_what_the_connection_has_in_the_backlog_aside_first() -> None:
    flow = Flow()
    flow.hold(b"a")
    flow.admit(pub(b"a", 1))
    flow.release(b"a")  # a1 back in the backlog
    flow.admit(pub(b"b", 3))  # another connection's, behind it in the backlog
    flow.hold(b"a")  # held again before it was handled: a1 goes aside, ahead of what comes
    flow.admit(pub(b"a", 2))
    flow.release(b"a")  # a1 and a2 first, in order; b3 stayed in the backlog
    expected = [pub(b"a", 1), pub(b"a", 2), pub(b"b", 3)]
    assert [i.frames for i in drain(flow)] == [i.frames for i in expected]
