"""The flow of requests and events through the server: order, gathering, stalls, the backlog.

Pure: no sockets, no clock (times are passed in), and no calls into the broker. The shell
(es.server) asks it whether a request it read may be handled now (`admit`, `next_ready`); the
broker (es.broker) decides what the request means; the flow takes the broker's actions
(`route`) into each subscriber's lane (es.lane), which keeps its queue and its losses, and hands
the shell what to send. What the broker must hear of (a stall began, a queue was full) comes out
of `route` as outcomes (es.outcomes), which the shell passes to `Broker.hear`.

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
- A connection on hold (`hold`: its publish waits for a write elsewhere, the cluster's stream of
  retained events) has its later requests kept aside, in order, until `release`, while other
  connections go on; STATS, introspection, HEARTBEAT and ACK are still handled at once. What is
  kept aside has bounds of its own, the backlog's, past which the shell stops reading.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from clients.wire import Ok, encode, peek_command
from es.actions import (
    Action,
    Batch,
    Close,
    Confirm,
    Fanout,
    Link,
    Open,
    Progress,
    Refilled,
    Refuse,
    Reply,
    Send,
)
from es.lane import MAX_BYTES, MAX_EVENTS, Lane
from es.outcomes import Full, Outcome, Refill, Stalled

__all__ = ["AT_ONCE", "BACKLOG", "BACKLOG_BYTES", "Flow", "Inbound"]

# Requests held while a publish is stalled; past either bound the shell stops reading (and
# ZeroMQ's high-water marks push back on the clients).
BACKLOG = 256
BACKLOG_BYTES = 32 << 20

# Requests that may jump ahead of a stalled publish: STATS and the introspection requests only
# read, and HEARTBEAT and ACK only feed liveness and statistics. Liveness must not wait behind a
# stall, or every subscriber of a stalled server would look dead. (PING must wait its turn: its
# reply proves that every earlier publish was handed on.)
AT_ONCE = frozenset({"STATS", "SUBJECTS", "NUMSUB", "SUBSCRIBERS", "HEARTBEAT", "ACK"})


class Inbound(NamedTuple):
    """A request as read: the control peer, its frames, the client key its connection proved."""

    peer: bytes
    frames: list[bytes]
    owner: str | None


@dataclass
class _Owed:
    """A confirmed publish not answered yet: who got events, who still waits for room."""

    confirm: Confirm
    receivers: set[str] = field(default_factory=set)
    waiting: set[str] = field(default_factory=set)
    refused: list[bytes] | None = None  # the ERR it gets instead (es.durables: a failed commit)


class Flow:
    """Requests admitted in order, the broker's actions into lanes, sends out (see the module)."""

    def __init__(self, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lanes: dict[str, Lane] = {}  # every subscriber's lane, from the broker's Opens
        self._stall: dict[str, Lane] = {}  # lanes whose publish waits for room: a stall is on
        self._owed: deque[_Owed] = deque()
        self._dirty: dict[str, Lane] = {}  # lanes with something to send or to tell
        self._watch: dict[str, Lane] = {}  # lanes whose ACKs the shell reads as soon as they come
        self._backlog: deque[Inbound] = deque()
        self._backlog_bytes = 0
        self._held: dict[bytes, deque[Inbound]] = {}  # connections on hold, and what they sent
        self._held_count = 0
        self._held_bytes = 0

    # --- what the shell asks -------------------------------------------------------------------

    @property
    def stalled(self) -> bool:
        """A publish waits for room in some block-mode subscriber's queue."""
        return bool(self._stall)

    @property
    def busy(self) -> bool:
        """Requests wait in the backlog, or a stall is on."""
        return bool(self._stall or self._backlog)

    @property
    def holding(self) -> bool:
        """Some connection is on hold (`hold`)."""
        return bool(self._held)

    def reading(self) -> bool:
        """Whether the shell may read more requests (the backlog has room, and so has what
        connections on hold sent)."""
        return (
            len(self._backlog) < BACKLOG
            and self._backlog_bytes < BACKLOG_BYTES
            and self._held_count < BACKLOG
            and self._held_bytes < BACKLOG_BYTES
        )

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

    def admit(self, inbound: Inbound) -> bool:
        """A request read from the control socket: True if it is to be handled now; else it
        waits in the backlog (a stall is on, or others wait before it), or aside with its
        connection's others while that is on hold."""
        held = self._held and inbound.peer in self._held
        if not (self._stall or self._backlog or held):
            return True
        if peek_command(inbound.frames) in AT_ONCE:
            return True
        if held:
            self._put_aside(inbound)
            return False
        self._backlog.append(inbound)
        self._backlog_bytes += _size(inbound)
        return False

    def next_ready(self) -> Inbound | None:
        """The next request of the backlog, to handle now, while no stall is on."""
        if not self._backlog or self._stall:
            return None
        inbound = self._backlog.popleft()
        self._backlog_bytes -= _size(inbound)
        return inbound

    def hold(self, peer: bytes) -> None:
        """Keep `peer`'s later requests aside, in order, until `release(peer)`; those it has in
        the backlog already go aside first."""
        if peer in self._held:
            return
        self._held[peer] = deque()
        if any(inbound.peer == peer for inbound in self._backlog):
            kept: deque[Inbound] = deque()
            for inbound in self._backlog:
                if inbound.peer == peer:
                    self._backlog_bytes -= _size(inbound)
                    self._put_aside(inbound)
                else:
                    kept.append(inbound)
            self._backlog = kept

    def release(self, peer: bytes) -> None:
        """`peer` is on hold no more: what it sent meanwhile goes first in the backlog."""
        aside = self._held.pop(peer, None)
        if not aside:
            return
        size = sum(map(_size, aside))
        self._held_count -= len(aside)
        self._held_bytes -= size
        self._backlog.extendleft(reversed(aside))
        self._backlog_bytes += size

    def _put_aside(self, inbound: Inbound) -> None:
        self._held[inbound.peer].append(inbound)
        self._held_count += 1
        self._held_bytes += _size(inbound)

    def flushes_before(self, inbound: Inbound) -> bool:
        """Whether what was gathered must go out before `inbound` is handled: anything but a
        publish first sends it, so that its reply follows every earlier publish's events."""
        return bool(self._dirty or self._owed) and peek_command(inbound.frames) != "PUB"

    def route(self, actions: list[Action], mono: float) -> list[Action | Outcome]:
        """Take the broker's fan-outs, progress and link news into the lanes; the rest is for the
        shell, with the outcomes the broker must hear."""
        out: list[Action | Outcome] = []
        for action in actions:
            match action:
                case Fanout():
                    out += self._fanout(action, mono)
                case Progress(sid):
                    out += self._progress(sid)
                case Link(sid, up, back):
                    out += self._link(sid, up, back)
                case Refilled(sid, batch, through):
                    out += self._refilled(sid, batch, through)
                case Refuse(peer, rid, frames):
                    out += self._refuse(peer, rid, frames)
                case Open(sid, lane=lane) if lane is not None:
                    self._lanes[sid] = lane
                    out.append(action)
                    out += _refill(lane)
                case Close(sid, detach=True):
                    self._detach(sid)
                    out.append(action)
                case Close(sid):
                    self._forget(sid)
                    out.append(action)
                case _:
                    out.append(action)
        return out

    def _link(self, sid: str, up: bool, back: bool) -> list[Outcome]:
        """The connection to `sid`'s inbox came up or went down; back up, what was in flight is
        sent again."""
        lane = self._lanes.get(sid)
        if lane is None:
            return []
        lane.linked = up
        if back:
            lane.reconnected()
            return self._progress(sid)
        return []

    def _refilled(self, sid: str, batch: Batch | None, through: int) -> list[Outcome]:
        """Events of a durable subscriber taken back from its log; more if room is left."""
        lane = self._lanes.get(sid)
        if lane is None:
            return []
        lane.refill(batch, through)
        self._dirty[sid] = lane
        return _refill(lane)

    def _refuse(self, peer: bytes, rid: int, frames: list[bytes]) -> list[Action]:
        """Publish `rid` of `peer` failed after all: its confirmation becomes `frames`; with no
        confirmation owed, `frames` go now."""
        for owed in self._owed:
            if owed.confirm.peer == peer and owed.confirm.rid == rid:
                owed.refused = frames
                return []
        return [Reply(peer, frames)]

    def _detach(self, sid: str) -> None:
        """A durable subscriber went away: its lane stays, spilling everything to its log."""
        lane = self._lanes.get(sid)
        if lane is None:
            return
        lane.detach()  # never in a stall: a durable subscriber's lane spills, never waits
        self._dirty.pop(sid, None)
        self._watch.pop(sid, None)

    # --- fan-out, stalls, confirms -------------------------------------------------------------

    def _fanout(self, fanout: Fanout, mono: float) -> list[Outcome]:
        """Offer each batch to its lane; a block-mode batch with no room starts a stall. Returns
        what the broker must hear: stalls begun, queues found full."""
        told: list[Outcome] = []
        receivers: set[str] = set()
        waiting: set[str] = set()
        for batch in fanout.batches:
            lane = self._lanes.get(batch.sid)
            if lane is None:  # cannot happen while the broker and the lanes agree
                continue
            # Block mode waits for room; whether the subscriber is connected, so that waiting for
            # it makes sense, the shell checks at once with fresh news (see `expire`).
            blocks = fanout.waits and batch.block and batch.max_stall > 0 and not lane.stalled_out
            accepted = lane.offer(batch, mono + batch.max_stall if blocks else None)
            self._dirty[batch.sid] = lane
            if accepted:
                receivers.add(batch.sid)
            if accepted < batch.count:
                if lane.waiting is not None and batch.sid not in self._stall:
                    self._stall[batch.sid] = lane
                    waiting.add(batch.sid)
                    told.append(Stalled(batch.sid))
                else:
                    told.append(Full(batch.sid))
        for confirm in fanout.confirms:
            self._owed.append(_Owed(confirm, receivers & confirm.sids, waiting & confirm.sids))
        return told

    def _progress(self, sid: str) -> list[Outcome]:
        """`sid` acknowledged: its queue may take what waits or what its log keeps, or tell a
        loss."""
        lane = self._lanes.get(sid)
        if lane is None:
            return []
        self._dirty[sid] = lane
        if self._stall.get(sid) is not lane:
            return _refill(lane)
        if lane.resume():
            for owed in self._owed:
                if sid in owed.waiting:
                    owed.receivers.add(sid)
        if lane.waiting is None:
            self._settle(sid)
        return []

    def expire(self, mono: float) -> list[tuple[str, int]]:
        """Give up on waiting subscribers whose time ran out, or who may not hold publishers
        back: not connected (never yet, or no longer), or dead slow (a stall of theirs ran out
        since they last consumed anything). Returns their sids and the events dropped."""
        gone: list[tuple[str, int]] = []
        for sid, lane in list(self._stall.items()):
            if mono >= lane.due or not lane.may_wait:
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
        self._lanes.pop(sid, None)
        self._dirty.pop(sid, None)
        self._watch.pop(sid, None)
        if sid in self._stall:
            self._settle(sid)

    def flush(self, hold: frozenset[str] | set[str] = frozenset()) -> list[Action]:
        """What to send now: every lane's events and loss notices (but those of the lanes in
        `hold`, which wait), then the confirmations of publishes that no longer wait."""
        actions: list[Action] = []
        if self._dirty:
            watch = self._watch
            held: dict[str, Lane] = {}
            for sid, lane in self._dirty.items():
                if hold and sid in hold:
                    held[sid] = lane
                    continue
                actions += lane.take(self.max_events, self.max_bytes)
                if lane.watched():
                    watch[sid] = lane
                else:
                    watch.pop(sid, None)
            self._dirty = held
        while self._owed and not self._owed[0].waiting:
            owed = self._owed.popleft()
            if owed.refused is not None:
                actions.append(Reply(owed.confirm.peer, owed.refused))
                continue
            # Subscribers that took at least one event, and each queue group reached.
            body = {"receivers": len(owed.receivers) + owed.confirm.groups}
            actions.append(Reply(owed.confirm.peer, encode(Ok(owed.confirm.rid, body))))
        return actions

    def refused(self, sends: list[Send]) -> None:
        """The shell could not send these, the last sends of one subscriber: count them lost."""
        lane = self._lanes.get(sends[0].sid)
        if lane is not None:
            lane.refuse(sends)
            self._dirty[lane.sid] = lane


def _refill(lane: Lane) -> list[Outcome]:
    """A Refill for the broker when `lane` has room for events its log keeps."""
    return [Refill(lane.sid)] if lane.wants_refill() else []


def _size(inbound: Inbound) -> int:
    """The bytes a request holds in the backlog."""
    return len(inbound.peer) + sum(len(f) for f in inbound.frames)
