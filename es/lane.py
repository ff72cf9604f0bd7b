"""One subscriber's queue on the server, counted in events, with exact loss accounting.

Pure: no sockets, no clock. The flow (es.flow) offers it numbered batches, tells it of the
subscriber's ACKs, and asks it what to send; it answers with EV messages and LOST notices.

Invariants (proven by tests/unit/test_lane_properties.py):
- Every event numbered for the subscriber (seq 1 to `next_seq - 1` of its stream) is in exactly
  one place: waiting for room (block mode), pending (accepted, not yet sent), in flight (sent, not
  yet acknowledged), acknowledged, or dropped.
- The queue holds at most `window` events, pending plus in flight (0: unbounded). The subscriber
  frees room by acknowledging what it consumed (SPEC 3.7).
- Every dropped event is told to the subscriber exactly once: as the `lost` of the next EV (the
  gap before its first seq, so `lost` always equals the gap), or, when no EV follows because the
  queue drained, in one LOST notice. `handed` is the last seq the subscriber has been told of.
- Nothing newer overtakes a batch waiting for room: while one waits, new events are dropped.
- A durable subscriber's lane (`spill`) never drops or waits for room: what does not fit is
  spilled, kept in its log (es.durablelog) only, from `spilled_from` to the last seq numbered,
  and taken back in order (`refill`) as room comes. Nothing newer overtakes a spilled event.
  While it is detached (its subscriber away), everything spills.
- A lane catching up with history (es.catchup) spills the same way, from the first event
  replayed, until it has taken back everything spilled; then it is an ordinary lane again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from clients.wire import INLINE_BYTES, encode_delivery, encode_loss
from es.actions import Batch, Send

__all__ = ["MAX_BYTES", "MAX_EVENTS", "Lane", "Totals"]

# Events per EV message: enough to make a send's fixed cost small per event, few enough that one
# message is a small part of a default queue (1000 events).
MAX_EVENTS = 256
# Payload bytes per EV message (one larger event still goes alone).
MAX_BYTES = 1 << 20


@dataclass
class Totals:
    """Server-wide counts, kept by every lane (STATS)."""

    delivered: int = 0  # events sent
    messages: int = 0  # EV messages sent: fewer than events when gathered
    dropped: int = 0  # events dropped
    notices: int = 0  # LOST notices sent


class Lane:
    """One subscriber's stream and queue (see the module)."""

    def __init__(self, sid: str, stream: int, window: int, totals: Totals | None = None) -> None:
        self.sid = sid
        self.stream = stream
        self.window = window
        self.totals = totals if totals is not None else Totals()
        self.next_seq = 1
        self.handed = 0  # last seq the subscriber was told of: sent, or reported lost
        self.acked = 0  # highest seq it acknowledged consuming
        self.sent = 0
        self.consumed = 0  # events sent and acknowledged
        self.dropped = 0
        self.reported = 0  # lost events told (EV `lost` plus LOST notices)
        self.pending_events = 0
        self.in_flight = 0
        self.waiting: Batch | None = None
        self.due = 0.0  # when the waiting batch is dropped (monotonic seconds)
        # A stall ran out: publishers no longer wait for it until it acknowledges progress (a
        # dead-slow subscriber costs them one max_stall, not one per publish).
        self.stalled_out = False
        self.linked: bool | None = None  # the connection to its inbox: None until first seen
        self.spill = False  # a durable subscriber's: what does not fit waits in its log
        self.detached = False  # a durable subscriber that is away: everything spills
        self.catching_up = False  # spilling until it has caught up with history (es.catchup)
        self.spilled_from: int | None = None  # the first seq kept in the log only (spill)
        # The last seq whose fate is counted: sent, or dropped (spill: what `refill` finds
        # missing from the log up to here was counted already).
        self.settled = 0
        self._pending: deque[Batch] = deque()
        self._flight: deque[list[int]] = deque()  # [first, last] of each EV sent, oldest first

    @property
    def may_wait(self) -> bool:
        """Whether a publish may wait for room here: the inbox is connected now, and the last
        stall did not run out without progress since."""
        return self.linked is True and not self.stalled_out

    # --- numbering and accepting -------------------------------------------------------------

    def number(self, count: int) -> int:
        """Take `count` sequence numbers; return the first."""
        first = self.next_seq
        self.next_seq += count
        return first

    @property
    def depth(self) -> int:
        """Events in the queue (pending and in flight), waiting for room in it, or spilled."""
        waiting = 0 if self.waiting is None else self.waiting.count
        return self.pending_events + self.in_flight + waiting + self.spilled

    @property
    def spilled(self) -> int:
        """Events kept in the log only (a durable subscriber's), to be taken back in order."""
        return 0 if self.spilled_from is None else self.next_seq - self.spilled_from

    def durable(self, next_seq: int, acked: int, handed: int = 0, settled: int = 0) -> None:
        """Make this a durable subscriber's lane, its stream at `next_seq` with everything up
        to `acked` consumed: what lies between is in its log, to be taken back. `handed` and
        `settled`: where an earlier lane of the stream got (its losses are not counted or told
        again)."""
        self.spill = True
        self.next_seq = next_seq
        self.acked = acked
        self.handed = max(acked, handed)
        self.settled = max(self.handed, settled)
        self._resend()

    def catch_up(self, first: int) -> None:
        """The events from seq `first` on (numbered: a replay of history, es.catchup) are
        taken from elsewhere as room comes, and so is everything numbered after them, until
        the lane has caught up."""
        assert not self.spill, "a lane catches up with one replay at a time"
        self.spill = self.catching_up = True
        self.spilled_from = first

    def _resend(self) -> None:
        """Everything not acknowledged is taken back from the log again, in order: what was
        pending or in flight is dropped from memory (the subscriber drops what it already has)."""
        self._pending.clear()
        self._flight.clear()
        self.pending_events = self.in_flight = 0
        self._spilled_after(self.acked)

    def room(self) -> int:
        """Events the queue can take now (a large number when unbounded)."""
        if self.window == 0:
            return 1 << 62
        return max(0, self.window - self.pending_events - self.in_flight)

    def offer(self, batch: Batch, wait_until: float | None) -> int:
        """Take a numbered batch; return how many of its events were accepted. The rest wait for
        room until `wait_until` when it is given (block mode), else they are dropped."""
        if self.spill:
            return self._spill(batch)
        if self.waiting is not None:
            self._drop(batch.count)
            return 0
        room = self.room()
        rest = self._fit(batch, room)
        if rest is None:
            return batch.count
        if wait_until is None:
            self._drop(rest.count)
        else:
            self.waiting, self.due = rest, wait_until
        return room

    def _spill(self, batch: Batch) -> int:
        """A durable subscriber's batch (already in its log): what fits is taken, the rest and
        everything after it spilled. All of it counts as taken."""
        if self.spilled_from is not None:
            return batch.count
        rest = self._fit(batch, 0 if self.detached else self.room())
        if rest is not None:
            self.spilled_from = rest.first
        return batch.count

    def wants_refill(self) -> bool:
        """Whether spilled events should be taken back from the log now: there is room."""
        spilled = self.spilled_from is not None and self.waiting is None
        return spilled and not self.detached and self.room() > 0

    def refill(self, batch: Batch | None, through: int) -> None:
        """Events taken back from the log, from `spilled_from` on; what the log no longer had
        before them (dropped there) is dropped. None: the log had nothing up to `through`."""
        start = self.spilled_from
        if start is None:
            return
        if batch is None:
            end = min(through, self.next_seq - 1)
            self._drop(max(0, end - max(start, self.settled + 1) + 1))
            self.settled = max(self.settled, end)
            self._spilled_after(end)
            return
        # Seqs up to `settled` were counted already (sent, or dropped): resent ones are
        # counted once, and so are losses found again.
        self._drop(max(0, batch.first - max(start, self.settled + 1)))
        self.settled = max(self.settled, batch.first + batch.count - 1)
        self._accept(batch)
        self._spilled_after(batch.first + batch.count - 1)

    def forget(self, through: int) -> int:
        """The log dropped the spilled events up to seq `through` (its bounds): count them
        dropped. Returns how many."""
        start = self.spilled_from
        if start is None or through < start:
            return 0
        end = min(through, self.next_seq - 1)
        dropped = max(0, end - max(start, self.settled + 1) + 1)  # not those sent before
        self._drop(dropped)
        self.settled = max(self.settled, end)
        self._spilled_after(end)
        return dropped

    def discard(self, start: int) -> int:
        """The log could not keep the events from seq `start` on (a commit failed): drop them
        from the queue, never sent. Returns how many."""
        if not self.spill or start >= self.next_seq:
            return 0
        gone = 0
        while self._pending and self._pending[-1].first >= start:
            batch = self._pending.pop()
            self.pending_events -= batch.count
            gone += batch.count
        if self._pending and self._pending[-1].first + self._pending[-1].count > start:
            last = self._pending.pop()
            head, rest = last.split(start - last.first)
            assert head is not None
            self._pending.append(head)
            self.pending_events -= rest.count
            gone += rest.count
        if self.spilled_from is not None and self.spilled_from >= start:
            gone += self.next_seq - self.spilled_from
            self.spilled_from = None
        if self.spilled_from is None:
            self.settled = self.next_seq - 1
        # Spilled from before `start`: the log lacks the events from `start` on, which are found
        # missing, and counted, when they are taken back (`refill`).
        self._drop(gone)
        return gone

    def detach(self) -> None:
        """The durable subscriber is away: nothing is sent until it comes back, on a new lane
        (everything not acknowledged is in its log)."""
        self.detached = True
        self.linked = False
        self._resend()

    def _spilled_after(self, seq: int) -> None:
        self.spilled_from = seq + 1 if seq + 1 < self.next_seq else None
        if self.spilled_from is None and self.catching_up:  # caught up: an ordinary lane again
            self.spill = self.catching_up = False

    def ack(self, seq: int) -> bool:
        """The subscriber consumed everything up to `seq`: free its room. False for an ACK that
        says nothing new (old, or beyond what was sent). A durable subscriber's may go beyond:
        it had events of its stream before this lane sent them (SPEC 7.10)."""
        durable = self.spill and not self.catching_up
        if durable and self.acked < seq and self.handed < seq < self.next_seq:
            self._had(seq)
        if not self.acked < seq <= self.handed:
            return False
        self.acked = seq
        flight = self._flight
        freed = 0
        while flight and flight[0][1] <= seq:
            first, last = flight.popleft()
            freed += last - first + 1
        if flight and flight[0][0] <= seq:
            freed += seq - flight[0][0] + 1
            flight[0][0] = seq + 1
        self.in_flight -= freed
        self.consumed += freed
        self.stalled_out = False
        return True

    def _had(self, seq: int) -> None:
        """A durable subscriber had the events up to `seq` already (from an earlier lane of its
        stream): they are not sent again."""
        pending = self._pending
        while pending and pending[0].first <= seq:
            batch = pending.popleft()
            if batch.first + batch.count - 1 > seq:
                _, rest = batch.split(seq - batch.first + 1)
                pending.appendleft(rest)
                self.pending_events -= seq - batch.first + 1
                break
            self.pending_events -= batch.count
        if self.spilled_from is not None and self.spilled_from <= seq:
            self._spilled_after(seq)
        self.handed = seq
        self.settled = max(self.settled, seq)

    def reconnected(self) -> None:
        """The connection to the inbox came back after a loss: what was in flight may never
        arrive (ZeroMQ keeps what it had not written yet, not what the kernel held). It no longer
        takes room; the subscriber sees any such loss as a gap in seq."""
        self._flight.clear()
        self.in_flight = 0
        if self.spill and not self.catching_up:  # a durable subscriber's are all in its log
            self._resend()

    def watched(self) -> bool:
        """Whether the subscriber's ACKs should be read as soon as they come: the queue is half
        full or more (room depends on them), or losses wait to be told once it drains."""
        if self.waiting is not None:
            return True
        if self.in_flight == 0:
            return False
        return 2 * self.in_flight >= self.window > 0 or self.dropped > self.reported

    def resume(self) -> int:
        """Move what waits into the queue as far as room allows; return how many events moved."""
        if self.waiting is None:
            return 0
        room, count = self.room(), self.waiting.count
        self.waiting = self._fit(self.waiting, room)
        return count if self.waiting is None else room

    def expire(self) -> int:
        """The waiting batch's time ran out: drop it; return how many events were dropped."""
        if self.waiting is None:
            return 0
        count, self.waiting = self.waiting.count, None
        self._drop(count)
        self.stalled_out = True
        return count

    # --- sending -------------------------------------------------------------------------------

    def take(self, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> list[Send]:
        """What to send now: the pending events in EV messages of at most `max_events` events
        and `max_bytes` of payload, then a LOST notice if the queue drained with losses untold."""
        sends: list[Send] = []
        if self.detached:
            return sends
        while self._pending:
            sends.append(self._message(max_events, max_bytes))
        drained = self.waiting is None and self.in_flight == 0 and self.spilled_from is None
        if drained and self.handed < self.next_seq - 1:
            sends.append(self._notice())
        return sends

    def refuse(self, sends: list[Send]) -> None:
        """The shell could not send `sends`, the last ones `take` returned for this lane, in
        order: their events count as dropped, to be told like any other loss."""
        for send in reversed(sends):
            if send.count:
                first, last = self._flight.pop()
                assert last - first + 1 == send.count, "refused sends must be the newest"
                self.in_flight -= send.count
                self.sent -= send.count
                self.totals.delivered -= send.count
                self.totals.messages -= 1
                if self.spill:  # still in the log: taken back from there, in order
                    self.spilled_from = first
                else:
                    self._drop(send.count)
            else:
                self.totals.notices -= 1
            self.reported -= send.lost
            self.handed = send.before

    # --- internals -----------------------------------------------------------------------------

    def _fit(self, batch: Batch, room: int) -> Batch | None:
        """Take as much of `batch` as `room` allows; the rest (None when it all fit)."""
        if room >= batch.count:
            self._accept(batch)
            return None
        head, rest = batch.split(room)
        if head is not None:
            self._accept(head)
        return rest

    def _accept(self, batch: Batch) -> None:
        self._pending.append(batch)
        self.pending_events += batch.count

    def _drop(self, count: int) -> None:
        self.dropped += count
        self.totals.dropped += count

    def _message(self, max_events: int, max_bytes: int) -> Send:
        """One EV from the head of the pending events: consecutive seqs, within the limits."""
        head = self._pending.popleft()
        fit = head.fitting(max_events, max_bytes)
        if fit < head.count:
            part, rest = head.split(fit)
            assert part is not None
            head = part
            self._pending.appendleft(rest)
        first, events, payloads, size = head.first, head.events, head.payloads, head.size
        own = False  # a batch's lists may be shared with other lanes: copy before extending
        while self._pending:
            after = self._pending[0]
            fits = len(events) + after.count <= max_events and size + after.size <= max_bytes
            if not fits or after.first != first + len(events):
                break
            self._pending.popleft()
            if not own:
                events, payloads, own = list(events), list(payloads), True
            events += after.events
            payloads += after.payloads
            size += after.size
        count = len(events)
        last = first + count - 1
        lost = max(0, first - self.handed - 1)  # 0 for a durable subscriber's events sent again
        before, self.handed = self.handed, max(self.handed, last)
        self.settled = max(self.settled, last)
        self._flight.append([first, last])
        self.pending_events -= count
        self.in_flight += count
        self.sent += count
        self.reported += lost
        self.totals.delivered += count
        self.totals.messages += 1
        inline = size <= INLINE_BYTES
        frames = encode_delivery(self.sid, self.stream, lost, first, events, payloads, inline)
        return Send(self.sid, frames, count, lost, before)

    def _notice(self) -> Send:
        last = self.next_seq - 1
        self.settled = max(self.settled, last)
        lost = last - self.handed
        before, self.handed = self.handed, last
        self.reported += lost
        self.totals.notices += 1
        return Send(self.sid, encode_loss(self.sid, self.stream, lost, last), 0, lost, before)
