"""Durable subscribers (SPEC 7.10): taken, moved to another subscriber, away, back, restored;
the bounds of their logs; the group commit.

Acts on the broker's state (es.brokerstate). A durable subscriber is an ordinary subscriber
(es.state) with a name and a log (es.durablelog): every event numbered for it is appended to
the log before anything is sent, and forgotten there once it is acknowledged. Its lane spills
what does not fit to the log and takes it back in order (es.lane), and its stream and seq
outlive its connections, its subscriber's process and the server.

Invariants:
- One subscriber holds a durable name at a time; a SUB naming it from another sid moves it
  there (with key files, only for the key that made it). The one it left is told `replaced`.
- A durable subscriber that goes away (evicted, SPEC 7.6) is detached, not removed: its
  subscriptions stay, events keep coming into its log, bounded by the server's limits and its
  policy (block: publishes that would go past them are refused whole with STORE_FULL; drop:
  its oldest spilled events go, and it is told how many). Only UNSUB of its last subscription
  removes it, log and all.
- The group: what a turn wrote to the logs is committed before anything of that turn is sent or
  confirmed (es.server calls `commit`). If the commit fails, the publishes of the group that
  reached a durable subscriber are answered STORAGE_FAILED, their events are dropped from the
  durable subscribers' lanes (never sent), and nothing more goes to durable subscribers until a
  commit succeeds again, so that no seq is told before it is on disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from clients.errors import ErrorCode, RequestError
from clients.wire import Err, Options, encode
from es import meta
from es.actions import Action, Batch, Close, Open, Refilled, Refuse
from es.brokerstate import BrokerState
from es.checks import refuse
from es.config import Limits, Policy, QueuePolicy
from es.daemon.patterns import Pattern, compile_pattern
from es.daemon.storage import StorageError
from es.delivery import Run, joined, meta_event
from es.durablelog import Backlog, Row, StoredDurable
from es.health import Health
from es.lane import MAX_BYTES, Lane
from es.state import SubscriberState

__all__ = ["Durables", "Plan", "excess", "refilled"]

log = logging.getLogger("es.broker")

# Events read from a log per look when making room in it or expiring its old events.
_PAGE = 512
# How often (seconds) logs are looked at for events past their maximum age.
AGE_CHECK = 5.0


@dataclass
class Plan:
    """What a publish must drop first from durable subscribers' logs: sid -> last seq to drop."""

    drops: dict[str, int] = field(default_factory=dict)


class Durables:
    """The broker's durable subscribers, over its state (see the module)."""

    def __init__(self, core: BrokerState) -> None:
        self.core = core
        self._next_age_check = 0.0
        core.before_write = self.commit_first  # type: ignore[method-assign]

    # --- taking a name -------------------------------------------------------------------------

    def settle(
        self,
        sid: str,
        endpoint: str,
        options: Options,
        policy: QueuePolicy,
        current: SubscriberState | None,
        names: tuple[list[str], list[tuple[str, Pattern]]],
        peer_rid: tuple[bytes, int],
    ) -> tuple[SubscriberState, list[Action], bool]:
        """A SUB or SUBMATCH of a durable subscriber (named in `options` or held by `current`):
        taken new, moved here from another sid, back from away, or updated. Storage is written
        first. Returns the state, the actions (Close, Open) and whether a socket opens."""
        core = self.core
        name = options.durable
        if name is None:
            assert current is not None
            name = current.durable
        assert name is not None
        self._check_name(name, current)
        if options.name is not None:
            raise refuse(ErrorCode.BAD_REQUEST, "a durable subscriber cannot also be a service")
        holder_sid = core.durables.get(name)
        holder = core.subscribers.get(holder_sid) if holder_sid else None
        if holder is not None and holder_sid != sid:
            if holder.owner is not None and holder.owner != core.caller:
                raise refuse(ErrorCode.NOT_OWNER, "this durable name belongs to another client key")
        elif holder is None and len(core.durables) >= core.config.limits.max_durables:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"{len(core.durables)} durable subscribers")
        previous = holder if holder is not None else current
        key = options.key if options.key is not None else (previous.key if previous else None)
        owner = previous.owner if previous else core.caller
        subjects, patterns = names
        stream = previous.stream if previous else core.new_stream()
        have = core.index.subscriptions(holder_sid or sid)
        record = StoredDurable(
            name,
            sid,
            endpoint,
            policy.policy,
            policy.queue_size,
            policy.max_stall,
            key,
            owner,
            tuple(sorted(have.subjects | {s.lower() for s in subjects})),
            tuple(sorted(have.patterns | {p for p, _ in patterns})),
            stream,
        )
        core.written += len(record.subjects) + len(record.patterns)
        core.write(core.log.put_durable, record)
        return self._take(record, policy, current, holder, peer_rid)

    def _check_name(self, name: str, current: SubscriberState | None) -> None:
        limit = self.core.config.limits.max_sid_bytes
        if not name or len(name.encode()) > limit:
            raise refuse(ErrorCode.BAD_REQUEST, f"durable must be 1 to {limit} bytes")
        if name.startswith("$"):
            raise refuse(ErrorCode.BAD_REQUEST, "durable names starting '$' are the server's own")
        if current is not None and current.durable != name:
            raise refuse(
                ErrorCode.BAD_REQUEST, "a subscriber's durable name cannot change while subscribed"
            )

    def _take(
        self,
        record: StoredDurable,
        policy: QueuePolicy,
        current: SubscriberState | None,
        holder: SubscriberState | None,
        peer_rid: tuple[bytes, int],
    ) -> tuple[SubscriberState, list[Action], bool]:
        """Make the state the record says: the same one updated, or a new lane continuing the
        stream of the one it had (here, or at the sid it moves from)."""
        core, sid = self.core, record.sid
        same = current is not None and current.endpoint == record.endpoint
        if same and current is not None and not current.detached and current.key == record.key:
            current.queue = policy
            return current, [], False
        actions: list[Action] = []
        before = holder if holder is not None and holder.sid != sid else current
        if before is not None:
            actions.append(Close(before.sid))
            if before.sid != sid:
                self._move(before.sid, sid)
                core.evicted[before.sid] = "replaced"
                del core.subscribers[before.sid]
        state = self.new_state(record, policy, before.lane if before else None)
        core.subscribers[sid] = state
        core.durables[record.name] = sid
        peer, rid = peer_rid
        actions.append(
            Open(sid, record.endpoint, policy.queue_size, peer, rid, record.key, state.lane)
        )
        if before is not None and before.detached:
            body = {
                "durable": record.name,
                "id": state.id,
                "stored": core.log.backlog(record.name).count,
            }
            actions += meta_event(core, meta.DURABLE_BACK, body)
        return state, actions, True

    def new_state(
        self, record: StoredDurable, policy: QueuePolicy, before: Lane | None
    ) -> SubscriberState:
        """A durable subscriber's state on its stream, where its log says it is (or where the
        lane `before` got to)."""
        core = self.core
        lane = Lane(record.sid, record.stream, policy.queue_size, core.totals)
        backlog = core.log.backlog(record.name)
        next_seq = max(backlog.next_seq, before.next_seq if before else 1)
        if before is None:
            lane.durable(next_seq, backlog.acked)
        else:
            lane.durable(next_seq, backlog.acked, before.handed, before.settled)
        state = SubscriberState(
            record.sid,
            record.endpoint,
            lane,
            policy,
            since=core.wall,
            health=Health(last_heard=core.mono, link_since=core.mono),
            acked_at=core.mono,
        )
        state.key, state.owner, state.durable = record.key, record.owner, record.name
        state.keep = lambda batch: self.keep(state, batch, core.wall)
        core.durable_sids.add(record.sid)
        return state

    def _move(self, old: str, new: str) -> None:
        """The subscriptions of `old` are `new`'s now."""
        index = self.core.index
        have = index.subscriptions(old)
        subjects = list(have.subjects)
        patterns = [(p, c) for p in have.patterns if (c := index.pattern(p)) is not None]
        index.drop(old)
        self.core.durable_sids.discard(old)
        if subjects:
            index.add_subjects(new, subjects)
        if patterns:
            index.add_patterns(new, patterns)

    # --- away, back, gone ----------------------------------------------------------------------

    def detach(self, state: SubscriberState, reason: str) -> list[Action]:
        """`state`'s subscriber is gone (SPEC 7.6): keep its subscriptions and log; close its
        socket. Its next HEARTBEAT is told why, as for a removal."""
        core = self.core
        state.detached = True
        core.evicted[state.sid] = reason
        body = {"durable": state.durable, "id": state.id, "reason": reason}
        return [Close(state.sid, reason, detach=True), *meta_event(core, meta.DURABLE_AWAY, body)]

    def forget(self, state: SubscriberState) -> None:
        """`state` unsubscribed from everything: its durable name and log go (written first)."""
        core = self.core
        assert state.durable is not None
        core.write(core.log.delete_durable, state.durable)
        core.durables.pop(state.durable, None)
        core.durable_sids.discard(state.sid)

    def store(self, state: SubscriberState, subjects: set[str], patterns: set[str]) -> None:
        """Keep `state`'s record with these subscriptions (after an UNSUB that leaves some)."""
        core = self.core
        assert state.durable is not None
        queue = state.queue
        record = StoredDurable(
            state.durable,
            state.sid,
            state.endpoint,
            queue.policy,
            queue.queue_size,
            queue.max_stall,
            state.key,
            state.owner,
            tuple(sorted(subjects)),
            tuple(sorted(patterns)),
            state.stream,
        )
        core.write(core.log.put_durable, record)

    def restore(self, records: list[StoredDurable]) -> list[Action]:
        """The durable subscribers storage kept, each attached to the subscriber that last held
        it (which is detached by the usual liveness checks if it is gone). Returns the Opens."""
        core = self.core
        actions: list[Action] = []
        limit = core.config.limits.max_pattern_bytes
        for record in records:
            if record.name.startswith("$"):  # the server's own (es.replays: the history)
                continue
            if len(core.subscribers) >= core.room:
                break  # kept in storage for a server with more room
            try:
                patterns = [(p, compile_pattern(p, limit)) for p in record.patterns]
            except RequestError:  # a pattern this server no longer takes: keep the record as is
                log.warning("durable %r: a stored pattern no longer compiles", record.name)
                continue
            policy = QueuePolicy(Policy(record.policy), record.queue_size, record.max_stall)
            state = self.new_state(record, policy, None)
            core.durables[record.name] = record.sid
            actions.append(core.restored(state, record.subjects, patterns))
        return actions

    # --- events in and out ---------------------------------------------------------------------

    def plan(self, runs: list[Run], wanted: frozenset[str]) -> Plan:
        """Check a publish against the logs of the durable subscribers it reaches: refused
        whole (STORE_FULL) for a block-mode one it would take past its limits; for a drop-mode
        one, the oldest spilled events to drop first. Changes nothing."""
        core = self.core
        plan = Plan()
        lim = core.config.limits
        for sid in core.durable_sids & wanted:
            state = core.subscribers[sid]
            assert state.durable is not None
            backlog = core.log.backlog(state.durable)
            what = f"durable subscriber {state.durable!r}"
            found = excess(backlog, joined(runs, sid), lim, state.queue.blocks, what)
            if found is None:
                continue
            cut = self._oldest(state, *found)
            if cut is not None:
                plan.drops[sid] = cut
        return plan

    def _oldest(self, state: SubscriberState, events: int, size: int) -> int | None:
        """The last seq of the fewest oldest spilled events of `state` that make `events`
        events and `size` bytes (all of them if they are not enough), or None if none."""
        start = state.lane.spilled_from
        if start is None:
            return None  # what the log holds is all in the queue's window: nothing to drop
        assert state.durable is not None
        cut, n, total = None, 0, 0
        while n < events or total < size:
            rows = self.core.log.read(state.durable, start, _PAGE, 1 << 62)
            if not rows:
                break
            for seq, event, payload, _ in rows:
                if n >= events and total >= size:
                    break
                cut, n, total = seq, n + 1, total + len(event) + len(payload)
            start = rows[-1][0] + 1
        return cut

    def carry_out(self, plan: Plan) -> None:
        """Drop what `plan` says from the logs and count it lost in the lanes."""
        for sid, cut in plan.drops.items():
            self.drop(self.core.subscribers[sid], cut)

    def drop(self, state: SubscriberState, cut: int) -> None:
        """Drop `state`'s spilled events up to seq `cut` from its log (told to it as lost)."""
        start = state.lane.spilled_from
        assert state.durable is not None
        assert start is not None
        self.core.log.drop(state.durable, (start, cut))
        self.core.log_dirty = True
        self.core.group_drops.append((state.durable, (start, cut)))
        state.lane.forget(cut)

    def keep(self, state: SubscriberState, batch: Batch, time: float) -> bool:
        """Append a batch numbered for durable `state` to its log (in the group)."""
        assert state.durable is not None
        first = batch.first
        rows: list[Row] = [
            (first + i, event, payload, time)
            for i, (event, payload) in enumerate(zip(batch.events, batch.payloads, strict=True))
        ]
        self.core.log.append(state.durable, rows)
        self.core.log_dirty = self.core.appended = True
        return True

    def acked(self, state: SubscriberState, seq: int) -> None:
        """`state` consumed up to `seq`: forget those events in its log (in the group)."""
        assert state.durable is not None
        self.core.log.ack(state.durable, seq)
        self.core.log_dirty = True

    def refill(self, state: SubscriberState) -> list[Action]:
        """Events from `state`'s log for the room in its lane, in order."""
        lane = state.lane
        start = lane.spilled_from
        assert state.durable is not None
        if start is None or not self.core.healthy:
            return []
        rows = self.core.log.read(state.durable, start, lane.room(), MAX_BYTES)
        return [refilled(lane, rows)]

    def expire(self, now: float, mono: float) -> None:
        """Drop spilled events past the maximum age from every durable subscriber's log (every
        AGE_CHECK seconds)."""
        core = self.core
        age = core.config.limits.max_durable_age
        if not age or mono < self._next_age_check:
            return
        self._next_age_check = mono + AGE_CHECK
        before = now - age
        for sid in list(core.durable_sids):
            state = core.subscribers[sid]
            start = state.lane.spilled_from
            assert state.durable is not None
            if start is None:
                continue
            rows = core.log.read(state.durable, start, _PAGE, 1 << 62)
            old = [row[0] for row in rows if row[3] < before]
            if old:
                self.drop(state, old[-1])

    # --- the group -----------------------------------------------------------------------------

    def commit_first(self) -> None:
        """Commit the group before a write that is committed on its own (a subscriber's
        record): its failure is the group's, answered as in `commit`."""
        self.core.failed += self.commit(everything=True)

    def commit(self, everything: bool = False) -> list[Action]:
        """Commit what the turn wrote to the logs: when it appended events (they may not be sent
        before), or, with `everything`, when it only forgot some (ACKs and drops may wait for
        the next commit: after a crash their events come again, and are dropped as had). On
        failure: STORAGE_FAILED for the publishes of the group that reached durable
        subscribers, their events dropped from those lanes, and nothing more for durable
        subscribers until a commit succeeds."""
        core = self.core
        if core.healthy and not core.appended and not (everything and core.log_dirty):
            return []
        if not core.healthy:
            for sid in core.durable_sids:  # seqs numbered and dropped are never numbered again
                state = core.subscribers[sid]
                assert state.durable is not None
                core.log.skip(state.durable, state.lane.next_seq)
        try:
            core.log.commit()
        except StorageError as exc:
            return self._failed(exc)
        core.log_dirty = core.appended = False
        core.uncommitted.clear()
        core.group_drops.clear()
        if core.healthy:
            return []
        core.healthy = True
        log.info("durable subscribers' events are written again")
        back: list[Action] = []
        for sid in core.durable_sids:  # what waited in the logs meanwhile
            state = core.subscribers[sid]
            if state.lane.wants_refill():
                back += self.refill(state)
        return back

    def _redo(self) -> None:
        """After a failed commit, what the lanes already count stays so in the logs: the events
        dropped and acknowledged in the group are forgotten again, in the next group."""
        core = self.core
        drops, core.group_drops = core.group_drops, []
        try:
            for name, seqs in drops:
                core.log.drop(name, seqs)
                core.group_drops.append((name, seqs))
            for sid in core.durable_sids:
                state = core.subscribers[sid]
                assert state.durable is not None
                if state.lane.acked > core.log.backlog(state.durable).acked:
                    core.log.ack(state.durable, state.lane.acked)
        except StorageError as exc:  # not even in memory: the next commit says so again
            log.error("%s", exc)
        core.log_dirty = True

    def _failed(self, exc: StorageError) -> list[Action]:
        core = self.core
        core.storage_errors += 1
        core.healthy = False
        log.error("%s", exc)
        for sid in core.durable_sids:
            state = core.subscribers[sid]
            assert state.durable is not None
            state.lane.discard(core.log.backlog(state.durable).next_seq)
        self._redo()
        message = f"not stored: {exc}"
        replies: list[Action] = [
            Refuse(peer, rid, encode(Err(rid, ErrorCode.STORAGE_FAILED, message)))
            for peer, rid in dict.fromkeys(core.uncommitted)  # once each, whatever it reached
        ]
        core.uncommitted.clear()
        return replies


def refilled(lane: Lane, rows: list[Row]) -> Refilled:
    """The Refilled for `lane` of `rows` read from where its spilled events wait, from its
    `spilled_from` on: their first consecutive ones (None: nothing is kept there any more up to
    its last seq)."""
    if not rows:
        return Refilled(lane.sid, None, lane.next_seq - 1)
    first = rows[0][0]
    count = 1
    while count < len(rows) and rows[count][0] == first + count:
        count += 1
    taken = rows[:count]
    payloads = [row[2] for row in taken]
    events = [row[1] for row in taken]
    batch = Batch(lane.sid, first, events, payloads, sum(map(len, payloads)))
    return Refilled(lane.sid, batch, lane.next_seq - 1)


def excess(
    backlog: Backlog, run: Run, limits: Limits, blocks: bool, what: str
) -> tuple[int, int] | None:
    """What a run of events would take a log (`what`'s) past its bounds by: None if nothing,
    else (events, bytes) to drop first; refused with STORE_FULL in block mode, or when the run
    alone is too large."""
    size = run.size + sum(map(len, run.events))
    over = backlog.count + len(run.events) - limits.max_durable_events
    over_bytes = backlog.size + size - limits.max_durable_bytes
    if over <= 0 and over_bytes <= 0:
        return None
    if blocks or size > limits.max_durable_bytes:
        raise refuse(
            ErrorCode.STORE_FULL,
            f"{what} holds {backlog.count} events ({backlog.size} bytes): at its limit",
        )
    return max(over, 0), max(over_bytes, 0)
