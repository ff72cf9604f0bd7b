"""Publishing: a PUB checked, its events numbered for each subscriber, retained, announced.

The hot path: everything here runs for every event. A publish's events are grouped in runs of
consecutive events that go to the same subscribers (es.delivery); usually there is one, which
every subscriber's batch then shares. All events of one publish carry the same server time.
"""

from __future__ import annotations

from clients.errors import ErrorCode
from clients.wire import PubItem, Publish
from es import meta
from es.actions import Action, Confirm, Fanout
from es.brokerstate import BrokerState
from es.checks import check_subject, refuse
from es.daemon.patterns import fold
from es.delivery import Run, batch, everyone, joined, meta_event
from es.records import StoredEvent
from es.retained import Retained

__all__ = ["Publishing"]

# Connections remembered as having published (for $es.publisher.seen), the first seen forgotten
# first.
_PUBLISHERS_KEPT = 10_000


class Publishing:
    """The broker's publish path, over its state."""

    def __init__(self, core: BrokerState) -> None:
        self.core = core

    def publish(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        """A PUB: checked whole first, then its retained events stored, then its fan-out."""
        core = self.core
        _check(request, core)
        retaining = [i for i in request.items if i.retain]
        if retaining:  # stored before anything changes: a failed write fails the publish
            core.write(core.store.write_retained, _stored(retaining, now))
        core.published += 1
        runs = self._runs(request.items, now)
        wanted = {sid: joined(runs, sid) for sid in everyone(runs)}
        batches = [batch(core.subscribers[sid], run, now) for sid, run in wanted.items()]
        confirms = (Confirm(peer, request.rid, frozenset(wanted)),) if request.confirm else ()
        fanout = Fanout(batches, confirms)
        if retaining:
            self._retain(retaining, now)
        return [fanout, *self._seen(peer)]

    def _runs(self, items: tuple[PubItem, ...], now: float) -> list[Run]:
        """A publish's events in runs of consecutive events that go to the same subscribers.
        Usually there is one run, which every subscriber's batch then shares."""
        core = self.core
        runs: list[Run] = []
        for item in items:
            for subject in item.subjects:
                core.events_in += 1
                core.note_subject(subject, now)
                recipients = core.index.recipients(subject)
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
            expires = None if item.ttl is None else self.core.mono + item.ttl
            for subject in item.subjects:
                self.core.retained.put(Retained(subject, item.fmt, item.payload, now, expires))

    def _seen(self, peer: bytes) -> list[Action]:
        """$es.publisher.seen for a connection's first publish."""
        publishers = self.core.publishers
        if peer in publishers:
            return []
        publishers[peer] = None
        while len(publishers) > _PUBLISHERS_KEPT:
            publishers.popitem(last=False)
        return meta_event(self.core, meta.PUBLISHER_SEEN, {"peer": peer.hex()})


def _stored(items: list[PubItem], now: float) -> list[tuple[str, StoredEvent | None]]:
    """What storage keeps for retained items published at `now` (None: forget the key)."""
    changes: list[tuple[str, StoredEvent | None]] = []
    for item in items:
        wall = None if item.ttl is None else now + item.ttl
        for subject in item.subjects:
            stored = StoredEvent(subject, item.fmt, item.payload, now, wall)
            changes.append((fold(subject), stored if item.payload else None))
    return changes


def _check(request: Publish, core: BrokerState) -> None:
    """Refuse the whole publish if any of it is over a limit or not allowed (SPEC 9). The hot
    path: one loop over the items, no call per item."""
    limits = core.config.limits
    if len(request.items) > limits.max_items_per_publish:
        raise refuse(ErrorCode.LIMIT_EXCEEDED, f"more than {limits.max_items_per_publish} events")
    if sum(len(item.payload) for item in request.items) > limits.max_publish_bytes:
        raise refuse(
            ErrorCode.TOO_LARGE, f"one publish carries over {limits.max_publish_bytes} bytes"
        )
    most_subjects, most_bytes = limits.max_subjects_per_item, limits.max_message_bytes
    for item in request.items:
        if not item.subjects:
            raise refuse(ErrorCode.BAD_SUBJECT, "an event needs at least one subject")
        if len(item.subjects) > most_subjects:
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED, f"more than {most_subjects} subjects in one publish"
            )
        if len(item.payload) > most_bytes:
            raise refuse(ErrorCode.TOO_LARGE, f"message larger than {most_bytes} bytes")
        for subject in item.subjects:
            check_subject(subject, limits)
            if subject[:1] == "$" and meta.is_reserved(subject):
                raise refuse(
                    ErrorCode.BAD_SUBJECT,
                    f"subjects starting {meta.RESERVED_PREFIX!r} are the server's own",
                )
    changes = [(s, len(i.payload)) for i in request.items if i.retain for s in i.subjects]
    if changes and not core.retained.fits(changes):
        raise refuse(
            ErrorCode.LIMIT_EXCEEDED,
            f"retained events would exceed {core.retained.max_count} or "
            f"{core.retained.max_bytes} bytes",
        )
