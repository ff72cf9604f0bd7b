"""The broker core: requests in, actions out. No sockets, no clock, no threads.

Composed of its state (es.brokerstate) and the parts that act on it: the publish path
(es.publishing), subscriptions (es.subscriptions) and reports (es.introspection), the way
naming.service wraps its registry. The broker itself decodes, dispatches, bills each request to
its connection (es.ratelimit), and sweeps out dead subscribers.

Invariants:
- `handle(peer, frames, now)` never raises for anything a client sends: bad frames and refused
  requests become ERR replies with a stable code, except an ACK, which is never answered, even
  when it is malformed. Only a bug in these modules can escape.
- Every subscriber has at least one subscription in the index, and the other way round; when
  its last subscription goes, it goes, and the shell is told to close its socket.
- Sequence numbers: every event meant for a subscriber takes the next number of that
  subscriber's stream (es.delivery), whether it is then delivered or dropped.
- All events of one publish carry the same server time (`now`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from clients.errors import ErrorCode, RemoteProtocolError, RequestError
from clients.wire import (
    Ack,
    Bye,
    Err,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    NumSub,
    Ok,
    Ping,
    PubItem,
    Publish,
    Request,
    Stats,
    Subscribe,
    SubscribeMatch,
    Unsubscribe,
    decode_request,
    encode,
    peek_command,
    peek_rid,
)
from es import __version__, meta
from es.actions import Action, Batch, Close, Fanout, Hold, Link, Open, Reply
from es.brokerstate import BrokerState
from es.checks import check_subject, refuse
from es.cluster.frames import RemoteEvent
from es.config import ServerConfig
from es.delivery import meta_event, meta_fanout
from es.durables import Durables
from es.grouping import Groups
from es.health import verdict
from es.index import SubscriptionIndex
from es.introspection import Introspection
from es.lane import Totals
from es.outcomes import Acked, Full, Handshaken, Linked, OpenFailed, Outcome, Refill, Stalled
from es.publishing import Publishing
from es.ratelimit import HISTORY_SCANNED, STORED, bill, compiling, received
from es.records import Storage, StoredEvent, StoredSubscriber
from es.replays import Replays
from es.retained import Retained
from es.state import SubscriberState, new_stream
from es.subscriptions import Subscriptions

__all__ = ["Action", "Batch", "Broker", "Close", "Fanout", "Open", "Reply", "SubscriberState"]

log = logging.getLogger("es.broker")

SWEEP_SUBSCRIPTIONS = 10_000
"""Subscriptions one sweep removes at most (with their subscribers): removing 10,000 patterns can
rebuild pattern sets for about 0.1 s, which everyone else waits for."""

REMOTE = b""
"""The peer of events from other nodes: no client connection has an empty routing id."""

# Evicted sids remembered, so a client's next heartbeat can be told why it was removed.
_EVICTIONS_KEPT = 1000


class Broker:
    """The event server's core: requests in, actions for the shell out (see the module)."""

    def __init__(
        self,
        config: ServerConfig,
        now: float,
        new_stream: Callable[[], int] = new_stream,
        store: Storage | None = None,
    ) -> None:
        self.config = config
        self.core = core = BrokerState(config, now, new_stream, store)
        self.durables = Durables(core)
        self.replays = Replays(core)
        self.groups = Groups(core)
        self.publishing = Publishing(core, self.durables, self.replays, self.groups)
        self.subscriptions = Subscriptions(core, self.durables, self.replays, self.groups)
        self.introspection = Introspection(core, self.groups)
        self.replays.load()  # again from the storage the shell restores from, if it has one
        lim = config.limits
        self._limits = {  # what a client needs to check before sending (in PING replies)
            "max_message_bytes": lim.max_message_bytes,
            "max_publish_bytes": lim.max_publish_bytes,
            "max_items_per_publish": lim.max_items_per_publish,
            "max_subjects_per_item": lim.max_subjects_per_item,
            "max_subject_bytes": lim.max_subject_bytes,
        }

    # --- what the shell sets and reads -----------------------------------------------------------

    def use(self, store: Storage) -> None:
        """Keep subscribers and retained events in `store` from now on (memory until then)."""
        self.core.store = store

    def limit_room(self, room: int) -> None:
        """Allow at most `room` subscribers: fewer than max_subscribers when the process cannot
        hold that many (es.capacity)."""
        self.core.room = room

    @property
    def index(self) -> SubscriptionIndex:
        """The subscription index (subjects and patterns of every subscriber)."""
        return self.core.index

    @property
    def totals(self) -> Totals:
        """What every subscriber's lane sent and dropped."""
        return self.core.totals

    @property
    def storage_errors(self) -> int:
        """Storage writes that failed, since the start."""
        return self.core.storage_errors

    @property
    def heartbeat_interval(self) -> float:
        """How often subscribers must send HEARTBEAT: a third of the liveness timeout."""
        return self.subscriptions.heartbeat_interval

    def stats(self, now: float) -> dict[str, Any]:
        """The STATS body."""
        return self.introspection.stats(now)

    # --- requests --------------------------------------------------------------------------------
    def handle(
        self,
        peer: bytes,
        frames: list[bytes],
        now: float,
        mono: float | None = None,
        owner: str | None = None,
    ) -> list[Action]:
        """Everything to do for one request from control peer `peer`.

        `now` is the wall clock (event times); `mono` a monotonic clock (liveness; default now);
        `owner` the client key the peer proved (with key files; SPEC 7.1), or None.
        """
        try:
            return self._handle(peer, frames, now, mono, owner)
        except Exception:  # a bug in the core must not take the server down
            log.exception("internal error handling a request")
            return [self.error(peer, 0, ErrorCode.INTERNAL, "internal server error")]

    def _handle(
        self, peer: bytes, frames: list[bytes], now: float, mono: float | None, owner: str | None
    ) -> list[Action]:
        core = self.core
        core.mono = now if mono is None else mono
        core.wall = now
        core.caller = owner
        if not core.rate.allow(peer, core.mono):  # refused unread: it costs what a PING does
            return self._over_budget(peer, frames)
        try:
            request = decode_request(frames, core.counts)
        except RemoteProtocolError as exc:
            core.rate.charge(peer, bill(frames, None) - 1, core.mono)  # garbage costs too
            if peek_command(frames) == "ACK":
                return []  # ACK is never answered, not even when malformed (SPEC 3)
            return [self.error(peer, exc.rid, exc.code, exc.message)]
        try:
            actions = self._dispatch(peer, request, now)
        except RequestError as exc:
            actions = [self.error(peer, request.rid, exc.code, exc.message)]
        actions = self._after_failures(actions)
        compiled, seen = core.index.take_compiled(), len(core.subjects)
        cost = bill(frames, request, compiled, seen, len(core.subscribers), core.scanned)
        cost += core.written * STORED + core.history_scanned * HISTORY_SCANNED
        core.scanned = core.written = core.history_scanned = 0
        core.rate.charge(peer, cost - 1, core.mono)
        return actions

    def _over_budget(self, peer: bytes, frames: list[bytes]) -> list[Action]:
        """A request from a connection over its budget, refused unread (SPEC 9)."""
        core = self.core
        core.rate_limited += 1
        core.rate.charge(peer, received(frames), core.mono)  # and receiving its frames
        if peek_command(frames) == "ACK":
            return []  # ACK is never answered, not even to refuse it
        rate = self.config.limits.max_request_rate
        message = f"over {rate:g} requests a second (units of work, SPEC 9)"
        return [self.error(peer, peek_rid(frames), ErrorCode.LIMIT_EXCEEDED, message)]

    def error(self, peer: bytes, rid: int, code: str, message: str) -> Reply:
        """An ERR reply to `peer` for request `rid`."""
        return Reply(peer, encode(Err(rid, code, message)))

    def _dispatch(self, peer: bytes, request: Request, now: float) -> list[Action]:
        subs, reports = self.subscriptions, self.introspection
        match request:
            case Publish():
                if self.core.hold_retained and any(item.retain for item in request.items):
                    self.publishing.check(request)  # refused now, or taken once the stream has it
                    return [Hold(peer, request, now)]
                return self._publish(peer, request, now)
            case Subscribe(rid, sid, endpoint, subjects, options):
                names = [check_subject(s, self.config.limits) for s in subjects]
                return subs.subscribe(peer, rid, sid, endpoint, options, subjects=names)
            case SubscribeMatch(rid, sid, endpoint, patterns, options):
                room = self.core.rate.headroom(peer, self.core.mono)  # a burst of debt at most
                limit = self.config.limits.max_pattern_bytes
                compiled = self.index.compile(patterns, limit, lambda c: compiling(c) <= room)
                return subs.subscribe(peer, rid, sid, endpoint, options, patterns=compiled)
            case Unsubscribe(rid, sid, names):
                return subs.unsubscribe(peer, rid, sid, list(names))
            case Ack(_, sid, seq):
                return subs.ack(sid, seq) if self.core.owned(sid) else []
            case ListSubjects(rid, pattern):
                return [Reply(peer, encode(Ok(rid, reports.subjects_seen(pattern))))]
            case NumSub(rid, subjects):
                return [Reply(peer, encode(Ok(rid, reports.numsub(subjects))))]
            case ListSubscribers(rid, prefix):
                return [Reply(peer, encode(Ok(rid, reports.list_subscribers(prefix))))]
            case Heartbeat(rid, sid):
                return [Reply(peer, encode(Ok(rid, subs.heartbeat(sid))))]
            case Ping(rid):
                body = {"server": "es", "version": __version__, "time": now, "limits": self._limits}
                return [Reply(peer, encode(Ok(rid, body)))]
            case Stats(rid):
                return [Reply(peer, encode(Ok(rid, reports.stats(now))))]
        raise refuse(ErrorCode.UNKNOWN_COMMAND, type(request).__name__)  # pragma: no cover

    def _publish(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        actions = self.publishing.publish(peer, request, now)
        if self.core.forward is not None:  # taken: the cluster's other nodes get it too
            self.core.forward.append((request.items, now))
        return actions

    def publish_held(self, hold: Hold, mono: float) -> list[Action]:
        """A publish that waited for the cluster's stream (es.actions.Hold), which has taken its
        retained events: taken here now, at the time it was first handled; refused if it no
        longer fits (another publish took the room meanwhile)."""
        core = self.core
        core.mono, core.wall = mono, hold.time
        try:
            actions = self._publish(hold.peer, hold.request, hold.time)
        except RequestError as exc:
            actions = [self.error(hold.peer, hold.request.rid, exc.code, exc.message)]
        except Exception:  # a bug in the core must not take the server down
            log.exception("internal error handling a request")
            actions = [self.error(hold.peer, hold.request.rid, ErrorCode.INTERNAL, "internal")]
        return self._after_failures(actions)

    def remote(
        self, runs: list[tuple[float, tuple[PubItem, ...]]], mono: float, wait: bool = True
    ) -> list[Action]:
        """Events other nodes of the cluster published (es.cluster), each run (its origin's
        time, its events) fanned out here as a local client's PUB would be, but never answered
        and never forwarded again; without `wait`, never waiting for room (Fanout.waits). A run
        this node refuses (over its own limits, or a reserved subject) is counted in
        `remote_refused`, its events one by one."""
        core = self.core
        core.mono = mono
        actions: list[Action] = []
        for now, items in runs:
            core.wall = now
            plain: list[PubItem] = []
            for item in items:
                if meta.is_reserved(item.subjects[0]):  # another node's meta-event: as ours
                    actions += meta_fanout(core, item.subjects[0], item.payload)
                    core.remote_in += 1
                else:
                    plain.append(item)
            if not plain:
                continue
            try:
                actions += self.publishing.fan(REMOTE, Publish(0, False, tuple(plain)), now)
                core.remote_in += len(plain)
            except RequestError:
                core.remote_refused += len(plain)
        if not wait:
            actions = [replace(a, waits=False) if isinstance(a, Fanout) else a for a in actions]
        return self._after_failures(actions)

    def announce(self, news: list[tuple[str, dict[str, Any]]], now: float) -> list[Action]:
        """Meta-events this node tells on behalf of another (a lost node of its cluster)."""
        self.core.wall = now
        actions: list[Action] = []
        for subject, body in news:
            actions += meta_event(self.core, subject, body)
        return actions

    def keep_retained(
        self, kept: list[tuple[RemoteEvent, float | None]], now: float, mono: float
    ) -> None:
        """Retained events from the cluster's stream (SPEC 15.6): each kept unless this node
        holds a newer one of its subject, cleared by an empty payload, or over this node's
        bounds (counted in `remote_refused`). Its lifetime counts from its publish."""
        core = self.core
        for event, ttl in kept:
            held = core.retained.get(event.subject, mono)
            if held is not None and held.time > event.time:
                continue
            expires = None if ttl is None else mono + ttl - max(0.0, now - event.time)
            if expires is not None and expires <= mono:
                continue
            if not core.retained.fits([(event.subject, len(event.payload))]):
                core.remote_refused += 1
                continue
            retained = Retained(event.subject, event.fmt, event.payload, event.time, expires)
            core.retained.put(retained)

    def resume_all(self) -> None:
        """Events from other nodes may have been lost (a cluster node's backbone had a gap):
        every subscriber's next event says `resumed`, as after a restart (SPEC 15.5)."""
        for state in self.core.subscribers.values():
            state.resumed = True

    # --- what the shell and the flow saw ----------------------------------------------------------

    def subscriber(self, sid: str) -> SubscriberState | None:
        """What is known of `sid`, if it is subscribed."""
        return self.core.subscribers.get(sid)

    def hear(self, outcomes: Iterable[Outcome], mono: float) -> list[Action]:
        """What the shell and the flow saw happen (es.outcomes), at monotonic time `mono`; the
        actions that follow, for the flow and then the shell."""
        self.core.mono = mono
        actions: list[Action] = []
        for outcome in outcomes:
            state = self.core.subscribers.get(outcome.sid)
            if state is not None:
                actions += self._heard(outcome, state, mono)
        return self._after_failures(actions)

    def _after_failures(self, actions: list[Action]) -> list[Action]:
        """`actions`, after the answers a failed commit of the group left (es.durables)."""
        core = self.core
        if not core.failed:
            return actions
        failed, core.failed = core.failed, []
        return [*failed, *actions]

    def _heard(self, outcome: Outcome, state: SubscriberState, mono: float) -> list[Action]:
        match outcome:
            case Linked(sid, up):
                back = up and state.health.linked is False
                state.health.link(up, mono)
                return [Link(sid, up, back)]
            case Handshaken(_, ok):  # refused: it goes at the next sweep; unexplained: a few
                state.health.handshake(ok)
            case Acked(sid, frames):
                return self._acked(sid, frames)
            case Stalled():
                state.stalls += 1
                state.health.full(mono)
            case Full():
                state.health.full(mono)
            case OpenFailed(sid, peer, rid, code, message):
                return [*self._abandon(sid), self.error(peer, rid, code, message)]
            case Refill():  # pragma: no branch (the last kind)
                if state.catchup is not None:
                    return self.replays.refill(state)
                return self.durables.refill(state)
        return []

    def _acked(self, sid: str, frames: list[bytes]) -> list[Action]:
        """An ACK that came back on `sid`'s delivery connection (SPEC 3.7); anything else that
        comes that way, or an ACK for another sid, is ignored."""
        try:
            request = decode_request(frames)
        except RemoteProtocolError:
            return []
        if not isinstance(request, Ack) or request.sid != sid:
            return []
        return self.subscriptions.ack(sid, request.seq)

    def _abandon(self, sid: str) -> list[Action]:
        """`sid`'s socket could not be made: forget the subscriber entirely, and have the flow
        forget its lane."""
        core = self.core
        state = core.subscribers.get(sid)
        if state is not None and state.durable is not None:  # its log stays: it is away
            return self.durables.detach(state, "unreachable")
        core.subscribers.pop(sid, None)
        core.index.drop(sid)
        core.write_quietly(core.store.delete_subscriber, sid)
        if state is not None and state.group is not None:  # what it held goes to the others
            return [Close(sid), *self.groups.leave(state)]
        return [Close(sid)]

    # --- time, restarts, the end -----------------------------------------------------------------

    def sweep(self, mono: float, now: float | None = None) -> list[Action]:
        """Remove every subscriber that is dead, unreachable or stalled too long: a Close for
        each, and the meta-events that say so (stamped `now`, the wall clock). Removing
        subscriptions has a cost (pattern sets rebuilt), so one sweep removes subscribers until
        SWEEP_SUBSCRIPTIONS of them are gone; the others go at the next sweeps."""
        core, cfg = self.core, self.config
        if now is not None:
            core.wall = now
        core.rate.prune(mono)
        expired = core.retained.expire(mono)
        if expired:
            core.write_quietly(core.store.write_retained, [(key, None) for key in expired])
        actions: list[Action] = []
        budget = SWEEP_SUBSCRIPTIONS
        self.durables.expire(core.wall, mono)
        self.replays.expire(core.wall, mono)
        for sid, state in list(core.subscribers.items()):
            if budget <= 0:
                break
            if state.detached:
                continue
            reason = verdict(state.health, mono, cfg.liveness, cfg.evict_stalled)
            if reason is not None and state.durable is not None:
                actions += self.durables.detach(state, reason)
            elif reason is not None:
                budget -= max(1, core.index.count(sid))
                core.write_quietly(core.store.delete_subscriber, sid)
                actions.append(self._evict(sid, reason))
                actions += self.subscriptions.departed(sid, state.name, reason)
                if state.group is not None:  # what it held goes to the others
                    actions += self.groups.leave(state)
        return self._after_failures(actions)

    def _evict(self, sid: str, reason: str) -> Close:
        core = self.core
        core.subscribers.pop(sid, None)
        core.index.drop(sid)
        core.evicted[sid] = reason
        while len(core.evicted) > _EVICTIONS_KEPT:
            core.evicted.popitem(last=False)
        core.evictions += 1
        return Close(sid, reason)

    def restore(
        self,
        subscribers: Iterable[StoredSubscriber],
        retained: Iterable[StoredEvent],
        mono: float,
        now: float,
    ) -> list[Action]:
        """Take back what storage kept after a restart: every subscriber with its subscriptions
        (on a new stream, its first event marked resumed), and the retained events still alive.
        Returns the Opens for the subscribers' delivery sockets."""
        self.core.mono, self.core.wall = mono, now
        self.replays.load()
        actions = self.subscriptions.restore(subscribers)
        kept = list(self.core.log.durables())
        actions += self.durables.restore(kept)
        self.groups.restore(kept)
        self.subscriptions.restore_retained(retained, now)
        return actions

    def commit(self, everything: bool = False) -> list[Action]:
        """Commit what durable subscribers' logs took since the last commit (es.durables): the
        shell calls this before it sends anything, and with `everything` now and then (what
        was only forgotten can wait). Returns what a failure leads to."""
        return self.durables.commit(everything)

    def holding(self) -> set[str]:
        """The subscribers whose events wait unsent: durable ones, while their logs cannot be
        written."""
        core = self.core
        return set() if core.healthy else core.durable_sids

    def goodbyes(self) -> list[tuple[str, list[bytes]]]:
        """A BYE for every subscriber, to send after its last events when the server stops
        gracefully (SPEC 5.2): it looks for a server again at once."""
        subscribers = self.core.subscribers
        return [(sid, encode(Bye(sid, state.stream))) for sid, state in subscribers.items()]
