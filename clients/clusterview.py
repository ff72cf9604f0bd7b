"""A cluster's view for tools (`es stats --cluster`): STATS from every node, gathered and summed.
The gathering talks to each node; the merge is pure.

Invariants:
- The view is partial when a node it knows of did not answer: one listed under the name, or one
  a node that answered names among its peers. It says which, and never guesses their counts.
- `totals` are the sums, over the nodes that answered, of their server counters, exactly.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from clients import admin
from clients.errors import EsError
from clients.naming import es_endpoints
from clients.security import Keys

__all__ = ["SUMMED", "cluster_stats", "merge"]

SUMMED = (
    "subscribers",
    "publish_requests",
    "events_published",
    "events_delivered",
    "delivery_messages",
    "events_dropped",
    "loss_notices",
    "evictions",
    "requests_over_budget",
    "retained",
    "retained_bytes",
    "storage_errors",
)
"""The server counters a cluster view sums over its nodes."""


def merge(answers: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The view of every node's STATS (endpoint -> body, None where it did not answer)."""
    nodes: dict[str, dict[str, Any]] = {}
    peers: set[str] = set()
    for endpoint, body in sorted(answers.items()):
        if body is None:
            continue
        server = dict(body["server"])
        cluster = server.get("cluster") or {}
        name = str(cluster.get("node") or endpoint)
        peers.update(str(p) for p in cluster.get("peers", []))
        nodes[name] = {"endpoint": endpoint, **server}
    unanswered = sorted(e for e, body in answers.items() if body is None)
    missing = sorted(peers - set(nodes))
    totals = {key: sum(int(n.get(key, 0)) for n in nodes.values()) for key in SUMMED}
    return {
        "nodes": nodes,
        "totals": totals,
        "unanswered": unanswered,
        "missing": missing,
        "partial": bool(unanswered or missing),
    }


def cluster_stats(
    es_uri: str | None = None, timeout: float = 5.0, keys: Keys | None = None
) -> dict[str, Any]:
    """STATS from every node the name lists (or the one address given), merged; see merge."""
    answers: dict[str, dict[str, Any] | None] = {}
    endpoints = es_endpoints(es_uri, timeout=timeout, keys=keys)
    with ThreadPoolExecutor(max_workers=min(16, len(endpoints))) as pool:
        for endpoint, body in zip(
            endpoints, pool.map(lambda e: _stats(e, timeout, keys), endpoints), strict=True
        ):
            answers[endpoint] = body
    return merge(answers)


def _stats(endpoint: str, timeout: float, keys: Keys | None) -> dict[str, Any] | None:
    """One node's STATS, or None if it does not answer."""
    try:
        return admin.stats(endpoint, timeout, keys)
    except EsError:
        return None
