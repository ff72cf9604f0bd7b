"""The flow of requests and events through the server: order, gathering, stalls, the backlog.

Pure: no sockets, no clock (times are passed in). The shell (es.server) hands it each request it
reads and carries out the actions it returns; the broker (es.broker) decides what a request
means; each subscriber's lane (es.lane) keeps its queue and its losses.

Invariants:
- Requests are handled in the order they arrive. While a block-mode publish waits for room in a
  subscriber's queue (a stall), only requests that cannot change what is delivered (STATS,
  introspection, HEARTBEAT, ACK) are handled; the others wait in a bounded backlog, and once it
  is full the shell stops reading, so ZeroMQ's own limits hold the clients back.
- Gathering: the events of consecutive publishes wait in their lanes and go out when the turn
  ends or before any request that is not a PUB, so a PING reply still proves that every earlier
  publish was handed on. An idle server reads one publish per turn: gathering never delays.
- A confirmed publish is answered once all its events were taken into queues or dropped, after
  the events themselves, and in the order the publishes came.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field

from clients.errors import ErrorCode
from clients.wire import peek_command
from es.actions import Action, Close, Confirm, Fanout, Progress, Send
from es.broker import Broker
from es.lane import MAX_BYTES, MAX_EVENTS, Lane

__all__ = ["BACKLOG", "BACKLOG_BYTES", "Flow"]

log = logging.getLogger("es.flow")

# Requests held while a publish is stalled; past either bound the shell stops reading (and
# ZeroMQ's high-water marks push back on the clients).
BACKLOG = 256
BACKLOG_BYTES = 32 << 20


@dataclass
class _Owed:
    """A confirmed publish not answered yet: who got events, who still waits for room."""

    confirm: Confirm
    receivers: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)


class Flow:
    """Requests in, actions for the shell out, in order (see the module)."""

    def __init__(
        self, broker: Broker, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES
    ) -> None:
        self.broker = broker
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._stall: dict[str, Lane] = {}  # lanes whose publish waits for room: a stall is on
        self._owed: deque[_Owed] = deque()
        self._dirty: dict[str, Lane] = {}  # lanes with something to send or to tell
        self._watch: dict[str, Lane] = {}  # lanes whose ACKs the shell reads as soon as they come
        self._backlog: deque[tuple[bytes, list[bytes], str | None]] = deque()
        self._backlog_bytes = 0

    # --- what the shell asks -------------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        """A publish waits for room in some block-mode subscriber's queue."""
        return bool(self._stall)

    @property
    def busy(self) -> bool:
        """Requests wait in the backlog, or a stall is on."""
        return bool(self._stall or self._backlog)

    def reading(self) -> bool:
        """Whether the shell may read more requests (the backlog has room)."""
        return len(self._backlog) < BACKLOG and self._backlog_bytes < BACKLOG_BYTES

    def waiting(self) -> list[str]:
        """The subscribers a stalled publish waits for."""
        return list(self._stall)

    def watched(self) -> list[str]:
        """The subscribers whose delivery connections the shell should read ACKs from as soon as
        they come (queue half full or more, a publish waiting for room, losses to tell)."""
        return list(self._watch)

    def deadline(self) -> float | None:
        """When the first waiting publish gives up on its subscriber (monotonic), if any."""
        return min((lane.due for lane in self._stall.values()), default=None)

    # --- requests ------------------------------------------------------------------------------

    def request(
        self,
        peer: bytes,
        frames: list[bytes],
        wall: float,
        mono: float,
        owner: str | None = None,
    ) -> list[Action]:
        """A request read from the control socket (from a connection that proved client key
        `owner`, if any): handled now, or kept in the backlog."""
        if self._stall or self._backlog:
            if self.broker.answers_at_once(frames):
                return self._handle(peer, frames, wall, mono, owner)
            self._backlog.append((peer, frames, owner))
            self._backlog_bytes += _size(peer, frames)
            return []
        return self._turn(peer, frames, wall, mono, owner)

    def step(self, wall: float, mono: float, limit: int) -> list[Action]:
        """Handle up to `limit` requests from the backlog, while no stall is on."""
        actions: list[Action] = []
        while self._backlog and not self._stall and limit > 0:
            limit -= 1
            peer, frames, owner = self._backlog.popleft()
            self._backlog_bytes -= _size(peer, frames)
            actions += self._turn(peer, frames, wall, mono, owner)
        return actions

    def _turn(
        self, peer: bytes, frames: list[bytes], wall: float, mono: float, owner: str | None
    ) -> list[Action]:
        """A request in its turn: anything but a publish first sends what was gathered."""
        if (self._dirty or self._owed) and peek_command(frames) != "PUB":
            return self.flush() + self._handle(peer, frames, wall, mono, owner)
        return self._handle(peer, frames, wall, mono, owner)

    def _handle(
        self, peer: bytes, frames: list[bytes], wall: float, mono: float, owner: str | None
    ) -> list[Action]:
        try:
            actions = self.broker.handle(peer, frames, wall, mono, owner)
        except Exception:  # a bug in the core must not take the server down
            log.exception("internal error handling a request")
            actions = [self.broker.error(peer, 0, ErrorCode.INTERNAL, "internal server error")]
        return self.route(actions, mono)

    def ack(self, sid: str, frames: list[bytes], mono: float) -> None:
        """A message that came back on `sid`'s delivery connection: its ACK."""
        self.route(self.broker.acknowledged(sid, frames, mono), mono)

    def link(self, sid: str, up: bool, mono: float) -> None:
        """The connection to `sid`'s inbox came up or went down (the shell's socket monitor)."""
        if self.broker.link(sid, up, mono):
            state = self.broker.subscriber(sid)
            if state is not None:
                state.lane.reconnected()
                self._progress(sid)

    def route(self, actions: list[Action], mono: float) -> list[Action]:
        """Take the broker's fan-outs and progress into the lanes; the rest is for the shell."""
        out: list[Action] = []
        for action in actions:
            match action:
                case Fanout():
                    self._fanout(action, mono)
                case Progress(sid):
                    self._progress(sid)
                case Close(sid):
                    self._forget(sid)
                    out.append(action)
                case _:
                    out.append(action)
        return out

    # --- fan-out, stalls, confirms -------------------------------------------------------------

    def _fanout(self, fanout: Fanout, mono: float) -> None:
        receivers: set[str] = set()
        waiting: set[str] = set()
        broker = self.broker
        for batch in fanout.batches:
            state = broker.subscriber(batch.sid)
            if state is None:  # cannot happen while the broker and its lanes agree
                continue
            lane = state.lane
            # Block mode waits for room; whether the subscriber is connected, so that waiting for
            # it makes sense, the shell checks at once with fresh news (see `expire`).
            blocks = batch.block and batch.max_stall > 0 and not lane.stalled_out
            accepted = lane.offer(batch, mono + batch.max_stall if blocks else None)
            self._dirty[batch.sid] = lane
            if accepted:
                receivers.add(batch.sid)
            if accepted < batch.count:
                if lane.waiting is not None and batch.sid not in self._stall:
                    self._stall[batch.sid] = lane
                    waiting.add(batch.sid)
                    broker.stalled(batch.sid, mono)
                else:
                    broker.full(batch.sid, mono)
        for confirm in fanout.confirms:
            self._owed.append(_Owed(confirm, receivers & confirm.sids, waiting & confirm.sids))

    def _progress(self, sid: str) -> None:
        """`sid` acknowledged: its queue may take what waits, or tell a loss."""
        state = self.broker.subscriber(sid)
        if state is None:
            return
        lane = state.lane
        self._dirty[sid] = lane
        if self._stall.get(sid) is not lane:
            return
        if lane.resume():
            for owed in self._owed:
                if sid in owed.waiting:
                    owed.receivers.add(sid)
        if lane.waiting is None:
            self._settle(sid)

    def expire(self, mono: float) -> list[tuple[str, int]]:
        """Give up on waiting subscribers whose time ran out, or who may not hold publishers
        back: not connected (never yet, or no longer), or dead slow (a stall of theirs ran out
        since they last consumed anything). Returns their sids and the events dropped."""
        gone: list[tuple[str, int]] = []
        for sid, lane in list(self._stall.items()):
            if mono >= lane.due or not self.broker.may_wait(sid):
                gone.append((sid, lane.expire()))
                self._dirty[sid] = lane
                self._settle(sid)
        return gone

    def _settle(self, sid: str) -> None:
        """`sid` no longer holds a publish back."""
        del self._stall[sid]
        for owed in self._owed:
            owed.waiting.discard(sid)

    def _forget(self, sid: str) -> None:
        """`sid` is gone: nothing waits for it, nothing more is sent to it."""
        self._dirty.pop(sid, None)
        self._watch.pop(sid, None)
        if sid in self._stall:
            self._settle(sid)

    def flush(self) -> list[Action]:
        """What to send now: every lane's events and loss notices, then the confirmations of
        publishes that no longer wait."""
        actions: list[Action] = []
        if self._dirty:
            watch = self._watch
            for sid, lane in self._dirty.items():
                actions += lane.take(self.max_events, self.max_bytes)
                if lane.watched():
                    watch[sid] = lane
                else:
                    watch.pop(sid, None)
            self._dirty = {}
        while self._owed and not self._owed[0].waiting:
            owed = self._owed.popleft()
            actions.append(self.broker.confirmation(owed.confirm, len(owed.receivers)))
        return actions

    def abandon(self, sid: str) -> None:
        """The shell could not open a delivery socket for `sid`: forget it entirely."""
        self.broker.abandon(sid)
        self._forget(sid)

    def refused(self, sends: list[Send]) -> None:
        """The shell could not send these, the last sends of one subscriber: count them lost."""
        state = self.broker.subscriber(sends[0].sid)
        if state is not None:
            state.lane.refuse(sends)
            self._dirty[state.sid] = state.lane

    # --- time ----------------------------------------------------------------------------------

    def sweep(self, wall: float, mono: float) -> list[Action]:
        """Housekeeping: the broker removes dead and stalled subscribers."""
        return self.route(self.broker.sweep(mono, wall), mono)


def _size(peer: bytes, frames: list[bytes]) -> int:
    """The bytes a request holds in the backlog."""
    return len(peer) + sum(len(f) for f in frames)
