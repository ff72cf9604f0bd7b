"""Publishing: a PUB checked, its events numbered for each subscriber, retained, announced.

The hot path: everything here runs for every event. A publish's events are grouped in runs of
consecutive events that go to the same subscribers (es.delivery); usually there is one, which
every subscriber's batch then shares. All events of one publish carry the same server time.
"""

from __future__ import annotations

from clients.errors import ErrorCode
from clients.wire import PubItem, Publish, pack_event
from es import meta
from es.actions import Action, Confirm, Fanout
from es.brokerstate import BrokerState
from es.checks import check_subject, refuse
from es.config import Limits
from es.daemon.patterns import fold
from es.delivery import Run, batch, everyone, joined, meta_event
from es.durables import Durables
from es.grouping import PREFIX, Groups
from es.records import StoredEvent
from es.replays import Marks, Replays
from es.retained import Retained

__all__ = ["Publishing"]

# Connections remembered as having published (for $es.publisher.seen), the first seen forgotten
# first.
_PUBLISHERS_KEPT = 10_000


class Publishing:
    """The broker's publish path, over its state."""

    def __init__(
        self, core: BrokerState, durables: Durables, replays: Replays, groups: Groups
    ) -> None:
        self.core = core
        self.durables = durables
        self.replays = replays
        self.groups = groups

    def publish(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        """A PUB: checked whole first (durable subscribers' logs too), then its retained events
        stored, then its fan-out."""
        core = self.core
        items = request.items
        if (
            len(items) == 1
            and len(items[0].subjects) == 1
            and not items[0].retain
            and not (core.durable_sids or core.group_sids or core.history.rules)
        ):
            return self._one(peer, request, items[0], now)
        return self.general(peer, request, now)

    def check(self, request: Publish) -> None:
        """Refuse the whole publish (RequestError) if any of it is over a limit or not allowed
        (SPEC 9), as `publish` would, without taking it."""
        _check(request, [i for i in request.items if i.retain], self.core)

    def _one(self, peer: bytes, request: Publish, item: PubItem, now: float) -> list[Action]:
        """The hot path, one plain event on one subject, with no durable subscriber, queue group
        or history rule on the server: what `general` does, without its loops and plans (a
        property test holds the two equal)."""
        core = self.core
        subject, payload = item.subjects[0], item.payload
        limits = core.config.limits
        if len(payload) > limits.max_message_bytes or len(payload) > limits.max_publish_bytes:
            _check(request, [], core)  # refused, in the words and order of the general path
        if not (0 < len(subject) <= limits.max_subject_bytes // 4 and subject[0] != "$"):
            _check_subjects(item.subjects, limits)
        recipients = core.index.recipients(subject)
        core.published += 1
        core.events_in += 1
        core.note_subject(subject, now)
        batches = []
        if recipients:
            run = Run(recipients, [pack_event(subject, now, item.fmt)], [payload], len(payload))
            subscribers = core.subscribers
            batches = [batch(subscribers[sid], run) for sid in recipients]
        confirms = (Confirm(peer, request.rid, recipients, 0),) if request.confirm else ()
        return [Fanout(batches, confirms), *self._seen(peer)]

    def general(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        """Any publish, the hot path's cases included."""
        return [*self.fan(peer, request, now), *self._seen(peer)]

    def fan(self, peer: bytes, request: Publish, now: float) -> list[Action]:
        """A publish checked, stored, numbered and fanned out: all of `general` but the notice
        of a new publisher (events from other nodes of a cluster come this way)."""
        core = self.core
        retaining = [i for i in request.items if i.retain]
        _check(request, retaining, core)
        stretches: list[tuple[str, int]] = []
        marks = self.replays.mark(request.items, now) if core.history.rules else None
        runs = self._runs(request.items, now, stretches, marks)
        everyone_ = everyone(runs)
        groups = core.group_sids.intersection(everyone_) if core.group_sids else None
        if groups:  # queue groups are not subscribers: their events go to one member each
            everyone_ = everyone_.difference(groups)
        durable = bool(core.durable_sids) and not core.durable_sids.isdisjoint(everyone_)
        plan = self.durables.plan(runs, everyone_) if durable else None
        group_drops = self.groups.plan(runs, groups) if groups else None
        if retaining:  # stored before anything changes: a failed write fails the publish
            core.write(core.store.write_retained, _stored(retaining, now))
        core.published += 1
        core.events_in += sum([len(item.subjects) for item in request.items])
        note = core.note_subject
        for subject, events in stretches:
            note(subject, now, events)
        if plan is not None:
            self.durables.carry_out(plan)
            core.uncommitted.append((peer, request.rid))
        if marks is not None:
            self.replays.keep(marks, peer, request.rid)
        wanted = {sid: joined(runs, sid) for sid in everyone_}
        batches = [batch(core.subscribers[sid], run) for sid, run in wanted.items()]
        reached = len(groups) if groups else 0
        confirms = (
            (Confirm(peer, request.rid, frozenset(wanted), reached),) if request.confirm else ()
        )
        fanout = Fanout(batches, confirms)
        handed: list[Action] = []
        if groups:
            assert group_drops is not None
            handed = self.groups.take(runs, groups, group_drops, now)
            if any(core.groups[key[len(PREFIX) :]].durable for key in groups):
                durable = True  # in the group commit, as a durable subscriber's
                if plan is None:
                    core.uncommitted.append((peer, request.rid))
        if retaining:
            self._retain(retaining, now)
        if (durable or marks is not None) and core.config.fsync == "every":
            core.failed += self.durables.commit()
        return [fanout, *handed]

    def _runs(
        self,
        items: tuple[PubItem, ...],
        now: float,
        stretches: list[tuple[str, int]],
        marks: Marks | None = None,
    ) -> list[Run]:
        """A publish's events in runs of consecutive events that go to the same subscribers.
        Usually there is one run, which every subscriber's batch then shares. The hot path: a
        subject is looked up once for each stretch of events on it, not once per event; the
        stretches (subject, events) are noted in `stretches`, to be counted once the publish
        is taken. Events the history keeps (`marks`) are each packed with their history seq."""
        core = self.core
        recipients_of = core.index.recipients
        note = stretches.append
        runs: list[Run] = []
        last = items[0].subjects[0]  # a PUB has items, each with a subject (checked)
        recipients = recipients_of(last)
        same = 0  # events on `last` so far
        packed, packed_as = b"", ("", -1)  # the last event packed, and its subject and format
        run = None
        kept = marks.packed if marks is not None else None
        n = -1
        for item in items:
            for subject in item.subjects:
                n += 1
                if subject != last:
                    note((last, same))
                    last, same = subject, 0
                    recipients = recipients_of(subject)
                same += 1
                if not recipients:
                    continue
                if run is None or run.sids is not recipients:  # the cache hands out one set per key
                    run = Run(recipients, [], [], 0)
                    runs.append(run)
                if kept is not None and kept[n] is not None:  # with its own history seq
                    packed, packed_as = kept[n], ("", -1)  # type: ignore[assignment]
                elif packed_as != (subject, item.fmt):  # packed once for a stretch of the same
                    packed, packed_as = pack_event(subject, now, item.fmt), (subject, item.fmt)
                run.events.append(packed)
                run.payloads.append(item.payload)
        note((last, same))
        for run in runs:
            run.size = sum(map(len, run.payloads))
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


def _check(request: Publish, retaining: list[PubItem], core: BrokerState) -> None:
    """Refuse the whole publish if any of it is over a limit or not allowed (SPEC 9). The hot
    path: one loop over the items, and an item of one ordinary subject checked inline."""
    limits = core.config.limits
    items = request.items
    if len(items) > limits.max_items_per_publish:
        raise refuse(ErrorCode.LIMIT_EXCEEDED, f"more than {limits.max_items_per_publish} events")
    if sum([len(item.payload) for item in items]) > limits.max_publish_bytes:
        raise refuse(
            ErrorCode.TOO_LARGE, f"one publish carries over {limits.max_publish_bytes} bytes"
        )
    most_bytes = limits.max_message_bytes
    short = limits.max_subject_bytes // 4  # this many characters are never too many bytes
    for item in items:
        subjects = item.subjects
        if not (len(subjects) == 1 and 0 < len(subjects[0]) <= short and subjects[0][0] != "$"):
            _check_subjects(subjects, limits)
        if len(item.payload) > most_bytes:
            raise refuse(ErrorCode.TOO_LARGE, f"message larger than {most_bytes} bytes")
    changes = [(s, len(i.payload)) for i in retaining for s in i.subjects]
    if changes and not core.retained.fits(changes):
        raise refuse(
            ErrorCode.LIMIT_EXCEEDED,
            f"retained events would exceed {core.retained.max_count} or "
            f"{core.retained.max_bytes} bytes",
        )


def _check_subjects(subjects: tuple[str, ...], limits: Limits) -> None:
    """The subjects of one item: at least one, not too many, each valid and not reserved."""
    if not subjects:
        raise refuse(ErrorCode.BAD_SUBJECT, "an event needs at least one subject")
    most = limits.max_subjects_per_item
    if len(subjects) > most:
        raise refuse(ErrorCode.LIMIT_EXCEEDED, f"more than {most} subjects in one publish")
    for subject in subjects:
        check_subject(subject, limits)
        if subject[:1] == "$" and meta.is_reserved(subject):
            raise refuse(
                ErrorCode.BAD_SUBJECT,
                f"subjects starting {meta.RESERVED_PREFIX!r} are the server's own",
            )
