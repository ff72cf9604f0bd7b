"""Queue groups in the broker (SPEC 7.12): a group's subscriptions, its events, and handing each
of them to one member.

Acts on the broker's state (es.brokerstate). A group is in the subscription index under its own
name (`$group:NAME`), as if it were one subscriber; its events go into its log (es.durablelog:
the storage's for a durable group, in the group commit like a durable subscriber's; memory
otherwise), numbered in the group's stream, and es.groups decides which member takes each. A
member is an ordinary subscriber for everything else (its socket, lane, stream, liveness): it
holds no subscription of its own, and never more unacknowledged events than its queue, so its
queue never drops and never holds a publisher back. An event handed to a member that goes
(removed, unreachable, left) before acknowledging it is handed to another, flagged
`redelivered`.
"""

from __future__ import annotations

import logging

import msgpack

from clients.errors import ErrorCode
from clients.wire import pack_event
from es.actions import Action, Batch, Fanout
from es.brokerstate import BrokerState
from es.checks import refuse
from es.config import Policy, QueuePolicy
from es.daemon.patterns import Pattern, compile_pattern
from es.daemon.storage import StorageError
from es.delivery import Run, joined, numbered
from es.durablelog import DurableLog, MemoryLog, Row, StoredDurable
from es.durables import excess
from es.groups import Group, Member
from es.lane import MAX_BYTES
from es.state import SubscriberState

__all__ = ["PREFIX", "Groups", "index_name"]

log = logging.getLogger("es.broker")

PREFIX = "$group:"
"""A group's name in the index and in the log: `$group:NAME` (durable names starting `$` are the
server's own)."""

# Events read from a log per look when bounds drop a group's oldest waiting events.
_PAGE = 512


def index_name(group: str) -> str:
    """The group's name in the subscription index and in the log."""
    return PREFIX + group


class Groups:
    """The broker's queue groups (see the module)."""

    def __init__(self, core: BrokerState) -> None:
        self.core = core
        self.memory = MemoryLog()  # the logs of the groups that are not durable

    def log_of(self, group: Group) -> DurableLog:
        """Where `group`'s events wait."""
        return self.core.log if group.durable else self.memory

    # --- members -------------------------------------------------------------------------------

    def check(
        self, name: str, durable: str | None, current: SubscriberState | None
    ) -> Group | None:
        """A SUB's group `name` (and `durable`, which must name it too), checked; the group if
        it exists."""
        core = self.core
        limit = core.config.limits.max_sid_bytes
        if not name or len(name.encode()) > limit or name.startswith("$"):
            raise refuse(ErrorCode.BAD_REQUEST, f"group must be 1 to {limit} bytes, not starting $")
        if current is not None and current.group != name:
            raise refuse(
                ErrorCode.BAD_REQUEST, "a subscriber's group cannot change while subscribed"
            )
        if durable is not None and durable != name:
            raise refuse(ErrorCode.BAD_REQUEST, "a durable group's durable name is the group's")
        group = core.groups.get(name)
        if group is None:
            if len(core.groups) >= core.config.limits.max_groups:
                raise refuse(ErrorCode.LIMIT_EXCEEDED, f"{len(core.groups)} groups")
            return None
        if group.owner is not None and group.owner != core.caller:
            raise refuse(ErrorCode.NOT_OWNER, "this group belongs to another client key")
        if durable is not None and not group.durable:
            raise refuse(ErrorCode.BAD_REQUEST, f"group {name!r} exists and is not durable")
        return group

    def subscribe(
        self,
        group: Group | None,
        name: str,
        durable: bool,
        policy: QueuePolicy,
        subjects: list[str],
        patterns: list[tuple[str, Pattern]],
    ) -> Group:
        """Add a member's subscriptions to its group (made if new; a durable one written first)."""
        core = self.core
        key = index_name(name)
        if durable or (group is not None and group.durable):
            have = core.index.subscriptions(key)
            kept = group.policy if group is not None else policy
            record = _record(
                name,
                kept,
                group.owner if group is not None else core.caller,
                tuple(sorted(have.subjects | {s.lower() for s in subjects})),
                tuple(sorted(have.patterns | {p for p, _ in patterns})),
                group.stream if group is not None else core.new_stream(),
            )
            core.written += len(record.subjects) + len(record.patterns)
            core.write(core.log.put_durable, record)
            stream = record.stream
        else:
            stream = group.stream if group is not None else core.new_stream()
        if group is None:
            group = self._make(name, durable, policy, core.caller, stream)
        if subjects:
            core.index.add_subjects(key, subjects)
        if patterns:
            core.index.add_patterns(key, patterns)
        return group

    def _make(
        self, name: str, durable: bool, policy: QueuePolicy, owner: str | None, stream: int
    ) -> Group:
        group = Group(name, durable, policy, owner, stream)
        self.core.groups[name] = group
        self.core.group_sids.add(index_name(name))
        return group

    def join(self, group: Group, state: SubscriberState) -> list[Action]:
        """`state` is a member of `group` (again, with its queue size): what waits for it."""
        state.group = group.name
        group.join(state.sid, state.queue.queue_size)
        return self.dispatch(group)

    def unsubscribe(self, state: SubscriberState, names: list[str]) -> int:
        """A member's UNSUB: these subjects and patterns leave its group (written first for a
        durable group); with none named, the member leaves. Returns the group's count left (0
        when the member left)."""
        core = self.core
        group = core.groups[state.group]  # type: ignore[index]
        key = index_name(group.name)
        if not names:
            return 0
        if group.durable:
            have = core.index.subscriptions(key)
            gone = {n.lower() for n in names}
            subjects = tuple(sorted(have.subjects - gone))
            patterns = tuple(sorted(have.patterns - set(names)))
            if subjects or patterns:
                policy, owner, stream = group.policy, group.owner, group.stream
                record = _record(group.name, policy, owner, subjects, patterns, stream)
                core.write(core.log.put_durable, record)
            else:  # its last subscription: no longer kept, its events with it
                core.write(core.log.delete_durable, key)
                group.durable = False
        return core.index.remove(key, names)

    def replaced(self, state: SubscriberState) -> None:
        """Member `state` gets a new socket (its endpoint or key changed): what its old one
        held waits again in its group, first."""
        self.core.groups[state.group].leave(state.sid)  # type: ignore[index]

    def leave(self, state: SubscriberState) -> list[Action]:
        """Member `state` is gone (removed, unreachable, left): what it held goes to the others;
        a group that is not durable goes with its last member, a durable one with its last
        subscription."""
        core = self.core
        group = core.groups.get(state.group or "")
        state.group = None
        if group is None:
            return []
        group.leave(state.sid)
        subscribed = core.index.count(index_name(group.name)) > 0
        if not group.members and (not group.durable or not subscribed):
            self._end(group)
            return []
        return self.dispatch(group)

    def _end(self, group: Group) -> None:
        """The group is no more: its members are told to go, its log forgotten."""
        core = self.core
        key = index_name(group.name)
        core.index.drop(key)
        core.groups.pop(group.name, None)
        core.group_sids.discard(key)
        self.memory.delete_durable(key)  # a durable group's record went with its subscriptions

    # --- events --------------------------------------------------------------------------------

    def plan(self, runs: list[Run], keys: frozenset[str] | set[str]) -> dict[str, tuple[int, int]]:
        """Check a publish against the bounds of the groups it reaches: refused whole
        (STORE_FULL) for a block-mode group it would take past them; for a drop-mode one, how
        many of its oldest waiting events, and bytes, to drop first. Changes nothing."""
        core = self.core
        lim = core.config.limits
        drops: dict[str, tuple[int, int]] = {}
        for key in keys:
            group = core.groups[key[len(PREFIX) :]]
            backlog = self.log_of(group).backlog(key)
            found = excess(
                backlog, joined(runs, key), lim, group.policy.blocks, f"group {group.name!r}"
            )
            if found is not None:
                drops[key] = found
        return drops

    def take(
        self,
        runs: list[Run],
        keys: frozenset[str] | set[str],
        drops: dict[str, tuple[int, int]],
        now: float,
    ) -> list[Action]:
        """A publish's events for the groups it reaches: into their logs (their oldest waiting
        dropped first, as `plan` said), then handed to members with room."""
        core = self.core
        actions: list[Action] = []
        for key in keys:
            group = core.groups[key[len(PREFIX) :]]
            if key in drops:
                self._drop_oldest(group, *drops[key])
            store = self.log_of(group)
            run = joined(runs, key)
            first = store.backlog(key).next_seq
            rows: list[Row] = [
                (first + i, event, payload, now)
                for i, (event, payload) in enumerate(zip(run.events, run.payloads, strict=True))
            ]
            try:
                store.append(key, rows)
            except StorageError as exc:  # not even in memory: those events are gone
                core.storage_errors += 1
                log.error("group %r: %s", group.name, exc)
                continue
            if group.durable:
                core.log_dirty = core.appended = True
            actions += self.dispatch(group)
        return actions

    def _drop_oldest(self, group: Group, events: int, size: int) -> None:
        """Drop the fewest of the group's oldest events never handed out that make `events`
        events and `size` bytes (all of them if they are not enough): its bounds."""
        key, store = index_name(group.name), self.log_of(group)
        start, last, n, total = group.cursor, None, 0, 0
        while n < events or total < size:
            rows = store.read(key, start, _PAGE, 1 << 62)
            for seq, event, payload, _ in rows:
                if n >= events and total >= size:
                    break
                last, n, total = seq, n + 1, total + len(event) + len(payload)
            if not rows:
                break
            start = rows[-1][0] + 1
        if last is None:
            return
        store.drop(key, (group.cursor, last))
        if group.durable:
            self.core.log_dirty = True
            self.core.group_drops.append((key, (group.cursor, last)))
        group.dropped += n
        group.passed(last)
        log.warning("group %r at its bounds: %d waiting event(s) dropped", group.name, n)

    def dispatch(self, group: Group) -> list[Action]:
        """Hand what waits to the members with room, in turn, each its share of it (as many
        as wait over the members with room, rounded up, within its room), so that a burst is
        spread among them, not taken by the first."""
        key, store = index_name(group.name), self.log_of(group)
        batches: list[Batch] = []
        while takers := group.takers():
            waiting = store.backlog(key).count - group.held
            share = max(1, -(-waiting // len(takers)))
            handed = [self._hand(group, member, min(member.free, share)) for member in takers]
            batches += [made for made in handed if made is not None]
            if None in handed:
                break  # nothing more waits
        return [Fanout(batches)] if batches else []

    def _hand(self, group: Group, member: Member, most: int) -> Batch | None:
        """Hand `member` up to `most` of what waits, numbered in its stream; None if nothing
        does."""
        key, store = index_name(group.name), self.log_of(group)
        rows, again = self._waiting(group, most, store, key)
        if not rows:
            return None
        state = self.core.subscribers[member.sid]
        events = [_redelivered(row[1]) for row in rows[:again]]
        events += [row[1] for row in rows[again:]]
        payloads = [row[2] for row in rows]
        made = numbered(state, events, payloads, sum(map(len, payloads)), block=False)
        group.hand(member, made.first, [row[0] for row in rows], again)
        return made

    def _waiting(
        self, group: Group, free: int, store: DurableLog, key: str
    ) -> tuple[list[Row], int]:
        """Up to `free` of what waits: those to hand again first (how many)."""
        rows: list[Row] = []
        while len(rows) < free and group.again:  # those gone from the log meanwhile are not
            for seq in group.take_again(free - len(rows)):
                found = store.read(key, seq, 1, 1 << 62)
                if found and found[0][0] == seq:
                    rows.append(found[0])
        again = len(rows)
        if len(rows) < free:
            fresh = store.read(key, group.cursor, free - len(rows), MAX_BYTES)
            rows += fresh
            if not fresh:
                group.passed(store.backlog(key).next_seq - 1)
        return rows, again

    def acked(self, state: SubscriberState, seq: int) -> list[Action]:
        """Member `state` consumed up to `seq`: those events leave the group's log; more for
        whoever has room."""
        group = self.core.groups.get(state.group or "")
        if group is None:
            return []
        key, store = index_name(group.name), self.log_of(group)
        for run in _runs(group.acked(state.sid, seq)):
            store.drop(key, run)
            if group.durable:  # in the group commit, redone if it fails (es.durables)
                self.core.group_drops.append((key, run))
                self.core.log_dirty = True
        return self.dispatch(group)

    # --- after a restart -----------------------------------------------------------------------

    def restore(self, records: list[StoredDurable]) -> None:
        """The durable groups storage kept, with their subscriptions and waiting events (every
        event not acknowledged waits again: members come back by subscribing)."""
        core = self.core
        limit = core.config.limits.max_pattern_bytes
        for record in records:
            if not record.name.startswith(PREFIX):
                continue
            name = record.name[len(PREFIX) :]
            try:
                patterns = [(p, compile_pattern(p, limit)) for p in record.patterns]
            except ValueError:
                log.warning("group %r: a stored pattern no longer compiles", name)
                continue
            policy = QueuePolicy(Policy(record.policy), record.queue_size, record.max_stall)
            self._make(name, True, policy, record.owner, record.stream)
            if record.subjects:
                core.index.add_subjects(record.name, list(record.subjects))
            if patterns:
                core.index.add_patterns(record.name, patterns)


def _record(
    name: str,
    policy: QueuePolicy,
    owner: str | None,
    subjects: tuple[str, ...],
    patterns: tuple[str, ...],
    stream: int,
) -> StoredDurable:
    """A durable group as storage keeps it."""
    return StoredDurable(
        index_name(name),
        "",
        "",
        policy.policy,
        policy.queue_size,
        policy.max_stall,
        None,
        owner,
        subjects,
        patterns,
        stream,
    )


def _redelivered(packed: bytes) -> bytes:
    """A packed event flagged `redelivered`."""
    subject, time, fmt, *rest = msgpack.unpackb(packed)
    return pack_event(subject, time, fmt, {**(rest[0] if rest else {}), "redelivered": True})


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Seqs as runs of consecutive ones, sorted: (first, last) each."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
