"""Events numbered for their subscribers: runs of a publish's events, the batches made of them,
and the server's own meta-events.

Pure functions over the broker's state (es.brokerstate). Every event meant for a subscriber takes
the next number of that subscriber's stream (its es.lane.Lane), whether it is then delivered or
dropped; what happens to it next is the lane's and the flow's (es.flow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgpack

from clients.payload import encode_payload
from clients.wire import Format, PubItem, pack_event
from es.actions import Action, Batch, Fanout
from es.brokerstate import BrokerState
from es.state import SubscriberState

__all__ = ["Run", "batch", "everyone", "joined", "meta_event", "numbered"]


@dataclass(slots=True)
class Run:
    """Consecutive events of one publish that go to the same subscribers (`sids`): packed once
    (clients.wire.pack_event), whatever the number of subscribers."""

    sids: frozenset[str]
    events: list[bytes]
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
    together = Run(mine[0].sids, [], [], 0)
    for run in mine:
        together.events += run.events
        together.payloads += run.payloads
        together.size += run.size
    return together


def batch(state: SubscriberState, run: Run, block: bool = True) -> Batch:
    """One EV batch for the subscriber: the events of `run`."""
    return numbered(state, run.events, run.payloads, run.size, block)


def numbered(
    state: SubscriberState,
    events: list[bytes],
    payloads: list[bytes],
    size: int,
    block: bool,
) -> Batch:
    """Take the next sequence numbers of `state`'s stream for `events` (packed) and make their
    batch."""
    if state.resumed:  # the first event since a restart: say that events were lost
        state.resumed = False
        events = [_flagged(events[0], "resumed"), *events[1:]]
    first = state.lane.number(len(events))
    if state.keep is not None:  # a durable subscriber's: in its log before anything is sent
        made = Batch(state.sid, first, events, payloads, size)
        if state.keep(made):
            return made
    blocks = block and state.queue.blocks
    return Batch(state.sid, first, events, payloads, size, blocks, state.queue.max_stall)


def _flagged(packed: bytes, flag: str) -> bytes:
    """A packed event with one more flag set (rare: unpacked and packed again)."""
    subject, time, fmt, *rest = msgpack.unpackb(packed)
    return pack_event(subject, time, fmt, {**(rest[0] if rest else {}), flag: True})


def meta_event(core: BrokerState, subject: str, body: dict[str, Any]) -> list[Action]:
    """A meta-event for whoever subscribed to it, stamped with the request's wall clock. Never
    in block mode: the server must not wait on its own news. Never to a queue group (SPEC 13).
    A node of a cluster names itself in it, and the other nodes get it too (SPEC 15.5)."""
    if core.forward is not None:
        payload = encode_payload({"node": core.node, **body}, Format.MSGPACK)
        core.forward.append(((PubItem((subject,), Format.MSGPACK, payload),), core.wall))
        return meta_fanout(core, subject, payload)
    if not _meta_recipients(core, subject):
        return []  # nobody wants it: not even encoded
    return meta_fanout(core, subject, encode_payload(body, Format.MSGPACK))


def _meta_recipients(core: BrokerState, subject: str) -> frozenset[str]:
    recipients = core.index.recipients(subject)
    if core.group_sids and not recipients.isdisjoint(core.group_sids):
        recipients = recipients.difference(core.group_sids)
    return recipients


def meta_fanout(core: BrokerState, subject: str, payload: bytes) -> list[Action]:
    """A meta-event's payload for its local subscribers (none in a queue group)."""
    recipients = _meta_recipients(core, subject)
    if not recipients:
        return []
    run = Run(recipients, [pack_event(subject, core.wall, Format.MSGPACK)], [payload], len(payload))
    subscribers = core.subscribers
    return [Fanout([batch(subscribers[sid], run, block=False) for sid in recipients])]
