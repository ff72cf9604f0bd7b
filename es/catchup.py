"""A subscriber catching up with the history it asked for (SPEC 7.11): where the events of its
stream wait until its queue has room for them.

Pure: no sockets, no storage. When a subscription asks for history, the events chosen are
numbered in the subscriber's stream at once, but not copied: the catch-up holds their seqs in
the history and reads them from there as room comes (es.lane's spill mode, as for a durable
subscriber's log). Events numbered for the subscriber meanwhile wait here behind them, so that
nothing newer overtakes the history.

Invariants (tests/unit/test_catchup.py):
- Seqs `first` to `end - 1` of the stream are the history's events `seqs`, in order; the events
  numbered after them are kept in `live`, at most `max_events` of them and `max_bytes` bytes:
  the others, and history events the history dropped before they were read, are missing, and
  the lane counts them lost when it finds them missing (es.lane.Lane.refill).
- `read` returns rows in increasing seq order, and at least one whenever any is kept at or
  after its start.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable

import msgpack

from clients.wire import pack_event
from es.actions import Batch
from es.durablelog import Row, _Kept, fitting, row_size

__all__ = ["Catchup", "Fetch", "replayed"]

Fetch = Callable[[list[int]], dict[int, Row]]
"""Reads history events by seq: those it still has, by seq."""

# History seqs looked up at once.
_LOOKUP = 4096


class Catchup:
    """One subscriber's replay of the history, then what was numbered for it meanwhile."""

    def __init__(self, first: int, seqs: list[int], max_events: int, max_bytes: int) -> None:
        self.first = first
        self.seqs = array("q", seqs)
        self.live = _Kept()
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.missed = 0  # live events not kept: past the bounds

    @property
    def end(self) -> int:
        """The stream's seq after the last replayed event."""
        return self.first + len(self.seqs)

    def keep(self, batch: Batch) -> None:
        """Keep a batch numbered for the subscriber while it catches up, as far as the bounds
        allow (what does not fit is missing, and so counted lost)."""
        live = self.live.backlog
        rows: list[Row] = []
        for i, (event, payload) in enumerate(zip(batch.events, batch.payloads, strict=True)):
            row: Row = (batch.first + i, event, payload, 0.0)
            full = live.count + len(rows) >= self.max_events
            if full or live.size + row_size(row) > self.max_bytes:
                self.missed += batch.count - i
                break
            live.size += row_size(row)
            rows.append(row)
        if rows:
            self.live.seqs += [row[0] for row in rows]
            self.live.rows += rows
            live.count += len(rows)

    def ack(self, seq: int) -> None:
        """The subscriber consumed everything up to `seq`: those live events are not needed
        again."""
        self.live.cut(0, seq)

    def read(self, start: int, most: int, most_bytes: int, fetch: Fetch) -> list[Row]:
        """The kept events from seq `start` on, oldest first: at most `most`, and `most_bytes`
        of payload (one larger event still comes alone). History events come flagged
        `replayed`."""
        rows: list[Row] = []
        i = max(0, start - self.first)
        while i < len(self.seqs) and len(rows) < most:
            wanted = list(self.seqs[i : i + min(_LOOKUP, most - len(rows))])
            found = fetch(wanted)
            for k, seq in enumerate(wanted):
                row = found.get(seq)
                if row is not None:
                    rows.append((self.first + i + k, replayed(row[1]), row[2], row[3]))
            i += len(wanted)
        if len(rows) < most and (rows or i >= len(self.seqs)):
            live = self.live
            j = bisect.bisect_left(live.seqs, max(start, self.end))
            rows += live.rows[j : j + most - len(rows)]
        return fitting(rows, most_bytes)


def replayed(packed: bytes) -> bytes:
    """A packed event (clients.wire.pack_event) flagged `replayed`."""
    subject, time, fmt, *rest = msgpack.unpackb(packed)
    return pack_event(subject, time, fmt, {**(rest[0] if rest else {}), "replayed": True})
