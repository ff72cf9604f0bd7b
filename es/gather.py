"""Gathering: the fan-outs of consecutive publishes, merged into one batch per subscriber.

Under load the server reads many publishes in one turn of its loop; sending one EV message per
publish and subscriber would cost a ZeroMQ send each. The shell gathers them instead and sends
once per subscriber when the turn ends. An idle server reads one publish per turn, so gathering
never delays an event: it only coalesces what had already arrived.

Invariants:
- A subscriber's merged batch holds its events in the order they were numbered, with no gap:
  nothing is sent between the publishes that are merged, so each next batch starts where the
  last one ended, with the same `lost`.
- A merged batch stays within `max_events` events and `max_bytes` of payload, except that one
  publish's own batch is never split. When a batch would grow past them, everything gathered is
  handed back to be sent first (order across subscribers does not matter; within one it holds).
- Confirmations travel with the events they confirm.
"""

from __future__ import annotations

from es.actions import Batch, Confirm, Fanout

__all__ = ["MAX_EVENTS", "Gather"]

# Events per merged EV message: enough to make a send's fixed cost small per event, few enough
# that a subscriber's queue (counted in messages by ZeroMQ) stays a bounded number of events.
MAX_EVENTS = 256
MAX_BYTES = 1 << 20


class Gather:
    """The fan-outs gathered in one turn, one batch per subscriber (see the module)."""

    def __init__(self, max_events: int = MAX_EVENTS, max_bytes: int = MAX_BYTES) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._batches: dict[str, Batch] = {}
        self._confirms: list[Confirm] = []

    def __bool__(self) -> bool:
        return bool(self._batches or self._confirms)

    def add(self, fanout: Fanout) -> Fanout | None:
        """Take in a publish's fan-out. Returns what was gathered before it when the two cannot
        merge (send that first), else None."""
        ready = None
        if not all(self._fits(batch) for batch in fanout.batches):
            ready = self.take()
        for batch in fanout.batches:
            held = self._batches.get(batch.sid)
            if held is None:
                self._batches[batch.sid] = Batch(
                    batch.sid,
                    batch.stream,
                    batch.lost,
                    list(batch.metas),
                    list(batch.payloads),
                    batch.block,
                    batch.max_stall,
                    batch.size,
                )
            else:
                held.metas.extend(batch.metas)
                held.payloads.extend(batch.payloads)
                held.block = held.block or batch.block
                held.max_stall = batch.max_stall
                held.size += batch.size
        self._confirms.extend(fanout.confirms)
        return ready

    def _fits(self, batch: Batch) -> bool:
        held = self._batches.get(batch.sid)
        if held is None:
            return True
        if held.stream != batch.stream or held.last_seq + 1 != batch.metas[0][0]:
            return False  # cannot happen while nothing is sent in between; never merge then
        fits_bytes = held.size + batch.size <= self.max_bytes
        return held.count + batch.count <= self.max_events and fits_bytes

    def take(self) -> Fanout | None:
        """Everything gathered, as one fan-out; None if there is nothing."""
        if not self:
            return None
        fanout = Fanout(list(self._batches.values()), tuple(self._confirms))
        self._batches, self._confirms = {}, []
        return fanout
