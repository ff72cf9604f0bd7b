"""The event server's STATS as Prometheus metric families (prometheus_client). Pure: a STATS
body (and, when asked, a SUBJECTS body) in, families out.

Invariants:
- Names start `es_`; counters end `_total`; times are in seconds and sizes in bytes.
- Labels by subscriber or by subject only when asked for (`labels`): a busy server has too many
  of either for a default.
- Without a STATS body (the server did not answer), only `es_up 0` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["LABELS", "StatsCollector", "families"]

LABELS = frozenset({"subscriber", "subject"})
"""The labels one may ask for (es dashboard --labels)."""

# STATS `server` counters: (field, metric name without es_ and _total, help).
_COUNTERS = (
    ("publish_requests", "publish_requests", "PUB requests handled"),
    ("events_published", "events_published", "Events published (one per subject of an item)"),
    ("events_delivered", "events_delivered", "Events sent to subscribers"),
    ("delivery_messages", "delivery_messages", "EV messages that carried them"),
    ("events_dropped", "events_dropped", "Events dropped for subscribers (each one told)"),
    ("loss_notices", "loss_notices", "LOST notices sent"),
    ("evictions", "evictions", "Subscribers removed by the server"),
    ("requests_over_budget", "requests_over_budget", "Requests refused over their budget"),
    ("storage_errors", "storage_errors", "Writes to storage that failed"),
)
# STATS `server` gauges: (field, metric name without es_, help).
_GAUGES = (
    ("uptime", "uptime_seconds", "Seconds since the server started"),
    ("subjects", "subjects", "Subjects subscribed to"),
    ("patterns", "patterns", "Patterns subscribed to"),
    ("retained", "retained_events", "Retained events kept"),
    ("retained_bytes", "retained_bytes", "Payload bytes of the retained events"),
    ("durables", "durables", "Durable subscribers"),
    ("durables_away", "durables_away", "Durable subscribers away"),
    ("stored_events", "stored_events", "Events kept for durable subscribers"),
    ("stored_bytes", "stored_bytes", "Payload bytes kept for durable subscribers"),
    ("history_events", "history_events", "Events the history keeps"),
    ("history_bytes", "history_bytes", "Payload bytes the history keeps"),
)


def families(
    stats: dict[str, Any] | None,
    subjects: dict[str, Any] | None = None,
    labels: frozenset[str] = frozenset(),
) -> list[Metric]:
    """The metric families of a STATS body (None: the server did not answer)."""
    up = GaugeMetricFamily("es_up", "Whether the event server answered the last STATS")
    up.add_metric([], 1 if stats is not None else 0)
    if stats is None:
        return [up]
    server = stats.get("server", {})
    out: list[Metric] = [up]
    for field, name, text in _COUNTERS:
        counter = CounterMetricFamily(f"es_{name}", text)
        counter.add_metric([], float(server.get(field, 0)))
        out.append(counter)
    for field, name, text in _GAUGES:
        gauge = GaugeMetricFamily(f"es_{name}", text)
        gauge.add_metric([], float(server.get(field, 0)))
        out.append(gauge)
    subscribers = stats.get("subscribers", [])
    out.append(_by_policy(subscribers))
    if "subscriber" in labels:
        out += _per_subscriber(subscribers)
    if "subject" in labels and subjects is not None:
        out.append(_per_subject(subjects.get("subjects", [])))
    return out


def _by_policy(subscribers: list[dict[str, Any]]) -> Metric:
    gauge = GaugeMetricFamily("es_subscribers", "Subscribers, by policy", labels=["policy"])
    counts = {"block": 0, "drop": 0}
    for subscriber in subscribers:
        policy = str(subscriber.get("policy", ""))
        counts[policy] = counts.get(policy, 0) + 1
    for policy, count in sorted(counts.items()):
        gauge.add_metric([policy], count)
    return gauge


def _per_subscriber(subscribers: list[dict[str, Any]]) -> Iterable[Metric]:
    names = ["subscriber", "name"]
    depth = GaugeMetricFamily("es_subscriber_queue_depth", "Events in its queue", labels=names)
    size = GaugeMetricFamily("es_subscriber_queue_size", "Its queue size in events", labels=names)
    sent = CounterMetricFamily("es_subscriber_sent", "Events sent to it", labels=names)
    dropped = CounterMetricFamily("es_subscriber_dropped", "Events dropped for it", labels=names)
    for subscriber in subscribers:
        key = [str(subscriber.get("id", "")), str(subscriber.get("name") or "")]
        depth.add_metric(key, float(subscriber.get("depth", 0)))
        size.add_metric(key, float(subscriber.get("queue", 0)))
        sent.add_metric(key, float(subscriber.get("sent", 0)))
        dropped.add_metric(key, float(subscriber.get("dropped", 0)))
    return [depth, size, sent, dropped]


def _per_subject(subjects: list[dict[str, Any]]) -> Metric:
    events = CounterMetricFamily(
        "es_subject_events", "Events published on the subject", labels=["subject"]
    )
    for entry in subjects:
        events.add_metric([str(entry.get("subject", ""))], float(entry.get("events", 0)))
    return events


class StatsCollector(Collector):
    """A prometheus_client collector over the latest snapshot `latest()` gives: (STATS body or
    None, SUBJECTS body or None)."""

    def __init__(
        self,
        latest: Any,
        labels: frozenset[str] = frozenset(),
    ) -> None:
        self.latest = latest
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        """The families of the latest snapshot (prometheus_client calls it at each scrape)."""
        stats, subjects = self.latest()
        yield from families(stats, subjects, self.labels)
