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
        """Events in the queue (pending and in flight) or waiting for room in it."""
        waiting = 0 if self.waiting is None else self.waiting.count
        return self.pending_events + self.in_flight + waiting

    def room(self) -> int:
        """Events the queue can take now (a large number when unbounded)."""
        if self.window == 0:
            return 1 << 62
        return max(0, self.window - self.pending_events - self.in_flight)

    def offer(self, batch: Batch, wait_until: float | None) -> int:
        """Take a numbered batch; return how many of its events were accepted. The rest wait for
        room until `wait_until` when it is given (block mode), else they are dropped."""
        if self.waiting is not None:
            self._drop(batch.count)
            return 0
        room = self.room()
        if room >= batch.count:
            self._accept(batch)
            return batch.count
        head, rest = batch.split(room)
        if head is not None:
            self._accept(head)
        if wait_until is None:
            self._drop(rest.count)
        else:
            self.waiting, self.due = rest, wait_until
        return room

    def ack(self, seq: int) -> bool:
        """The subscriber consumed everything up to `seq`: free its room. False for an ACK that
        says nothing new (old, or beyond what was sent)."""
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

    def reconnected(self) -> None:
        """The connection to the inbox came back after a loss: what was in flight may never
        arrive (ZeroMQ keeps what it had not written yet, not what the kernel held). It no longer
        takes room; the subscriber sees any such loss as a gap in seq."""
        self._flight.clear()
        self.in_flight = 0

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
        room = self.room()
        if room >= self.waiting.count:
            batch, self.waiting = self.waiting, None
            self._accept(batch)
            return batch.count
        head, rest = self.waiting.split(room)
        if head is not None:
            self._accept(head)
        self.waiting = rest
        return room

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
        while self._pending:
            sends.append(self._message(max_events, max_bytes))
        if self.waiting is None and self.in_flight == 0 and self.handed < self.next_seq - 1:
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
                self._drop(send.count)
            else:
                self.totals.notices -= 1
            self.reported -= send.lost
            self.handed = send.before

    # --- internals -----------------------------------------------------------------------------

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
        lost = first - self.handed - 1
        before, self.handed = self.handed, last
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
        lost = last - self.handed
        before, self.handed = self.handed, last
        self.reported += lost
        self.totals.notices += 1
        return Send(self.sid, encode_loss(self.sid, self.stream, lost, last), 0, lost, before)
