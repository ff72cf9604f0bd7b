"""Subscriptions: SUB, SUBMATCH, UNSUB, ACK and HEARTBEAT, and what storage brings back after a
restart.

Acts on the broker's state (es.brokerstate). Every change that storage keeps is written first: a
failed write fails the request before anything changed in memory. A subscriber's sid is its
secret; only a connection with the client key that made it may change it (SPEC 7.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from clients.errors import ErrorCode, RequestError
from clients.wire import Ok, Options, encode, pack_event, public_id
from es import meta
from es.actions import Action, Close, Fanout, Open, Progress, Reply
from es.brokerstate import BrokerState
from es.checks import asked_policy, check_endpoint, check_sid, refuse
from es.config import Policy, QueuePolicy
from es.daemon.patterns import Pattern, compile_pattern, fold
from es.delivery import meta_event, numbered
from es.durables import Durables
from es.grouping import Groups
from es.health import Health
from es.lane import Lane
from es.members import Members
from es.patternsets import PatternSets
from es.records import StoredEvent, StoredSubscriber
from es.replays import Replays
from es.retained import Retained
from es.state import SubscriberState

__all__ = ["Subscriptions"]


@dataclass
class Asked:
    """What one SUB or SUBMATCH asks for: subjects (as sent) or compiled patterns."""

    peer: bytes
    rid: int
    sid: str
    endpoint: str
    options: Options
    subjects: list[str]
    patterns: list[tuple[str, Pattern]]

    @property
    def names(self) -> list[str]:
        """The subjects and patterns asked for, as sent."""
        return self.subjects + [p for p, _ in self.patterns]


class Subscriptions:
    """The broker's subscription handling, over its state."""

    def __init__(
        self, core: BrokerState, durables: Durables, replays: Replays, groups: Groups
    ) -> None:
        self.core = core
        self.durables = durables
        self.replays = replays
        self.members = Members(self, groups)

    @property
    def heartbeat_interval(self) -> float:
        """How often subscribers must send HEARTBEAT: a third of the liveness timeout."""
        return self.core.config.liveness / 3

    # --- SUB and SUBMATCH ----------------------------------------------------------------------

    def subscribe(
        self,
        peer: bytes,
        rid: int,
        sid: str,
        endpoint: str,
        options: Options,
        subjects: list[str] | None = None,
        patterns: list[tuple[str, Pattern]] | None = None,
    ) -> list[Action]:
        """A SUB (subjects) or SUBMATCH (compiled patterns): the subscriber made or updated, its
        socket opened if new, the reply, retained events it now matches, the history it asked
        for, and meta-events."""
        asked = Asked(peer, rid, sid, endpoint, options, subjects or [], patterns or [])
        if not asked.names:
            raise refuse(ErrorCode.BAD_SUBJECT, "no subjects given")
        core = self.core
        check_sid(sid, core.config.limits)
        check_endpoint(endpoint, core.config.limits)
        self.check_owner(sid)
        current = core.subscribers.get(sid)
        policy = asked_policy(options, current.queue if current else None, core.config)
        if options.group is not None or (current is not None and current.group is not None):
            return self.members.subscribe(asked, current, policy)
        self._check_room(sid, current, asked)
        have = core.index.subscriptions(sid)
        kept = options.durable is not None and options.durable in core.durables
        chosen = self._history(asked, current)
        state, actions, opened = self._settle(asked, current, policy)
        fresh = self._retained_new(asked, have.patterns)
        if asked.subjects:
            count = core.index.add_subjects(sid, asked.subjects)
            added = {"id": state.id, "subjects": asked.subjects}
        else:
            count = core.index.add_patterns(sid, asked.patterns)
            added = {"id": state.id, "patterns": [p for p, _ in asked.patterns]}
        body = {
            "count": count,
            "stream": state.stream,
            "heartbeat": self.heartbeat_interval,
            "queue": state.queue.queue_size,
        }
        if state.durable is not None:  # its log was there before: nothing was lost meanwhile
            body["kept"] = kept or current is not None
        if options.history is not None:
            body["history"] = core.history.stream
            body["replayed"] = len(chosen)
        actions.append(Reply(peer, encode(Ok(rid, body))))
        actions += self._retained_for(state, fresh)
        actions += self.replays.start(state, chosen, opened)
        if opened:
            queue = state.queue
            news = meta.joined(state.id, endpoint, queue.policy, queue.queue_size, state.name)
            actions += meta_event(core, meta.SUBSCRIBER_JOINED, news)
        if current is None and state.name is not None:
            available = {"name": state.name, "id": state.id}
            actions += meta_event(core, meta.SERVICE_AVAILABLE, available)
        return actions + meta_event(core, meta.SUBSCRIPTION_ADDED, added)

    def _history(self, asked: Asked, current: SubscriberState | None) -> list[int]:
        """The history seqs the request asks for (none when it asks for none)."""
        replay = asked.options.history
        if replay is None:
            return []
        durable = asked.options.durable or (current.durable if current is not None else None)
        matchers = [compiled.match for _, compiled in asked.patterns]
        return self.replays.choose(replay, asked.subjects, matchers, durable)

    def _settle(
        self, asked: Asked, current: SubscriberState | None, policy: QueuePolicy
    ) -> tuple[SubscriberState, list[Action], bool]:
        """Store what the subscriber will be, then make it so: a new state (and socket) when it
        is new or its endpoint or key changed, else the same one with the policy asked for.
        Also says whether it opened a socket."""
        core = self.core
        sid, options = asked.sid, asked.options
        if options.durable is not None or (current is not None and current.durable is not None):
            return self._settle_durable(asked, current, policy)
        key = options.key if options.key is not None else (current.key if current else None)
        name = self._service_name(options.name, current)
        owner = current.owner if current else core.caller
        if core.store.durable:  # written before anything changes
            have = core.index.subscriptions(sid)
            record = StoredSubscriber(
                sid,
                asked.endpoint,
                policy.policy,
                policy.queue_size,
                policy.max_stall,
                key,
                name,
                tuple(sorted(have.subjects | {fold(s) for s in asked.subjects})),
                tuple(sorted(have.patterns | {p for p, _ in asked.patterns})),
                owner,
            )
            core.written += len(record.subjects) + len(record.patterns)
            core.write(core.store.put_subscriber, record)
        actions: list[Action] = []
        state = current
        if state is None or state.endpoint != asked.endpoint or state.key != key:
            if state is not None:
                actions.append(Close(sid))
            state = self.new_state(sid, asked.endpoint, policy)
            state.key, state.name, state.owner = key, name, owner
            core.subscribers[sid] = state
            size = policy.queue_size
            open_ = Open(sid, asked.endpoint, size, asked.peer, asked.rid, key, state.lane)
            actions.append(open_)
        state.queue = policy
        state.health.heard(core.mono)
        core.evicted.pop(sid, None)
        return state, actions, bool(actions)

    def _settle_durable(
        self, asked: Asked, current: SubscriberState | None, policy: QueuePolicy
    ) -> tuple[SubscriberState, list[Action], bool]:
        """_settle for a durable subscriber (es.durables)."""
        core, sid = self.core, asked.sid
        names = (asked.subjects, asked.patterns)
        settled = self.durables.settle(
            sid, asked.endpoint, asked.options, policy, current, names, (asked.peer, asked.rid)
        )
        settled[0].health.heard(core.mono)
        core.evicted.pop(sid, None)
        return settled

    def new_state(self, sid: str, endpoint: str, policy: QueuePolicy) -> SubscriberState:
        """A subscriber on a new stream, heard from now."""
        core = self.core
        return SubscriberState(
            sid,
            endpoint,
            Lane(sid, core.new_stream(), policy.queue_size, core.totals),
            policy,
            since=core.wall,
            health=Health(last_heard=core.mono, link_since=core.mono),
            acked_at=core.mono,
        )

    def _retained_new(self, asked: Asked, had: frozenset[str] | set[str]) -> list[Retained]:
        """The retained events this request's new subscriptions match and the subscriber's
        earlier ones did not (those were sent to it then): each event reaches a subscriber
        once, however many of its subscriptions match it."""
        core = self.core
        if asked.subjects:
            kept = [core.retained.get(s, core.mono) for s in asked.subjects]
            found = [r for r in kept if r is not None]
        else:  # only patterns it did not have
            found = self._retained_matching([(p, c) for p, c in asked.patterns if p not in had])
        return [r for r in found if asked.sid not in core.index.recipients(r.subject)]

    def _retained_matching(self, patterns: list[tuple[str, Pattern]]) -> list[Retained]:
        """The live retained events any of `patterns` matches: the patterns as RE2 sets, one
        pass over the retained events (billed by how many, SPEC 9)."""
        core = self.core
        if not patterns or not len(core.retained):
            return []
        sets = PatternSets()
        sets.add(patterns)
        alive = core.retained.alive(core.mono)
        core.scanned += len(alive) * sets.segments  # each event is matched against each set
        return [r for r in alive if sets.match(fold(r.subject))]

    def _retained_for(self, state: SubscriberState, found: list[Retained]) -> list[Action]:
        """The retained events a new subscription matches, once each, oldest first; never in
        block mode (a subscriber cannot hold the server back with its own backlog)."""
        unique = {fold(r.subject): r for r in found}
        if not unique:
            return []
        events = sorted(unique.values(), key=lambda r: r.time)
        flags = {"retained": True}
        packed = [pack_event(r.subject, r.time, r.fmt, flags) for r in events]
        payloads = [r.payload for r in events]
        return [Fanout([numbered(state, packed, payloads, sum(map(len, payloads)), block=False)])]

    def _service_name(self, asked: str | None, current: SubscriberState | None) -> str | None:
        """The service name a SUB gives (or keeps); it cannot change while subscribed."""
        if asked is None:
            return current.name if current else None
        limit = self.core.config.limits.max_sid_bytes
        if not asked or len(asked.encode()) > limit:
            raise refuse(ErrorCode.BAD_REQUEST, f"name must be 1 to {limit} bytes")
        if current is not None and current.name != asked:
            raise refuse(ErrorCode.BAD_REQUEST, "the service name cannot change while subscribed")
        return asked

    def _check_room(self, sid: str, current: SubscriberState | None, asked: Asked) -> None:
        core = self.core
        if current is None and len(core.subscribers) >= core.room:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"server has {core.room} subscribers")
        self.check_count(sid, asked)

    def check_count(self, sid: str, asked: Asked) -> None:
        """Refuse a request that would take `sid` (a subscriber, or a group) past its number of
        subscriptions."""
        core = self.core
        lim = core.config.limits
        have = core.index.subscriptions(sid)
        new = {fold(s) for s in asked.subjects} - have.subjects
        new_patterns = {p for p, _ in asked.patterns} - have.patterns
        if len(have) + len(new) + len(new_patterns) > lim.max_subscriptions:
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED, f"more than {lim.max_subscriptions} subscriptions"
            )

    def check_owner(self, sid: str) -> None:
        """Refuse a request for a subscriber the caller does not own (SPEC 7.1)."""
        if not self.core.owned(sid):
            raise refuse(ErrorCode.NOT_OWNER, "this subscriber id belongs to another client key")

    # --- UNSUB, ACK, HEARTBEAT -----------------------------------------------------------------

    def unsubscribe(self, peer: bytes, rid: int, sid: str, names: list[str]) -> list[Action]:
        """An UNSUB: subjects and patterns removed; with the last one, the subscriber."""
        self.check_owner(sid)
        core = self.core
        actions: list[Action] = []
        state = core.subscribers.get(sid)
        if state is not None:
            state.health.heard(core.mono)
        if state is not None and state.group is not None:
            return self.members.unsubscribe(peer, rid, state, names)
        if state is not None and state.durable is not None:  # written before anything changes
            self._store_durable_without(state, names)
        elif state is not None and core.store.durable:
            self._store_without(state, names)
        count = core.index.remove(sid, names)
        gone = count == 0 and core.subscribers.pop(sid, None) is not None
        if gone:
            actions.append(Close(sid))
        actions.append(Reply(peer, encode(Ok(rid, {"count": count}))))
        if state is not None:
            removed = {"id": state.id, "names": names, "count": count}
            actions += meta_event(core, meta.SUBSCRIPTION_REMOVED, removed)
        if gone and state is not None:
            actions += self.departed(sid, state.name, "unsubscribed")
        return actions

    def _store_without(self, state: SubscriberState, names: list[str]) -> None:
        """Store `state` without the subscriptions `names`, or delete it if none are left."""
        core = self.core
        have = core.index.subscriptions(state.sid)
        subjects = have.subjects - {fold(n) for n in names}
        patterns = have.patterns - set(names)
        core.written += len(subjects) + len(patterns)
        if subjects or patterns:
            core.write(core.store.put_subscriber, _record(state, subjects, patterns))
        else:
            core.write(core.store.delete_subscriber, state.sid)

    def _store_durable_without(self, state: SubscriberState, names: list[str]) -> None:
        """As _store_without, for a durable subscriber: with none left, its name and log go."""
        have = self.core.index.subscriptions(state.sid)
        subjects = have.subjects - {fold(n) for n in names}
        patterns = have.patterns - set(names)
        if subjects or patterns:
            self.durables.store(state, subjects, patterns)
        else:
            self.durables.forget(state)

    def departed(self, sid: str, name: str | None, reason: str) -> list[Action]:
        """The meta-events for a subscriber that is gone, and for its service if it named one."""
        shown = public_id(sid)
        actions = meta_event(self.core, meta.SUBSCRIBER_LEFT, meta.left(shown, reason))
        if name is not None:
            gone = {"name": name, "id": shown, "reason": reason}
            actions += meta_event(self.core, meta.SERVICE_GONE, gone)
        return actions

    def ack(self, sid: str, seq: int) -> list[Action]:
        """An ACK: how far the subscriber got; progress for the flow if it moved on."""
        core = self.core
        state = core.subscribers.get(sid)
        if state is None:
            return []
        state.health.heard(core.mono)
        if not state.lane.ack(seq):
            return []
        if state.durable is not None:
            self.durables.acked(state, seq)
        elif state.catchup is not None:
            self.replays.acked(state, seq)
        state.acked_at = core.mono
        state.health.consumed(core.mono)
        if state.group is not None:  # room in its queue: more of its group's events
            return [Progress(sid), *self.members.groups.acked(state, seq)]
        return [Progress(sid)]

    def heartbeat(self, sid: str) -> dict[str, Any]:
        """The HEARTBEAT reply body: whether the server knows `sid`, and where it delivers."""
        core = self.core
        state = core.subscribers.get(sid)
        if state is not None and not core.owned(sid):
            return {"known": False}  # it is not the caller's: nothing to tell
        if state is not None and state.detached:  # a durable subscriber the server gave up on
            reason = core.evicted.pop(sid, None)
            return {"known": False} if reason is None else {"known": False, "evicted": reason}
        if state is not None:
            state.health.heard(core.mono)
            return {"known": True, "endpoint": state.endpoint}
        reason = core.evicted.pop(sid, None)
        return {"known": False} if reason is None else {"known": False, "evicted": reason}

    # --- after a restart -----------------------------------------------------------------------

    def restore(self, records: Iterable[StoredSubscriber]) -> list[Action]:
        """Take back the subscribers storage kept, each on a new stream (its first event marked
        resumed), up to the server's room. Returns the Opens for their delivery sockets."""
        core = self.core
        actions: list[Action] = []
        for record in records:
            if len(core.subscribers) >= core.room:
                break  # kept in storage for a server with more room
            patterns = _compiled(record.patterns, core.config.limits.max_pattern_bytes)
            if not record.subjects and not patterns:
                core.write_quietly(core.store.delete_subscriber, record.sid)
                continue
            state = self.new_state(
                record.sid,
                record.endpoint,
                QueuePolicy(Policy(record.policy), record.queue_size, record.max_stall),
            )
            state.key, state.name, state.owner = record.key, record.name, record.owner
            state.resumed = True
            actions.append(core.restored(state, record.subjects, patterns))
        return actions

    def restore_retained(self, events: Iterable[StoredEvent], now: float) -> None:
        """Take back the retained events storage kept that are still alive at `now` (wall
        clock); forget the others there too."""
        core = self.core
        expired: list[tuple[str, StoredEvent | None]] = []
        for event in events:
            if event.expires is not None and event.expires <= now:
                expired.append((fold(event.subject), None))
                continue
            expires = None if event.expires is None else core.mono + (event.expires - now)
            kept = Retained(event.subject, event.fmt, event.payload, event.time, expires)
            core.retained.put(kept)
        if expired:
            core.write_quietly(core.store.write_retained, expired)


def _compiled(patterns: Iterable[str], limit: int) -> list[tuple[str, Pattern]]:
    """Stored patterns compiled again; none if one no longer fits this server's limits."""
    try:
        return [(p, compile_pattern(p, limit)) for p in patterns]
    except RequestError:
        return []


def _record(state: SubscriberState, subjects: set[str], patterns: set[str]) -> StoredSubscriber:
    """What storage keeps of `state` with these (folded) subjects and patterns."""
    return StoredSubscriber(
        state.sid,
        state.endpoint,
        state.queue.policy,
        state.queue.queue_size,
        state.queue.max_stall,
        state.key,
        state.name,
        tuple(sorted(subjects)),
        tuple(sorted(patterns)),
        state.owner,
    )
