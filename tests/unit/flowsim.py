"""A model of the event server's shell and of subscribers that read what it sends, for driving
the pure flow (es.flow) in tests: no sockets, a fake clock.

The model checks every message a subscriber reads the way the spec tells a client to: events
consecutive in seq, `lost` equal to the gap before them, a LOST notice covering exactly the gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from clients.wire import (
    Ack,
    Delivery,
    Options,
    PubItem,
    Publish,
    Subscribe,
    decode_delivery,
    encode,
)
from es.actions import Action, Link, Reply, Send
from es.broker import Broker
from es.config import Limits, ServerConfig
from es.flow import Flow, Inbound
from es.outcomes import Full, Linked, Outcome, Refill, Stalled

EP = "tcp://127.0.0.1:5000"
PEER = b"publisher"


@dataclass
class Reader:
    """A subscriber: what reached its inbox, what it read, what it was told it lost."""

    sid: str
    subject: str
    inbox: deque[list[bytes]] = field(default_factory=deque)
    expected: int = 1  # next seq it expects
    received: int = 0
    lost: int = 0
    notices: int = 0  # LOST messages read
    batches: int = 0  # EV messages read
    consumed_to: int = 0  # last seq read
    published: int = 0  # events published to its subject since it subscribed (the model's count)

    def read(self, messages: int) -> None:
        """Read up to `messages` messages, checking each as a client must."""
        while messages > 0 and self.inbox:
            messages -= 1
            message = decode_delivery(self.inbox.popleft())
            assert message.sid == self.sid
            if isinstance(message, Delivery):
                seqs = [e.seq for e in message.events]
                assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
                assert message.lost == seqs[0] - self.expected, (message.lost, seqs, self.expected)
                self.expected = seqs[-1] + 1
                self.received += len(seqs)
                self.batches += 1
                self.consumed_to = seqs[-1]
            else:
                assert message.lost == message.seq - self.expected + 1, (message, self.expected)
                self.expected = message.seq + 1
                self.notices += 1
            self.lost += message.lost

    def in_inbox(self) -> tuple[int, int]:
        """(events, told losses) waiting in the inbox, unread."""
        events = lost = 0
        for frames in self.inbox:
            message = decode_delivery(frames)
            lost += message.lost
            events += len(message.events) if isinstance(message, Delivery) else 0
        return events, lost


class Server:
    """The shell's part, by the book (es.server): the flow admits each request, the broker
    handles it, the flow routes what the broker asks, and this carries it out; outcomes go back
    to the broker."""

    def __init__(self, max_events: int = 256, max_bytes: int = 1 << 20, **config: Any) -> None:
        limits = config.pop("limits", Limits(max_queue_size=0))
        self.broker = Broker(ServerConfig(limits=limits, **config), now=0.0)
        self.flow = Flow(max_events=max_events, max_bytes=max_bytes)
        self.mono = 0.0
        self.readers: dict[str, Reader] = {}
        self.replies: list[Reply] = []
        self.refusing: set[str] = set()  # sids whose next send fails (a full delivery socket)

    def request(self, frames: list[bytes], peer: bytes = PEER) -> None:
        self.receive(frames, peer)
        self.turn_end()

    def receive(self, frames: list[bytes], peer: bytes = PEER) -> None:
        """A request read, handled now if the flow admits it."""
        inbound = Inbound(peer, frames, None)
        if self.flow.admit(inbound):
            self.handle(inbound)

    def handle(self, inbound: Inbound) -> None:
        if self.flow.flushes_before(inbound):
            self.flush()
        actions = self.broker.handle(inbound.peer, inbound.frames, self.mono, self.mono)
        self.apply(self.flow.route(actions, self.mono))

    def hear(self, outcomes: list[Outcome]) -> None:
        self.apply(self.flow.route(self.broker.hear(outcomes, self.mono), self.mono))

    def flush(self) -> None:
        """As the shell does: the group committed, then what was gathered sent."""
        failed = self.broker.commit()
        if failed:
            self.apply(self.flow.route(failed, self.mono))
        self.apply(self.flow.flush(self.broker.holding()))

    def turn_end(self) -> None:
        self.flush()
        while self.flow.busy and not self.flow.stalled:
            for _ in range(64):
                inbound = self.flow.next_ready()
                if inbound is None:
                    break
                self.handle(inbound)
            self.flush()

    def link(self, sid: str, up: bool) -> None:
        """What the flow is told of the link to `sid`'s inbox, without the resending that a
        reconnection brings (this model's inboxes never lose what was sent)."""
        self.apply(self.flow.route([Link(sid, up)], self.mono))

    def apply(self, actions: list[Action | Outcome]) -> None:
        refused: dict[str, list[Send]] = {}
        heard: list[Outcome] = []
        for action in actions:
            if isinstance(action, Send):
                if action.sid in refused:
                    refused[action.sid].append(action)
                elif action.sid in self.refusing:
                    self.refusing.discard(action.sid)
                    refused[action.sid] = [action]
                else:
                    self.readers[action.sid].inbox.append(action.frames)
            elif isinstance(action, Reply):
                self.replies.append(action)
            elif isinstance(action, Stalled | Full | Refill):
                heard.append(action)
        for sends in refused.values():
            self.flow.refused(sends)
        if heard:
            self.hear(heard)

    def subscribe(self, sid: str, subject: str, options: Options) -> Reader:
        self.readers[sid] = reader = Reader(sid, subject)
        self.request(encode(Subscribe(1, sid, EP, (subject,), options)), peer=sid.encode())
        self.hear([Linked(sid, True)])
        return reader

    def publish(
        self, subject: str, sizes: list[int], gather: bool = False, confirm: int | None = None
    ) -> None:
        """Publish events of these payload sizes; `confirm`: a confirmed publish with this rid."""
        items = tuple(PubItem((subject,), 0, b"x" * size) for size in sizes)
        request = Publish(confirm or 9, confirm is not None, items)
        self.receive(encode(request))
        if not gather:
            self.turn_end()
        for reader in self.readers.values():
            if reader.subject == subject:
                reader.published += len(sizes)

    def remote(self, subject: str, sizes: list[int]) -> None:
        """Events of these payload sizes from another node of a cluster, taken as the shell
        takes them: waiting for room, or, during a stall (the link crowded), not."""
        items = tuple(PubItem((subject,), 0, b"x" * size) for size in sizes)
        actions = self.broker.remote([(self.mono, items)], self.mono, not self.flow.stalled)
        self.apply(self.flow.route(actions, self.mono))
        self.flush()
        for reader in self.readers.values():
            if reader.subject == subject:
                reader.published += len(sizes)

    def read(self, sid: str, messages: int, ack: bool = True) -> None:
        reader = self.readers[sid]
        reader.read(messages)
        if ack and reader.consumed_to:
            ack_frames = encode(Ack(0, sid, reader.consumed_to))
            self.request(ack_frames, peer=sid.encode())

    def tick(self, seconds: float) -> None:
        self.mono += seconds
        self.flow.expire(self.mono)
        self.turn_end()

    def check(self, sid: str) -> None:
        """Every event published to `sid` is, exactly once: read, told lost, unread in its inbox,
        in its queue on the server, waiting for room, or dropped and not told yet."""
        reader = self.readers[sid]
        state = self.broker.subscriber(sid)
        assert state is not None
        lane = state.lane
        numbered = lane.next_seq - 1  # publishes in the backlog are not numbered yet
        assert numbered == reader.published or (self.flow.busy and numbered < reader.published)
        events, told = reader.in_inbox()
        waiting = 0 if lane.waiting is None else lane.waiting.count
        untold = lane.dropped - lane.reported
        assert untold >= 0
        accounted = reader.received + reader.lost + events + told
        assert accounted + lane.pending_events + waiting + untold == numbered
        assert lane.sent == reader.received + events
        assert lane.in_flight == lane.sent - lane.consumed
        if lane.window:
            assert lane.pending_events + lane.in_flight <= lane.window
