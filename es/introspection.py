"""What the broker tells about itself: STATS, SUBJECTS, NUMSUB and SUBSCRIBERS (SPEC 3.6, 3.9).

A mixin of the Broker, kept apart because it only reads the broker's state (and counts the
subjects published on, for SUBJECTS).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from clients.errors import ErrorCode
from es import __version__
from es.checks import check_subject, refuse
from es.config import ServerConfig
from es.daemon.patterns import fold
from es.index import SubscriptionIndex
from es.lane import Totals
from es.retained import RetainedStore
from es.state import SubscriberState

__all__ = ["Introspection"]

# A reply is one header frame; stop listing once this many bytes of names are in it, so the reply
# stays far below the 1 MiB header ceiling whatever the limits.
_STATS_BUDGET = 256 * 1024
# Published subjects remembered for SUBJECTS, the first seen forgotten first.
_SUBJECTS_KEPT = 10_000


class Introspection:
    """The broker's read-only reports. Expects the broker's attributes declared below."""

    config: ServerConfig
    index: SubscriptionIndex
    _subscribers: dict[str, SubscriberState]
    _subjects: OrderedDict[str, list[Any]]  # folded subject -> [as first sent, events, last]
    _retained: RetainedStore
    storage_errors: int
    _mono: float
    _started: float
    published: int
    events_in: int
    totals: Totals
    evictions: int
    rate_limited: int

    def _note_subject(self, subject: str, now: float) -> None:
        """Remember a published subject (folded) for SUBJECTS: its event count and last time."""
        key = fold(subject)
        entry = self._subjects.get(key)
        if entry is None:  # the oldest first seen goes first: no reordering on the hot path
            self._subjects[key] = entry = [subject, 0, now]
            while len(self._subjects) > _SUBJECTS_KEPT:
                self._subjects.popitem(last=False)
        entry[1] += 1
        entry[2] = now

    def stats(self, now: float) -> dict[str, Any]:
        """The STATS body: server counters, and each subscriber in detail."""
        listed = self._listing()
        return {
            "server": {
                "version": __version__,
                "uptime": max(0.0, now - self._started),
                "subscribers": len(self._subscribers),
                "subjects": self.index.subject_count,
                "patterns": self.index.pattern_count,
                "publish_requests": self.published,
                "events_published": self.events_in,
                "events_delivered": self.totals.delivered,
                "delivery_messages": self.totals.messages,
                "events_dropped": self.totals.dropped,
                "loss_notices": self.totals.notices,
                "evictions": self.evictions,
                "requests_over_budget": self.rate_limited,
                "retained": len(self._retained),
                "retained_bytes": self._retained.bytes,
                "storage_errors": self.storage_errors,
                "cache": {
                    "entries": self.index.cache_len,
                    "hits": self.index.cache_hits,
                    "misses": self.index.cache_misses,
                },
            },
            "subscribers": listed,
            "truncated": len(listed) < len(self._subscribers),
        }

    def _subjects_seen(self, pattern: str | None) -> dict[str, Any]:
        """SUBJECTS: the subjects published on, most recent first, cut to fit one reply."""
        limit = self.config.limits.max_pattern_bytes
        matcher = self.index.compile([pattern], limit)[0][1] if pattern else None
        listed: list[dict[str, Any]] = []
        budget = _STATS_BUDGET
        recent = sorted(self._subjects.values(), key=lambda entry: entry[2], reverse=True)
        for subject, events, last in recent:
            if matcher is not None and not matcher.match(subject):
                continue
            budget -= len(subject) + 40
            if budget < 0:
                break
            listed.append({"subject": subject, "events": events, "last": last})
        return {"subjects": listed, "truncated": budget < 0}

    def _numsub(self, subjects: tuple[str, ...]) -> dict[str, Any]:
        """NUMSUB: for each subject, how many subscribers an event on it would reach now."""
        limit = self.config.limits.max_items_per_publish
        if len(subjects) > limit:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"more than {limit} subjects")
        limits = self.config.limits
        return {"counts": [len(self.index.recipients(check_subject(s, limits))) for s in subjects]}

    def _list_subscribers(self, prefix: str | None) -> dict[str, Any]:
        """SUBSCRIBERS: every subscriber (or those whose public id starts with `prefix`) in
        detail, cut to fit one reply."""
        chosen = [
            s for s in self._subscribers.values() if prefix is None or s.id.startswith(prefix)
        ]
        listed = self._listing(chosen)
        return {"subscribers": listed, "truncated": len(listed) < len(chosen)}

    def _listing(self, states: Iterable[SubscriberState] | None = None) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        budget = _STATS_BUDGET
        for state in self._subscribers.values() if states is None else states:
            entry = self._subscriber_stats(state)
            budget -= sum(len(s) + 2 for s in entry["subjects"] + entry["patterns"]) + 300
            if budget < 0:
                break
            listed.append(entry)
        return listed

    def _subscriber_stats(self, state: SubscriberState) -> dict[str, Any]:
        subs = self.index.subscriptions(state.sid)
        lane = state.lane
        depth = lane.depth
        full_since = state.health.full_since
        return {
            "id": state.id,
            "name": state.name,
            "endpoint": state.endpoint,
            "stream": state.stream,
            "policy": state.policy,
            "queue": state.queue,
            "max_stall": state.max_stall,
            "subjects": sorted(subs.subjects),
            "patterns": sorted(subs.patterns),
            "sent": lane.sent,
            "dropped": lane.dropped,
            "stalls": state.stalls,
            "last_seq": lane.next_seq - 1,
            "acked": lane.acked,
            "depth": depth,
            # seconds behind: since its last acknowledged progress, while events wait for it
            "behind": max(0.0, self._mono - state.acked_at) if depth else 0.0,
            # seconds its queue has been full without progress (0: not full)
            "stalled_for": 0.0 if full_since is None else max(0.0, self._mono - full_since),
            "linked": state.health.linked,
        }
