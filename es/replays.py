"""History and replay (SPEC 7.11): what the retention rules keep of each publish, and the events
a subscription that asks for history gets before any later one.

Acts on the broker's state (es.brokerstate). The rules and their bookkeeping are es.history's;
the events themselves are in the durable log (es.durablelog) under the name HISTORY, written in
the group of the turn (es.durables.commit) like a durable subscriber's. A subscriber that asks
for history gets the events chosen numbered in its stream at once: a durable subscriber's are
appended to its log; any other subscriber's lane catches up (es.catchup), reading them from the
history as its queue has room, so a large history never holds publishers back and never waits
in memory twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import msgpack

from clients.errors import ErrorCode
from clients.wire import PubItem, Replay, pack_event
from es.actions import Action, Batch, Fanout, Progress
from es.brokerstate import BrokerState
from es.catchup import Catchup, replayed
from es.checks import refuse
from es.daemon.patterns import fold
from es.daemon.storage import StorageError
from es.durablelog import Row, StoredDurable, row_size
from es.durables import refilled
from es.history import HISTORY, History, parse_rule
from es.lane import MAX_BYTES
from es.state import SubscriberState

__all__ = ["Marks", "Replays"]

log = logging.getLogger("es.broker")

# Events read from the history per look when it is loaded.
_PAGE = 4096
# How often (seconds) the rules' maximum ages are applied.
AGE_CHECK = 5.0


@dataclass(slots=True)
class Marks:
    """What the history keeps of one publish, before the publish is taken: each event's packing
    (None where no rule keeps it, in the order of its items and subjects), and the rows to keep
    with their subjects (folded) and rules."""

    packed: list[bytes | None]
    rows: list[tuple[str, int, Row]]


class Replays:
    """The broker's history, and the replays it sends (see the module)."""

    def __init__(self, core: BrokerState) -> None:
        self.core = core
        self._next_age_check = 0.0

    def load(self) -> None:
        """The history storage kept, under the rules this server was started with: events no
        rule keeps now, or past a rule's bounds, are dropped. A history with no rule and
        nothing kept is not written at all."""
        core = self.core
        most = core.config.limits.max_pattern_bytes
        rules = [parse_rule(text, most) for text in core.config.history]
        record = next((r for r in core.log.durables() if r.name == HISTORY), None)
        if record is None and not rules:
            return
        stream = record.stream if record is not None else core.new_stream()
        history = History(rules, stream, core.log.backlog(HISTORY).next_seq)
        core.history = history
        kept = record.patterns if record is not None else ()
        patterns = tuple(rule.pattern for rule in rules)
        if record is None or kept != patterns:
            core.write_quietly(core.log.put_durable, _record(stream, patterns))
        dropped = self._restore(history)
        dropped += history.expire(core.wall)
        self._drop(dropped)
        try:
            core.log.commit()
        except StorageError as exc:  # the drops are done again with the next commit
            core.storage_errors += 1
            log.error("history: %s", exc)

    def _restore(self, history: History) -> list[int]:
        """Take back the events kept in the log; returns those the rules no longer keep."""
        log_, dropped, start = self.core.log, [], 1
        while rows := log_.read(HISTORY, start, _PAGE, 1 << 62):
            for seq, event, payload, time in rows:
                folded = fold(msgpack.unpackb(event)[0])
                rule = history.rule_for(folded)
                if rule < 0:
                    dropped.append(seq)
                else:
                    dropped += history.restore(seq, folded, time, len(event) + len(payload), rule)
            start = rows[-1][0] + 1
        return dropped

    # --- publishing ----------------------------------------------------------------------------

    def mark(self, items: Iterable[PubItem], now: float) -> Marks | None:
        """The events of a publish the rules keep, packed with their history seqs (as they
        will be when the publish is taken: `keep`); None when the rules keep none of them."""
        history = self.core.history
        packed: list[bytes | None] = []
        rows: list[tuple[str, int, Row]] = []
        seq = history.next_seq
        for item in items:
            for subject in item.subjects:
                folded = fold(subject)
                rule = history.rule_for(folded)
                if rule < 0:
                    packed.append(None)
                    continue
                event = pack_event(subject, now, item.fmt, {"history": seq})
                packed.append(event)
                rows.append((folded, rule, (seq, event, item.payload, now)))
                seq += 1
        return Marks(packed, rows) if rows else None

    def keep(self, marks: Marks, peer: bytes, rid: int) -> None:
        """Keep what `marks` says (the publish is taken), in the group: a failed commit answers
        the publish STORAGE_FAILED (es.durables)."""
        core, history = self.core, self.core.history
        dropped: list[int] = []
        for folded, rule, row in marks.rows:
            seq, gone = history.keep(folded, row[3], row_size(row), rule)
            assert seq == row[0], "marked and kept in one request"
            dropped += gone
        try:
            if not core.healthy:  # seqs taken in a group that failed are not taken again
                core.log.skip(HISTORY, marks.rows[0][2][0])
            core.log.append(HISTORY, [row for _, _, row in marks.rows])
        except StorageError as exc:  # not even in memory: replays find these missing
            core.storage_errors += 1
            log.error("history: %s", exc)
        self._drop(dropped)
        core.log_dirty = core.appended = True
        core.uncommitted.append((peer, rid))

    def _drop(self, seqs: list[int]) -> None:
        """Forget these events of the history in the log (in the group), in runs of seqs."""
        core = self.core
        for run in _runs(sorted(seqs)):
            try:
                core.log.drop(HISTORY, run)
            except StorageError as exc:
                core.storage_errors += 1
                log.error("history: %s", exc)
            core.group_drops.append((HISTORY, run))
            core.log_dirty = True

    def expire(self, now: float, mono: float) -> None:
        """Drop the events past their rule's maximum age (every AGE_CHECK seconds)."""
        if not self.core.history.rules or mono < self._next_age_check:
            return
        self._next_age_check = mono + AGE_CHECK
        self._drop(self.core.history.expire(now))

    # --- replaying -----------------------------------------------------------------------------

    def choose(
        self,
        replay: Replay,
        subjects: list[str],
        matchers: Sequence[Callable[[str], object]],
        durable: str | None,
    ) -> list[int]:
        """The history seqs a SUB or SUBMATCH asking for `replay` gets, for its `subjects` or
        patterns (`matchers`), billed by the events looked at. For a durable subscriber, they
        must fit its log (STORE_FULL otherwise). Changes nothing."""
        core = self.core
        history = core.history
        core.history_scanned += len(history.entries)
        folded = {fold(s) for s in subjects}
        if folded:
            chosen = history.select(folded.__contains__, replay)
        else:
            chosen = history.select(lambda s: any(m(s) for m in matchers), replay)
        if durable is not None and chosen:
            self._check_room(durable, chosen)
        return chosen

    def _check_room(self, durable: str, chosen: list[int]) -> None:
        core = self.core
        lim = core.config.limits
        backlog = core.log.backlog(durable)
        size = sum(core.history.entries[seq].size for seq in chosen)
        if backlog.count + len(chosen) > lim.max_durable_events or (
            backlog.size + size > lim.max_durable_bytes
        ):
            raise refuse(
                ErrorCode.STORE_FULL,
                f"{len(chosen)} events of history ({size} bytes) do not fit durable "
                f"subscriber {durable!r}'s log: ask for fewer",
            )

    def start(self, state: SubscriberState, chosen: list[int], opened: bool) -> list[Action]:
        """Number the events `chosen` in `state`'s stream, ahead of any later event: a durable
        subscriber's into its log (and its lane), another's lane catches up with them."""
        if not chosen:
            return []
        if state.catchup is not None and not state.lane.catching_up:
            state.catchup = state.keep = None  # it caught up with an earlier replay
        if state.keep is not None:  # durable, or catching up still: kept there now
            rows = self._fetch(chosen)
            found = [rows[seq] for seq in chosen if seq in rows]
            if not found:
                return []
            events = [replayed(row[1]) for row in found]
            payloads = [row[2] for row in found]
            first = state.lane.number(len(found))
            made = Batch(state.sid, first, events, payloads, sum(map(len, payloads)))
            state.keep(made)
            return [Fanout([made])]
        lim = self.core.config.limits
        first = state.lane.next_seq
        catchup = Catchup(first, chosen, lim.max_durable_events, lim.max_durable_bytes)
        state.lane.number(len(chosen))
        state.lane.catch_up(catchup.first)
        state.catchup = catchup
        state.keep = lambda batch: self._kept_meanwhile(state, batch)
        return [] if opened else [Progress(state.sid)]

    def _kept_meanwhile(self, state: SubscriberState, batch: Batch) -> bool:
        """A batch numbered for `state` while it catches up: kept behind the history (False
        once it caught up: the lane takes it as any other)."""
        catchup = state.catchup
        if catchup is None or not state.lane.catching_up:
            state.catchup = state.keep = None
            return False
        catchup.keep(batch)
        return True

    def refill(self, state: SubscriberState) -> list[Action]:
        """Events for the room in a catching-up lane, in order."""
        lane, catchup = state.lane, state.catchup
        if catchup is None or lane.spilled_from is None:
            return []
        rows = catchup.read(lane.spilled_from, lane.room(), MAX_BYTES, self._fetch)
        return [refilled(lane, rows)]

    def acked(self, state: SubscriberState, seq: int) -> None:
        """A catching-up subscriber consumed up to `seq` (once it has caught up, what its
        catch-up kept is let go)."""
        assert state.catchup is not None
        if state.lane.catching_up:
            state.catchup.ack(seq)
        else:
            state.catchup = state.keep = None

    def _fetch(self, seqs: list[int]) -> dict[int, Row]:
        """The history's events with these seqs (in increasing order, at least one) that it
        still has."""
        wanted = set(seqs)
        try:
            rows = self.core.log.read(HISTORY, seqs[0], seqs[-1] - seqs[0] + 1, 1 << 62)
        except StorageError as exc:  # found missing: counted lost by the lane
            self.core.storage_errors += 1
            log.error("history: %s", exc)
            return {}
        return {row[0]: row for row in rows if row[0] in wanted}


def _record(stream: int, patterns: tuple[str, ...]) -> StoredDurable:
    """The history's record in the durable log: its stream, and the rules it was kept by."""
    return StoredDurable(HISTORY, "", "", "drop", 0, 0.0, None, None, (), patterns, stream)


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as runs of consecutive ones: (first, last) each."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs
