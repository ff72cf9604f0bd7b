"""Events numbered for their subscribers: runs of a publish's events, the batches made of them,
and the server's own meta-events.

Pure functions over the broker's state (es.brokerstate). Every event meant for a subscriber takes
the next number of that subscriber's stream (its es.lane.Lane), whether it is then delivered or
dropped; what happens to it next is the lane's and the flow's (es.flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Any

from clients.payload import encode_payload
from clients.wire import Format
from es.actions import Action, Batch, Fanout
from es.brokerstate import BrokerState
from es.state import SubscriberState

__all__ = ["Run", "batch", "everyone", "joined", "meta_event", "numbered"]


@dataclass(slots=True)
class Run:
    """Consecutive events of one publish that go to the same subscribers (`sids`)."""

    sids: frozenset[str]
    subjects: list[str]
    fmts: list[int]
    payloads: list[bytes]
    size: int  # payload bytes


def everyone(runs: list[Run]) -> frozenset[str]:
    """Every subscriber any of `runs` goes to."""
    if len(runs) == 1:
        return runs[0].sids
    return frozenset().union(*(run.sids for run in runs))


def joined(runs: list[Run], sid: str) -> Run:
    """The events of `runs` that go to `sid`, in order: the one run itself when there is one."""
    if len(runs) == 1:
        return runs[0]
    mine = [run for run in runs if sid in run.sids]
    if len(mine) == 1:
        return mine[0]
    together = Run(mine[0].sids, [], [], [], 0)
    for run in mine:
        together.subjects += run.subjects
        together.fmts += run.fmts
        together.payloads += run.payloads
        together.size += run.size
    return together


def batch(state: SubscriberState, run: Run, now: float, block: bool = True) -> Batch:
    """One EV batch for the subscriber: the events of `run`, published at `now`."""
    first, count = state.lane.next_seq, len(run.subjects)
    numbers = range(first, first + count)
    metas = list(zip(numbers, run.subjects, repeat(now, count), run.fmts, strict=True))
    return numbered(state, metas, run.payloads, run.size, block)


def numbered(
    state: SubscriberState,
    metas: list[tuple[Any, ...]],
    payloads: list[bytes],
    size: int,
    block: bool,
) -> Batch:
    """Take the next sequence numbers of `state`'s stream for `metas` (numbered from its lane's
    next_seq) and make their batch."""
    if state.resumed:  # the first event since a restart: say that events were lost
        state.resumed = False
        head = metas[0]
        marks = {**(head[4] if len(head) > 4 else {}), "resumed": True}
        metas[0] = (*head[:4], marks)
    state.lane.number(len(metas))
    blocks = block and state.queue.blocks
    return Batch(state.sid, metas, payloads, size, blocks, state.queue.max_stall)


def meta_event(core: BrokerState, subject: str, body: dict[str, Any]) -> list[Action]:
    """A meta-event for whoever subscribed to it, stamped with the request's wall clock. Never
    in block mode: the server must not wait on its own news."""
    recipients = core.index.recipients(subject)
    if not recipients:
        return []
    payload = encode_payload(body, Format.MSGPACK)
    run = Run(recipients, [subject], [Format.MSGPACK], [payload], len(payload))
    subscribers = core.subscribers
    return [Fanout([batch(subscribers[sid], run, core.wall, block=False) for sid in recipients])]
