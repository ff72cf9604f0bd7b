"""Publishing: a PUB checked, its events numbered for each subscriber, retained, announced.

A mixin of the Broker, kept apart because it is the hot path: everything here runs for every
event. A publish's events are grouped in runs of consecutive events that go to the same
subscribers; usually there is one, which every subscriber's batch then shares.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Any, TypeVar

from clients.errors import ErrorCode
from clients.payload import encode_payload
from clients.wire import Format, PubItem, Publish
from es import meta
from es.actions import Action, Batch, Confirm, Fanout
from es.checks import check_subject, refuse
from es.daemon.patterns import fold
from es.introspection import Introspection
from es.records import Storage, StorageError, StoredEvent
from es.retained import Retained
from es.state import SubscriberState

__all__ = ["Publishing", "Run"]

log = logging.getLogger("es.broker")

_T = TypeVar("_T")

# Connections remembered as having published (for $es.publisher.seen), the first seen forgotten
# first.
_PUBLISHERS_KEPT = 10_000


@dataclass(slots=True)
class Run:
    """Consecutive events of one publish that go to the same subscribers (`sids`)."""

    sids: frozenset[str]
    subjects: list[str]
    fmts: list[int]
    payloads: list[bytes]
    size: int  # payload bytes

    def add(self, subject: str, fmt: int, payload: bytes) -> None:
        """One more event for the same subscribers."""
        self.subjects.append(subject)
        self.fmts.append(fmt)
        self.payloads.append(payload)
        self.size += len(payload)


def _everyone(runs: list[Run]) -> frozenset[str]:
    if len(runs) == 1:
        return runs[0].sids
    return frozenset().union(*(run.sids for run in runs))


def _joined(runs: list[Run], sid: str) -> Run:
    """The events of `runs` that go to `sid`, in order: the one run itself when there is one."""
    if len(runs) == 1:
        return runs[0]
    mine = [run for run in runs if sid in run.sids]
    if len(mine) == 1:
        return mine[0]
    joined = Run(mine[0].sids, [], [], [], 0)
    for run in mine:
        joined.subjects += run.subjects
        joined.fmts += run.fmts
        joined.payloads += run.payloads
        joined.size += run.size
    return joined


class Publishing(Introspection):
    """The broker's publish path. Expects the broker's attributes (see Introspection)."""

    _publishers: OrderedDict[bytes, None]
    _wall: float
    store: Storage
    storage_errors: int

    def _write(self, write: Callable[[_T], None], arg: _T) -> None:
        """A write a request depends on: if it fails, the request fails with STORAGE_FAILED
        before anything changed in memory (callers write first)."""
        try:
            write(arg)
        except StorageError as exc:
            self.storage_errors += 1
            log.error("%s", exc)
            raise refuse(ErrorCode.STORAGE_FAILED, f"not stored: {exc}") from None

    def _write_quietly(self, write: Callable[[_T], None], arg: _T) -> None:
        """A write no request waits on (a removal, an expiry): a failure is logged and counted;
        what storage keeps may then be stale, and a restart may bring back what was removed
        (it is removed again the same way)."""
        try:
            write(arg)
        except StorageError as exc:
            self.storage_errors += 1
            log.error("%s", exc)

    def _publish(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        limits = self.config.limits
        if len(request.items) > limits.max_items_per_publish:
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED, f"more than {limits.max_items_per_publish} events"
            )
        if sum(len(item.payload) for item in request.items) > limits.max_publish_bytes:
            raise refuse(
                ErrorCode.TOO_LARGE, f"one publish carries over {limits.max_publish_bytes} bytes"
            )
        for item in request.items:
            if not item.subjects:
                raise refuse(ErrorCode.BAD_SUBJECT, "an event needs at least one subject")
            if len(item.subjects) > limits.max_subjects_per_item:
                raise refuse(
                    ErrorCode.LIMIT_EXCEEDED,
                    f"more than {limits.max_subjects_per_item} subjects in one publish",
                )
            if len(item.payload) > limits.max_message_bytes:
                raise refuse(
                    ErrorCode.TOO_LARGE, f"message larger than {limits.max_message_bytes} bytes"
                )
            for subject in item.subjects:
                check_subject(subject, self.config.limits)
                if subject[:1] == "$" and meta.is_reserved(subject):
                    raise refuse(
                        ErrorCode.BAD_SUBJECT,
                        f"subjects starting {meta.RESERVED_PREFIX!r} are the server's own",
                    )
        retaining = [i for i in request.items if i.retain]
        changes = [(s, len(i.payload)) for i in retaining for s in i.subjects]
        if changes and not self._retained.fits(changes):
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED,
                f"retained events would exceed {self._retained.max_count} or "
                f"{self._retained.max_bytes} bytes",
            )
        if retaining:  # stored before anything changes: a failed write fails the publish
            self._write(self.store.write_retained, self._stored(retaining, now))
        self.published += 1
        runs = self._runs(request.items, now)
        wanted = {sid: _joined(runs, sid) for sid in _everyone(runs)}
        batches = [self._batch(sid, run, now) for sid, run in wanted.items()]
        confirms = (Confirm(peer, request.rid, frozenset(wanted)),) if request.confirm else ()
        fanout = Fanout(batches, confirms)
        if retaining:
            self._retain(retaining, now)
        return [fanout, *self._seen(peer)]

    def _runs(self, items: tuple[PubItem, ...], now: float) -> list[Run]:
        """A publish's events in runs of consecutive events that go to the same subscribers.
        Usually there is one run, which every subscriber's batch then shares."""
        runs: list[Run] = []
        for item in items:
            for subject in item.subjects:
                self.events_in += 1
                self._note_subject(subject, now)
                recipients = self.index.recipients(subject)
                if not recipients:
                    continue
                if runs and runs[-1].sids is recipients:  # the cache hands out one set per key
                    runs[-1].add(subject, item.fmt, item.payload)
                else:
                    runs.append(
                        Run(recipients, [subject], [item.fmt], [item.payload], len(item.payload))
                    )
        return runs

    def _retain(self, items: list[PubItem], now: float) -> None:
        """Keep (or clear) retained events in memory."""
        for item in items:
            expires = None if item.ttl is None else self._mono + item.ttl
            for subject in item.subjects:
                self._retained.put(Retained(subject, item.fmt, item.payload, now, expires))

    @staticmethod
    def _stored(items: list[PubItem], now: float) -> list[tuple[str, StoredEvent | None]]:
        """What storage keeps for retained items published at `now` (None: forget the key)."""
        changes: list[tuple[str, StoredEvent | None]] = []
        for item in items:
            wall = None if item.ttl is None else now + item.ttl
            for subject in item.subjects:
                stored = StoredEvent(subject, item.fmt, item.payload, now, wall)
                changes.append((fold(subject), stored if item.payload else None))
        return changes

    def _seen(self, peer: bytes) -> list[Action]:
        """$es.publisher.seen for a connection's first publish."""
        if peer in self._publishers:
            return []
        self._publishers[peer] = None
        while len(self._publishers) > _PUBLISHERS_KEPT:
            self._publishers.popitem(last=False)
        return self._meta(meta.PUBLISHER_SEEN, {"peer": peer.hex()})

    def _batch(self, sid: str, run: Run, now: float, block: bool = True) -> Batch:
        """One EV batch for `sid`: the events of `run`, published at `now`."""
        state = self._subscribers[sid]
        first, count = state.lane.next_seq, len(run.subjects)
        numbers = range(first, first + count)
        metas = list(zip(numbers, run.subjects, repeat(now, count), run.fmts, strict=True))
        return self._numbered(state, metas, run.payloads, run.size, block)

    def _numbered(
        self,
        state: SubscriberState,
        metas: list[tuple[Any, ...]],
        payloads: list[bytes],
        size: int,
        block: bool,
    ) -> Batch:
        """Take the next sequence numbers of `state`'s stream for `metas` (numbered from its
        lane's next_seq) and make their batch."""
        if state.resumed:  # the first event since a restart: say that events were lost
            state.resumed = False
            head = metas[0]
            marks = {**(head[4] if len(head) > 4 else {}), "resumed": True}
            metas[0] = (*head[:4], marks)
        state.lane.number(len(metas))
        blocks = block and state.policy == "block"
        return Batch(state.sid, metas, payloads, size, blocks, state.max_stall)

    def _meta(self, subject: str, body: dict[str, Any]) -> list[Action]:
        """A meta-event for whoever subscribed to it. Never in block mode: the server must not
        wait on its own news."""
        recipients = self.index.recipients(subject)
        if not recipients:
            return []
        payload = encode_payload(body, Format.MSGPACK)
        run = Run(recipients, [subject], [Format.MSGPACK], [payload], len(payload))
        return [Fanout([self._batch(sid, run, self._wall, block=False) for sid in recipients])]
