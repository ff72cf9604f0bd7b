"""The flow of requests and events, and each subscriber's queue: pure, a fake clock, no sockets.

The cases the issue found on a live server, replayed here where no socket can hide them.
"""

from __future__ import annotations

from clients.wire import (
    Ack,
    Delivery,
    Loss,
    Options,
    Ping,
    Stats,
    decode_delivery,
    decode_reply,
    encode,
    pack_event,
)
from es.actions import Batch, Reply, Send
from es.lane import Lane
from tests.unit.flowsim import Server


def batch(first: int, count: int, size: int = 1, block: bool = False) -> Batch:
    events = [pack_event("s", 1.0, 0)] * count
    return Batch("s1", first, events, [b"x" * size] * count, size * count, block, 5.0)


def numbered(lane: Lane, count: int, size: int = 1, block: bool = False) -> Batch:
    return batch(lane.number(count), count, size, block)


def told(sends: list[Send]) -> list[tuple[str, int, int, int]]:
    """(kind, first seq, last seq, lost) of each message."""
    out = []
    for send in sends:
        message = decode_delivery(send.frames)
        if isinstance(message, Delivery):
            seqs = [e.seq for e in message.events]
            out.append(("EV", seqs[0], seqs[-1], message.lost))
        else:
            assert isinstance(message, Loss)
            out.append(("LOST", message.seq - message.lost + 1, message.seq, message.lost))
    return out


def test_a_queue_holds_its_size_in_events_whatever_the_messages() -> None:
    lane = Lane("s1", 7, window=10)
    assert lane.offer(numbered(lane, 4), None) == 4
    assert lane.offer(numbered(lane, 4), None) == 4
    assert lane.offer(numbered(lane, 4), None) == 2  # two over: dropped
    assert told(lane.take()) == [("EV", 1, 10, 0)]
    assert lane.offer(numbered(lane, 1), None) == 0  # all ten in flight, none acknowledged
    assert (lane.depth, lane.dropped) == (10, 3)
    assert lane.ack(4) and lane.room() == 4
    assert lane.offer(numbered(lane, 1), None) == 1
    assert told(lane.take()) == [("EV", 14, 14, 3)]  # the loss, told once, equal to the gap


def test_losses_at_the_end_of_a_burst_are_told_when_the_queue_drains() -> None:
    lane = Lane("s1", 7, window=10)
    for _ in range(300):  # a burst to a reader that does not keep up
        lane.offer(numbered(lane, 1), None)
        if lane.pending_events == 10:
            lane.take()
    assert lane.take() == []  # nothing more to send, and its queue is not empty yet
    assert lane.ack(10)
    assert told(lane.take()) == [("LOST", 11, 300, 290)]
    assert lane.take() == []  # told once
    assert (lane.sent, lane.dropped, lane.reported) == (10, 290, 290)


def test_a_block_mode_batch_waits_for_room_and_nothing_overtakes_it() -> None:
    lane = Lane("s1", 7, window=2)
    assert lane.offer(numbered(lane, 3, block=True), wait_until=5.0) == 2
    assert lane.waiting is not None and lane.waiting.count == 1 and lane.due == 5.0
    assert lane.offer(numbered(lane, 1), None) == 0  # news for it: dropped, never before seq 3
    lane.take()
    assert lane.ack(2) and lane.resume() == 1 and lane.waiting is None
    assert told(lane.take()) == [("EV", 3, 3, 0)]
    lane.ack(3)
    assert told(lane.take()) == [("LOST", 4, 4, 1)]


def test_a_stall_that_runs_out_drops_the_waiting_events_and_stops_blocking() -> None:
    lane = Lane("s1", 7, window=1)
    lane.offer(numbered(lane, 2, block=True), wait_until=5.0)
    assert lane.expire() == 1 and lane.stalled_out
    lane.take()
    assert lane.ack(1) and not lane.stalled_out  # it consumed: it may hold publishers again


def test_messages_keep_to_their_limits_and_split_a_large_batch() -> None:
    lane = Lane("s1", 7, window=0)  # unbounded
    lane.offer(numbered(lane, 5, size=400), None)
    lane.offer(numbered(lane, 1, size=5000), None)  # alone larger than the byte limit
    assert told(lane.take(max_events=3, max_bytes=1000)) == [
        ("EV", 1, 2, 0),
        ("EV", 3, 4, 0),
        ("EV", 5, 5, 0),
        ("EV", 6, 6, 0),
    ]


def test_a_send_the_socket_refused_is_a_loss_told_like_any_other() -> None:
    lane = Lane("s1", 7, window=0)
    lane.offer(numbered(lane, 2), None)
    first = lane.take()
    lane.offer(numbered(lane, 3), None)
    lane.refuse(lane.take(max_events=2))  # two messages, both refused
    assert (lane.sent, lane.dropped, lane.handed) == (2, 3, 2)
    lane.offer(numbered(lane, 1), None)
    assert told(first) + told(lane.take()) == [("EV", 1, 2, 0), ("EV", 6, 6, 3)]


def test_a_lost_connection_frees_what_was_in_flight() -> None:
    lane = Lane("s1", 7, window=3)
    lane.offer(numbered(lane, 3), None)
    lane.take()
    assert lane.room() == 0
    lane.reconnected()
    assert lane.room() == 3


def test_the_issue_case_a_queue_of_one_and_large_events_read_slowly() -> None:
    """Queue 1, 100 events of 200 KB, a reader that takes one now and then: every `lost` is the
    gap before its event, and what was read plus what was told is what was published."""
    server = Server(evict_stalled=0)
    reader = server.subscribe("s1", "big", Options("drop", 1))
    for n in range(100):
        server.publish("big", [200_000])
        if n % 7 == 0:
            server.read("s1", 1)
        server.check("s1")
    server.read("s1", 10)  # the last event, and its ACK: the queue drains
    server.read("s1", 10)  # the LOST notice it brought
    server.check("s1")
    assert reader.received + reader.lost == 100 and reader.lost == server.broker.totals.dropped


def test_a_confirmed_publish_is_answered_after_its_events_in_order() -> None:
    server = Server()
    server.subscribe("s1", "a", Options("block", 1, 5.0))
    server.publish("a", [1])  # fills the queue
    server.publish("a", [1], confirm=7)  # waits for room
    server.request(encode(Ping(8)))  # waits its turn behind it
    assert server.flow.stalled and [decode_reply(r.frames).rid for r in server.replies[1:]] == []
    server.read("s1", 1)  # the ACK makes room: the publish goes on, then the PING
    replies = [decode_reply(r.frames) for r in server.replies[1:]]
    assert [(r.rid, r.body) for r in replies] == [(7, {"receivers": 1}), (8, replies[1].body)]
    server.check("s1")


def test_an_ack_or_stats_is_handled_during_a_stall_while_a_publish_waits_its_turn() -> None:
    server = Server()
    server.subscribe("s1", "a", Options("block", 1, 5.0))
    server.publish("a", [1])
    server.publish("a", [1])  # waits
    server.publish("a", [1])  # in the backlog
    assert server.flow.stalled and server.flow.busy
    server.request(encode(Stats(4)))  # answered at once
    assert decode_reply(server.replies[-1].frames).rid == 4
    server.request(encode(Ack(0, "s1", 1)))  # on the control socket: taken at once too
    assert len(server.readers["s1"].inbox) == 2  # the second went
    assert server.flow.stalled  # the third, read from the backlog in turn, waits now
    for _ in range(3):
        server.read("s1", 5)
    server.check("s1")
    assert server.readers["s1"].received == 3 and server.broker.totals.dropped == 0


def test_a_stall_looked_at_before_it_is_due_goes_on_waiting() -> None:
    # Only some of the property tests' examples reached this: `make check` missed its branch
    # now and then, and the cores must be covered whatever Hypothesis draws.
    server = Server()
    server.subscribe("s1", "a", Options("block", 1, 5.0))
    server.publish("a", [1])
    server.publish("a", [1])  # waits for room, for at most 5 s
    server.tick(1.0)
    assert server.flow.stalled and server.broker.totals.dropped == 0
    server.tick(5.0)  # past its due time: given up, its event dropped
    assert not server.flow.stalled and server.broker.totals.dropped == 1
    server.read("s1", 5)
    server.check("s1")


def test_gathered_publishes_go_out_as_one_message_before_any_other_request() -> None:
    server = Server()
    reader = server.subscribe("s1", "a", Options("block", 100))
    server.publish("a", [1], gather=True)
    server.publish("a", [1, 1], gather=True)
    assert not reader.inbox
    server.receive(encode(Ping(3)))  # PING: what was gathered is sent first
    assert len(reader.inbox) == 1 and len(decode_delivery(reader.inbox[0]).events) == 3  # type: ignore[union-attr]
    assert isinstance(server.replies[-1], Reply)
