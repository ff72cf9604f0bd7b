"""The broker core: requests in, actions out. No sockets, no clock, no threads.

Invariants:
- `handle(peer, frames, now)` never raises for anything a client sends: bad frames and refused
  requests become ERR replies with a stable code, except an ACK, which is never answered, even
  when it is malformed. Only a bug in this module can escape.
- Every subscriber in `_subscribers` has at least one subscription in the index, and the other
  way round; when its last subscription goes, it goes, and the shell is told to close its socket.
- Sequence numbers: every event meant for a subscriber takes the next number of that subscriber's
  stream (its es.lane.Lane), whether it is then delivered or dropped. What happens to it next,
  queued, sent, dropped, and how the loss is told, is the lane's and the flow's (es.flow).
- All events of one publish carry the same server time (`now`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from clients.errors import (
    ErrorCode,
    RemoteProtocolError,
    RequestError,
)
from clients.wire import (
    Ack,
    Bye,
    Counts,
    Err,
    Heartbeat,
    ListSubjects,
    ListSubscribers,
    NumSub,
    Ok,
    Options,
    Ping,
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
    public_id,
)
from es import __version__, meta
from es.actions import (
    Action,
    Batch,
    Close,
    Confirm,
    Fanout,
    Open,
    Progress,
    Reply,
)
from es.checks import check_endpoint, check_sid, check_subject, queue_policy, refuse
from es.config import ServerConfig
from es.daemon.patterns import Pattern, compile_pattern, fold
from es.health import Health, verdict
from es.index import SubscriptionIndex
from es.lane import Lane, Totals
from es.patternsets import PatternSets
from es.publishing import Publishing
from es.ratelimit import STORED, RateLimiter, bill, compiling, received
from es.records import MemoryStorage, Storage, StoredEvent, StoredSubscriber
from es.retained import Retained, RetainedStore
from es.state import SubscriberState, new_stream

__all__ = ["Action", "Batch", "Broker", "Close", "Fanout", "Open", "Reply", "SubscriberState"]

_AT_ONCE = frozenset({"STATS", "SUBJECTS", "NUMSUB", "SUBSCRIBERS", "HEARTBEAT", "ACK"})

SWEEP_SUBSCRIPTIONS = 10_000
"""Subscriptions one sweep removes at most (with their subscribers): removing 10,000 patterns can
rebuild pattern sets for about 0.1 s, which everyone else waits for."""

# Evicted sids remembered, so a client's next heartbeat can be told why it was removed.
_EVICTIONS_KEPT = 1000


class Broker(Publishing):
    """The event server's core: requests in, actions for the shell out (see the module)."""

    def __init__(
        self,
        config: ServerConfig,
        now: float,
        new_stream: Callable[[], int] = new_stream,
        store: Storage | None = None,
    ) -> None:
        self.config = config
        self.store: Storage = store if store is not None else MemoryStorage()
        self._caller: str | None = None  # the client key of the request being handled
        self._scanned = 0  # retained events the request being handled matched patterns against
        self._written = 0  # subscriptions it wrote to storage
        self.storage_errors = 0
        self.index = SubscriptionIndex(config.cache_size)
        self._subscribers: dict[str, SubscriberState] = {}
        self._evicted: OrderedDict[str, str] = OrderedDict()  # sid -> reason, to tell its client
        self._new_stream = new_stream
        self._started = now
        self._mono = now
        lim = config.limits
        self._limits = {  # what a client needs to check before sending (in PING replies)
            "max_message_bytes": lim.max_message_bytes,
            "max_publish_bytes": lim.max_publish_bytes,
            "max_items_per_publish": lim.max_items_per_publish,
            "max_subjects_per_item": lim.max_subjects_per_item,
            "max_subject_bytes": lim.max_subject_bytes,
        }
        self._rate = RateLimiter(lim.max_request_rate)
        # Subscribers allowed: max_subscribers, or fewer when the shell finds the process cannot
        # hold that many (es.capacity).
        self.room = lim.max_subscribers
        per_item = lim.max_subjects_per_item  # arrays over these are refused unread (SPEC 9)
        self._counts = Counts(lim.max_items_per_publish, lim.max_subscriptions, per_item)
        self._wall = now  # the wall clock at the last request: the time of meta-events
        self._publishers: OrderedDict[bytes, None] = OrderedDict()
        self._subjects: OrderedDict[str, list[Any]] = OrderedDict()  # folded -> [as sent, n, last]
        self._retained = RetainedStore(lim.max_retained, lim.max_retained_bytes)
        self.rate_limited = 0
        self.published = 0
        self.events_in = 0
        self.totals = Totals()  # what every subscriber's lane sent and dropped
        self.evictions = 0

    # --- entry points used by the shell ----------------------------------------------------------

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
        self._mono = now if mono is None else mono
        self._wall = now
        self._caller = owner
        if not self._rate.allow(peer, self._mono):  # refused unread: it costs what a PING does
            self.rate_limited += 1
            self._rate.charge(peer, received(frames), self._mono)  # and receiving its frames
            if peek_command(frames) == "ACK":
                return []  # ACK is never answered, not even to refuse it
            rate = self.config.limits.max_request_rate
            message = f"over {rate:g} requests a second (units of work, SPEC 9)"
            return [self.error(peer, peek_rid(frames), ErrorCode.LIMIT_EXCEEDED, message)]
        try:
            request = decode_request(frames, self._counts)
        except RemoteProtocolError as exc:
            self._rate.charge(peer, bill(frames, None) - 1, self._mono)  # garbage costs too
            if peek_command(frames) == "ACK":
                return []  # ACK is never answered, not even when malformed (SPEC 3)
            return [self.error(peer, exc.rid, exc.code, exc.message)]
        try:
            actions = self._dispatch(peer, request, now)
        except RequestError as exc:
            actions = [self.error(peer, request.rid, exc.code, exc.message)]
        compiled, seen = self.index.take_compiled(), len(self._subjects)
        cost = bill(frames, request, compiled, seen, len(self._subscribers), self._scanned)
        cost += self._written * STORED
        self._scanned = self._written = 0
        self._rate.charge(peer, cost - 1, self._mono)
        return actions

    def error(self, peer: bytes, rid: int, code: str, message: str) -> Reply:
        """An ERR reply to `peer` for request `rid`."""
        return Reply(peer, encode(Err(rid, code, message)))

    @property
    def heartbeat_interval(self) -> float:
        """How often subscribers must send HEARTBEAT: a third of the liveness timeout."""
        return self.config.liveness / 3

    def subscriber(self, sid: str) -> SubscriberState | None:
        """What is known of `sid`, if it is subscribed."""
        return self._subscribers.get(sid)

    def abandon(self, sid: str) -> None:
        """The shell could not open a socket for `sid`: forget the subscriber entirely."""
        self._subscribers.pop(sid, None)
        self.index.drop(sid)
        self._write_quietly(self.store.delete_subscriber, sid)

    def answers_at_once(self, frames: list[bytes]) -> bool:
        """Whether a request may jump ahead of a stalled publish: STATS and the introspection
        requests only read, and HEARTBEAT and ACK only feed liveness and statistics. Liveness
        must not wait behind a stall, or every subscriber of a stalled server would look dead."""
        return peek_command(frames) in _AT_ONCE

    def may_wait(self, sid: str) -> bool:
        """Whether a publish may wait for room in `sid`'s queue: it is connected now (see
        `linked`), and its last stall did not run out without progress since."""
        state = self._subscribers.get(sid)
        return state is not None and not state.lane.stalled_out and state.health.linked is True

    def stalled(self, sid: str, mono: float) -> None:
        """A publish began waiting for room in `sid`'s queue."""
        state = self._subscribers.get(sid)
        if state is not None:
            state.stalls += 1
            state.health.full(mono)

    def full(self, sid: str, mono: float) -> None:
        """`sid`'s queue had no room for an event (it was dropped, or it waits)."""
        state = self._subscribers.get(sid)
        if state is not None:
            state.health.full(mono)

    def link(self, sid: str, up: bool, mono: float) -> bool:
        """The shell's socket monitor saw the subscriber's connection come up or go down.
        True when it came back up after it was lost."""
        state = self._subscribers.get(sid)
        if state is None:
            return False
        back = up and state.health.linked is False
        state.health.link(up, mono)
        return back

    def acknowledged(self, sid: str, frames: list[bytes], mono: float) -> list[Action]:
        """An ACK that came back on `sid`'s delivery connection (SPEC 3.7); anything else that
        comes that way, or an ACK for another sid, is ignored."""
        self._mono = mono
        try:
            request = decode_request(frames)
        except RemoteProtocolError:
            return []
        if not isinstance(request, Ack) or request.sid != sid:
            return []
        return self._ack(sid, request.seq)

    def handshake(self, sid: str, ok: bool | None) -> None:
        """What the socket monitor saw of a handshake with the subscriber's inbox: succeeded
        (True), refused our key or our security (False: it goes at the next sweep), or failed
        with no reason given (None: it goes after a few of those in a row)."""
        state = self._subscribers.get(sid)
        if state is not None:
            state.health.handshake(ok)

    def linked(self, sid: str) -> bool:
        """Whether the server's connection to the subscriber is up, as far as it knows."""
        state = self._subscribers.get(sid)
        return state is not None and state.health.linked is True

    def sweep(self, mono: float, now: float | None = None) -> list[Action]:
        """Remove every subscriber that is dead, unreachable or stalled too long: a Close for
        each, and the meta-events that say so (stamped `now`, the wall clock). Removing
        subscriptions has a cost (pattern sets rebuilt), so one sweep removes subscribers until
        SWEEP_SUBSCRIPTIONS of them are gone; the others go at the next sweeps."""
        if now is not None:
            self._wall = now
        actions: list[Action] = []
        cfg = self.config
        self._rate.prune(mono)
        expired = self._retained.expire(mono)
        if expired:
            self._write_quietly(self.store.write_retained, [(key, None) for key in expired])
        budget = SWEEP_SUBSCRIPTIONS
        for sid, state in list(self._subscribers.items()):
            if budget <= 0:
                break
            reason = verdict(state.health, mono, cfg.liveness, cfg.evict_stalled)
            if reason is not None:
                budget -= max(1, self.index.count(sid))
                self._write_quietly(self.store.delete_subscriber, sid)
                actions.append(self._evict(sid, reason))
                actions += self._departed(sid, state.name, reason)
        return actions

    def _departed(self, sid: str, name: str | None, reason: str) -> list[Action]:
        """The meta-events for a subscriber that is gone, and for its service if it named one."""
        shown = public_id(sid)
        actions = self._meta(meta.SUBSCRIBER_LEFT, meta.left(shown, reason))
        if name is not None:
            actions += self._meta(meta.SERVICE_GONE, {"name": name, "id": shown, "reason": reason})
        return actions

    def goodbyes(self) -> list[tuple[str, list[bytes]]]:
        """A BYE for every subscriber, to send after its last events when the server stops
        gracefully (SPEC 5.2): it looks for a server again at once."""
        return [(sid, encode(Bye(sid, state.stream))) for sid, state in self._subscribers.items()]

    def eviction(self, sid: str) -> str | None:
        """Why `sid` was removed, while that is still remembered."""
        return self._evicted.get(sid)

    def _evict(self, sid: str, reason: str) -> Close:
        self._subscribers.pop(sid, None)
        self.index.drop(sid)
        self._evicted[sid] = reason
        while len(self._evicted) > _EVICTIONS_KEPT:
            self._evicted.popitem(last=False)
        self.evictions += 1
        return Close(sid)

    def confirmation(self, confirm: Confirm, receivers: int) -> Reply:
        """The reply to a confirmed publish: how many subscribers got at least one event."""
        return Reply(confirm.peer, encode(Ok(confirm.rid, {"receivers": receivers})))

    # --- requests --------------------------------------------------------------------------------

    def _dispatch(self, peer: bytes, request: Request, now: float) -> list[Action]:
        match request:
            case Publish():
                return self._publish(peer, request, now)
            case Subscribe(rid, sid, endpoint, subjects, options):
                names = [check_subject(s, self.config.limits) for s in subjects]
                return self._subscribe(peer, rid, sid, endpoint, options, now, subjects=names)
            case SubscribeMatch(rid, sid, endpoint, patterns, options):
                room = self._rate.headroom(peer, self._mono)  # at most a burst of debt (SPEC 9)
                limit = self.config.limits.max_pattern_bytes
                compiled = self.index.compile(patterns, limit, lambda c: compiling(c) <= room)
                return self._subscribe(peer, rid, sid, endpoint, options, now, patterns=compiled)
            case Unsubscribe(rid, sid, names):
                return self._unsubscribe(peer, rid, sid, list(names))
            case Ack(_, sid, seq):
                return self._ack(sid, seq) if self._owned(sid) else []
            case ListSubjects(rid, pattern):
                return [Reply(peer, encode(Ok(rid, self._subjects_seen(pattern))))]
            case NumSub(rid, subjects):
                return [Reply(peer, encode(Ok(rid, self._numsub(subjects))))]
            case ListSubscribers(rid, prefix):
                return [Reply(peer, encode(Ok(rid, self._list_subscribers(prefix))))]
            case Heartbeat(rid, sid):
                return [Reply(peer, encode(Ok(rid, self._heartbeat(sid))))]
            case Ping(rid):
                body = {"server": "es", "version": __version__, "time": now, "limits": self._limits}
                return [Reply(peer, encode(Ok(rid, body)))]
            case Stats(rid):
                return [Reply(peer, encode(Ok(rid, self.stats(now))))]
        raise refuse(ErrorCode.UNKNOWN_COMMAND, type(request).__name__)  # pragma: no cover

    def _ack(self, sid: str, seq: int) -> list[Action]:
        state = self._subscribers.get(sid)
        if state is None:
            return []
        state.health.heard(self._mono)
        if not state.lane.ack(seq):
            return []
        state.acked_at = self._mono
        state.health.consumed(self._mono)
        return [Progress(sid)]

    def _owned(self, sid: str) -> bool:
        """Whether the caller may act for `sid`: it is unknown, or was made without a client
        key, or by a connection with the caller's key (SPEC 7.1)."""
        state = self._subscribers.get(sid)
        return state is None or state.owner is None or state.owner == self._caller

    def _check_owner(self, sid: str) -> None:
        if not self._owned(sid):
            raise refuse(ErrorCode.NOT_OWNER, "this subscriber id belongs to another client key")

    def _heartbeat(self, sid: str) -> dict[str, Any]:
        state = self._subscribers.get(sid)
        if state is not None and not self._owned(sid):
            return {"known": False}  # it is not the caller's: nothing to tell
        if state is not None:
            state.health.heard(self._mono)
            return {"known": True, "endpoint": state.endpoint}
        reason = self._evicted.pop(sid, None)
        return {"known": False} if reason is None else {"known": False, "evicted": reason}

    def _subscribe(
        self,
        peer: bytes,
        rid: int,
        sid: str,
        endpoint: str,
        options: Options,
        now: float,
        subjects: list[str] | None = None,
        patterns: list[tuple[str, Pattern]] | None = None,
    ) -> list[Action]:
        if not subjects and not patterns:
            raise refuse(ErrorCode.BAD_SUBJECT, "no subjects given")
        check_sid(sid, self.config.limits)
        check_endpoint(endpoint, self.config.limits)
        self._check_owner(sid)
        current = self._subscribers.get(sid)
        now_policy = (current.policy, current.queue, current.max_stall) if current else None
        policy, queue, max_stall = queue_policy(options, now_policy, self.config)
        self._check_room(sid, current, subjects or [], [p for p, _ in patterns or []])
        actions: list[Action] = []
        key = options.key if options.key is not None else (current.key if current else None)
        name = self._service_name(options.name, current)
        have = self.index.subscriptions(sid)
        owner = current.owner if current else self._caller
        if self.store.durable:  # written before anything changes
            record = StoredSubscriber(
                sid,
                endpoint,
                policy,
                queue,
                max_stall,
                key,
                name,
                tuple(sorted(have.subjects | {fold(s) for s in subjects or []})),
                tuple(sorted(have.patterns | {p for p, _ in patterns or []})),
                owner,
            )
            self._written += len(record.subjects) + len(record.patterns)
            self._write(self.store.put_subscriber, record)
        arrived = current is None
        news: dict[str, Any] | None = None  # for $es.subscriber.joined, if it is new
        if current is None or current.endpoint != endpoint or current.key != key:
            if current is not None:
                actions.append(Close(sid))
            current = SubscriberState(
                sid,
                endpoint,
                Lane(sid, self._new_stream(), queue, self.totals),
                policy,
                max_stall,
                since=now,
                health=Health(last_heard=self._mono, link_since=self._mono),
                acked_at=self._mono,
                owner=owner,
            )
            current.key, current.name = key, name
            self._subscribers[sid] = current
            actions.append(Open(sid, endpoint, queue, peer, rid, key))
            news = meta.joined(current.id, endpoint, policy, queue, name)
        current.policy, current.max_stall = policy, max_stall
        current.health.heard(self._mono)
        self._evicted.pop(sid, None)
        if subjects:
            kept = [self._retained.get(s, self._mono) for s in subjects]
            found = [r for r in kept if r is not None]
        else:  # only patterns it did not have: the others' events were sent to it before
            new = [(p, c) for p, c in patterns or [] if p not in have.patterns]
            found = self._retained_matching(new)
        # Retained events its subscriptions matched before this request were sent to it then:
        # each event reaches a subscriber once, however many of its subscriptions match it.
        fresh = [r for r in found if sid not in self.index.recipients(r.subject)]
        if subjects:
            count = self.index.add_subjects(sid, subjects)
            added = {"id": current.id, "subjects": subjects}
        else:
            count = self.index.add_patterns(sid, patterns or [])
            added = {"id": current.id, "patterns": [p for p, _ in patterns or []]}
        body = {
            "count": count,
            "stream": current.stream,
            "heartbeat": self.heartbeat_interval,
            "queue": current.queue,
        }
        actions.append(Reply(peer, encode(Ok(rid, body))))
        actions += self._retained_for(sid, fresh)
        if news is not None:
            actions += self._meta(meta.SUBSCRIBER_JOINED, news)
        if arrived and name is not None:
            actions += self._meta(meta.SERVICE_AVAILABLE, {"name": name, "id": current.id})
        actions += self._meta(meta.SUBSCRIPTION_ADDED, added)
        return actions

    def _retained_matching(self, patterns: list[tuple[str, Pattern]]) -> list[Retained]:
        """The live retained events any of `patterns` matches: the patterns as RE2 sets, one
        pass over the retained events (billed by how many, SPEC 9)."""
        if not patterns or not len(self._retained):
            return []
        sets = PatternSets()
        sets.add(patterns)
        alive = self._retained.alive(self._mono)
        self._scanned += len(alive) * sets.segments  # each event is matched against each set
        return [r for r in alive if sets.match(fold(r.subject))]

    def _retained_for(self, sid: str, found: list[Retained]) -> list[Action]:
        """The retained events a new subscription matches, once each, oldest first; never in
        block mode (a subscriber cannot hold the server back with its own backlog)."""
        unique = {fold(r.subject): r for r in found}
        if not unique:
            return []
        events = sorted(unique.values(), key=lambda r: r.time)
        state = self._subscribers[sid]
        flags = {"retained": True}
        first = state.lane.next_seq
        metas: list[tuple[Any, ...]] = [
            (first + i, r.subject, r.time, r.fmt, flags) for i, r in enumerate(events)
        ]
        payloads = [r.payload for r in events]
        batch = self._numbered(state, metas, payloads, sum(map(len, payloads)), block=False)
        return [Fanout([batch])]

    def _unsubscribe(self, peer: bytes, rid: int, sid: str, names: list[str]) -> list[Action]:
        self._check_owner(sid)
        actions: list[Action] = []
        state = self._subscribers.get(sid)
        if state is not None:
            state.health.heard(self._mono)
        if state is not None and self.store.durable:  # written before anything changes
            have = self.index.subscriptions(sid)
            subjects = have.subjects - {fold(n) for n in names}
            patterns = have.patterns - set(names)
            self._written += len(subjects) + len(patterns)
            if subjects or patterns:
                self._write(self.store.put_subscriber, self._record(state, subjects, patterns))
            else:
                self._write(self.store.delete_subscriber, sid)
        count = self.index.remove(sid, names)
        gone = count == 0 and self._subscribers.pop(sid, None) is not None
        if gone:
            actions.append(Close(sid))
        actions.append(Reply(peer, encode(Ok(rid, {"count": count}))))
        if state is not None:
            removed = {"id": state.id, "names": names, "count": count}
            actions += self._meta(meta.SUBSCRIPTION_REMOVED, removed)
        if gone and state is not None:
            actions += self._departed(sid, state.name, "unsubscribed")
        return actions

    def _record(
        self, state: SubscriberState, subjects: set[str], patterns: set[str]
    ) -> StoredSubscriber:
        """What storage keeps of `state` with these (folded) subjects and patterns."""
        return StoredSubscriber(
            state.sid,
            state.endpoint,
            state.policy,
            state.queue,
            state.max_stall,
            state.key,
            state.name,
            tuple(sorted(subjects)),
            tuple(sorted(patterns)),
            state.owner,
        )

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
        self._mono, self._wall = mono, now
        actions: list[Action] = []
        limits = self.config.limits
        for record in subscribers:
            if len(self._subscribers) >= self.room:
                break  # kept in storage for a server with more room
            try:
                patterns = [
                    (p, compile_pattern(p, limits.max_pattern_bytes)) for p in record.patterns
                ]
            except RequestError:  # this server's limits changed: the pattern no longer fits
                patterns = []
            state = SubscriberState(
                record.sid,
                record.endpoint,
                Lane(record.sid, self._new_stream(), record.queue, self.totals),
                record.policy,
                record.max_stall,
                since=now,
                health=Health(last_heard=mono, link_since=mono),
                acked_at=mono,
                key=record.key,
                name=record.name,
                resumed=True,
                owner=record.owner,
            )
            self._subscribers[record.sid] = state
            if record.subjects:
                self.index.add_subjects(record.sid, list(record.subjects))
            if patterns:
                self.index.add_patterns(record.sid, patterns)
            if not record.subjects and not patterns:
                del self._subscribers[record.sid]
                self._write_quietly(self.store.delete_subscriber, record.sid)
                continue
            actions.append(Open(record.sid, record.endpoint, record.queue, b"", 0, record.key))
        expired: list[tuple[str, StoredEvent | None]] = []
        for event in retained:
            if event.expires is not None and event.expires <= now:
                expired.append((fold(event.subject), None))
                continue
            expires = None if event.expires is None else mono + (event.expires - now)
            self._retained.put(
                Retained(event.subject, event.fmt, event.payload, event.time, expires)
            )
        if expired:
            self._write_quietly(self.store.write_retained, expired)
        return actions

    def _service_name(self, asked: str | None, current: SubscriberState | None) -> str | None:
        """The service name a SUB gives (or keeps); it cannot change while subscribed."""
        if asked is None:
            return current.name if current else None
        limit = self.config.limits.max_sid_bytes
        if not asked or len(asked.encode()) > limit:
            raise refuse(ErrorCode.BAD_REQUEST, f"name must be 1 to {limit} bytes")
        if current is not None and current.name != asked:
            raise refuse(ErrorCode.BAD_REQUEST, "the service name cannot change while subscribed")
        return asked

    def _check_room(
        self, sid: str, current: SubscriberState | None, subjects: list[str], patterns: list[str]
    ) -> None:
        lim = self.config.limits
        if current is None and len(self._subscribers) >= self.room:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"server has {self.room} subscribers")
        have = self.index.subscriptions(sid)
        new = {fold(s) for s in subjects} - have.subjects
        new_patterns = set(patterns) - have.patterns
        if len(have) + len(new) + len(new_patterns) > lim.max_subscriptions:
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED, f"more than {lim.max_subscriptions} subscriptions"
            )
