"""What the broker tells about itself: STATS, SUBJECTS, NUMSUB and SUBSCRIBERS (SPEC 3.6, 3.9).

Reads the broker's state (es.brokerstate) and changes nothing: the subjects published on are
counted on the publish path.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from clients.errors import ErrorCode
from es import __version__
from es.brokerstate import BrokerState
from es.checks import check_subject, refuse
from es.grouping import Groups, index_name
from es.state import SubscriberState

__all__ = ["Introspection"]

# A reply is one header frame; stop listing once this many bytes of names are in it, so the reply
# stays far below the 1 MiB header ceiling whatever the limits.
_STATS_BUDGET = 256 * 1024


class Introspection:
    """The broker's reports, over its state; they change nothing."""

    def __init__(self, core: BrokerState, groups: Groups) -> None:
        self.core = core
        self.groups = groups

    def stats(self, now: float) -> dict[str, Any]:
        """The STATS body: server counters, and each subscriber in detail."""
        core = self.core
        listed = self._listing()
        return {
            "server": {
                "version": __version__,
                "uptime": max(0.0, now - core.started),
                "subscribers": len(core.subscribers),
                "subjects": core.index.subject_count,
                "patterns": core.index.pattern_count,
                "publish_requests": core.published,
                "events_published": core.events_in,
                "events_delivered": core.totals.delivered,
                "delivery_messages": core.totals.messages,
                "events_dropped": core.totals.dropped,
                "loss_notices": core.totals.notices,
                "evictions": core.evictions,
                "requests_over_budget": core.rate_limited,
                "retained": len(core.retained),
                "retained_bytes": core.retained.bytes,
                "storage_errors": core.storage_errors,
                **self._durables(),
                **self._history(now),
                "groups": self._groups(),
                **({"cluster": core.cluster_stats()} if core.cluster_stats else {}),
                "cache": {
                    "entries": core.index.cache_len,
                    "hits": core.index.cache_hits,
                    "misses": core.index.cache_misses,
                },
            },
            "subscribers": listed,
            "truncated": len(listed) < len(core.subscribers),
        }

    def _history(self, now: float) -> dict[str, Any]:
        """The history's stream, what it holds, and each rule's share (SPEC 7.11)."""
        history = self.core.history
        rules = [
            {
                "pattern": rule.pattern,
                "events": events,
                "bytes": size,
                "oldest": 0.0 if oldest is None else max(0.0, now - oldest),
                "max_events": rule.max_events,
                "max_bytes": rule.max_bytes,
                "max_age": rule.max_age,
            }
            for rule, (events, size, oldest) in zip(history.rules, history.counts(), strict=True)
        ]
        return {
            "history_stream": history.stream,
            "history_events": len(history.entries),
            "history_bytes": history.size,
            "history_rules": rules,
        }

    def _groups(self) -> list[dict[str, Any]]:
        """Each queue group: its members, what its log holds (events, bytes, the age of the
        oldest), what waits to be handed out, what members hold unacknowledged, and its counts
        (SPEC 7.12)."""
        core = self.core
        shown: list[dict[str, Any]] = []
        for group in core.groups.values():
            key = index_name(group.name)
            store = self.groups.log_of(group)
            backlog = store.backlog(key)
            first = store.read(key, 1, 1, 1 << 62)
            subs = core.index.subscriptions(key)
            held = group.held
            shown.append(
                {
                    "name": group.name,
                    "durable": group.durable,
                    "members": [core.subscribers[sid].id for sid in group.members],
                    "subjects": sorted(subs.subjects),
                    "patterns": sorted(subs.patterns),
                    "stored": backlog.count,
                    "stored_bytes": backlog.size,
                    "oldest": max(0.0, core.wall - first[0][3]) if first else 0.0,
                    "waiting": backlog.count - held,
                    "pending": held,
                    "handed": group.handed,
                    "redelivered": group.redelivered,
                    "dropped": group.dropped,
                }
            )
        return shown

    def _durables(self) -> dict[str, Any]:
        """Server-wide counts of durable subscribers and what their logs hold (SPEC 7.10)."""
        core = self.core
        backlogs = [core.log.backlog(name) for name in core.durables]
        away = sum(1 for sid in core.durable_sids if core.subscribers[sid].detached)
        return {
            "durables": len(core.durables),
            "durables_away": away,
            "stored_events": sum(b.count for b in backlogs),
            "stored_bytes": sum(b.size for b in backlogs),
        }

    def subjects_seen(self, pattern: str | None) -> dict[str, Any]:
        """SUBJECTS: the subjects published on, most recent first, cut to fit one reply."""
        core = self.core
        limit = core.config.limits.max_pattern_bytes
        matcher = core.index.compile([pattern], limit)[0][1] if pattern else None
        listed: list[dict[str, Any]] = []
        budget = _STATS_BUDGET
        recent = sorted(core.subjects.values(), key=lambda entry: entry[2], reverse=True)
        for subject, events, last in recent:
            if matcher is not None and not matcher.match(subject):
                continue
            budget -= len(subject) + 40
            if budget < 0:
                break
            kept = core.retained.get(subject, core.mono) is not None
            listed.append({"subject": subject, "events": events, "last": last, "retained": kept})
        return {"subjects": listed, "truncated": budget < 0}

    def numsub(self, subjects: tuple[str, ...]) -> dict[str, Any]:
        """NUMSUB: for each subject, how many subscribers an event on it would reach now."""
        limits = self.core.config.limits
        if len(subjects) > limits.max_items_per_publish:
            raise refuse(
                ErrorCode.LIMIT_EXCEEDED, f"more than {limits.max_items_per_publish} subjects"
            )
        index = self.core.index
        return {"counts": [len(index.recipients(check_subject(s, limits))) for s in subjects]}

    def list_subscribers(self, prefix: str | None) -> dict[str, Any]:
        """SUBSCRIBERS: every subscriber (or those whose public id starts with `prefix`) in
        detail, cut to fit one reply."""
        chosen = [
            s for s in self.core.subscribers.values() if prefix is None or s.id.startswith(prefix)
        ]
        listed = self._listing(chosen)
        return {"subscribers": listed, "truncated": len(listed) < len(chosen)}

    def _listing(self, states: Iterable[SubscriberState] | None = None) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = []
        budget = _STATS_BUDGET
        for state in self.core.subscribers.values() if states is None else states:
            entry = self._subscriber_stats(state)
            budget -= sum(len(s) + 2 for s in entry["subjects"] + entry["patterns"]) + 300
            if budget < 0:
                break
            listed.append(entry)
        return listed

    def _subscriber_stats(self, state: SubscriberState) -> dict[str, Any]:
        subs = self.core.index.subscriptions(state.sid)
        mono = self.core.mono
        lane = state.lane
        depth = lane.depth
        full_since = state.health.full_since
        return {
            "id": state.id,
            "name": state.name,
            "endpoint": state.endpoint,
            "stream": state.stream,
            "policy": state.queue.policy,
            "queue": state.queue.queue_size,
            "max_stall": state.queue.max_stall,
            "subjects": sorted(subs.subjects),
            "patterns": sorted(subs.patterns),
            "sent": lane.sent,
            "dropped": lane.dropped,
            "stalls": state.stalls,
            "last_seq": lane.next_seq - 1,
            "acked": lane.acked,
            "depth": depth,
            # seconds behind: since its last acknowledged progress, while events wait for it
            "behind": max(0.0, mono - state.acked_at) if depth else 0.0,
            # seconds its queue has been full without progress (0: not full)
            "stalled_for": 0.0 if full_since is None else max(0.0, mono - full_since),
            "linked": state.health.linked,
            "in_flight": lane.in_flight,
            "group": state.group,
            **self._durable_stats(state),
        }

    def _durable_stats(self, state: SubscriberState) -> dict[str, Any]:
        """A durable subscriber's name, whether it is away, and what its log holds: events,
        bytes, the age in seconds of the oldest (0: none). Null and 0 for the others."""
        name = state.durable
        if name is None:
            return {"durable": None, "away": False, "stored": 0, "stored_bytes": 0, "oldest": 0.0}
        log = self.core.log
        backlog = log.backlog(name)
        first = log.read(name, backlog.acked + 1, 1, 1 << 62)
        oldest = max(0.0, self.core.wall - first[0][3]) if first else 0.0
        return {
            "durable": name,
            "away": state.detached,
            "stored": backlog.count,
            "stored_bytes": backlog.size,
            "oldest": oldest,
        }
