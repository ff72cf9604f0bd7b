"""Meta-events: what the event server says about itself, on reserved subjects.

Pure: subjects and the bodies of their events. Programs subscribe to them like any other subject
(or with a pattern such as `^\\$es\\.subscriber\\.`); only the server publishes them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DURABLE_AWAY",
    "DURABLE_BACK",
    "PUBLISHER_SEEN",
    "RESERVED_PREFIX",
    "SERVICE_AVAILABLE",
    "SERVICE_GONE",
    "SUBSCRIBER_JOINED",
    "SUBSCRIBER_LEFT",
    "SUBSCRIPTION_ADDED",
    "SUBSCRIPTION_REMOVED",
    "is_reserved",
]

RESERVED_PREFIX = "$es."
"""Subjects starting with this (in any case) are the server's: clients cannot publish on them."""

SUBSCRIBER_JOINED = "$es.subscriber.joined"
"""A new subscriber: {id, endpoint, policy, queue}."""
SUBSCRIBER_LEFT = "$es.subscriber.left"
"""A subscriber is gone: {id, reason}, reason "unsubscribed" or an eviction reason (7.6)."""
SUBSCRIPTION_ADDED = "$es.subscription.added"
"""{id, subjects} or {id, patterns}: what one SUB or SUBMATCH asked for."""
SUBSCRIPTION_REMOVED = "$es.subscription.removed"
"""{id, names, count}: what one UNSUB asked to remove, and the subscriptions left."""
SERVICE_AVAILABLE = "$es.service.available"
"""A subscriber that named itself arrived: {name, id}."""
SERVICE_GONE = "$es.service.gone"
"""A named subscriber is gone, however it went: {name, id, reason}."""
DURABLE_AWAY = "$es.durable.away"
"""A durable subscriber went away; its events are kept: {durable, id, reason}."""
DURABLE_BACK = "$es.durable.back"
"""A durable subscriber came back (or moved to another subscriber): {durable, id, stored}."""
PUBLISHER_SEEN = "$es.publisher.seen"
"""The first publish from a connection: {peer}, the connection's id in hex."""


def is_reserved(subject: str) -> bool:
    # The cheap test first: this runs for every subject of every publish.
    """Whether `subject` is under the server's own prefix `$es.` (any case)."""
    return subject[:1] == "$" and subject[: len(RESERVED_PREFIX)].lower() == RESERVED_PREFIX


def joined(id: str, endpoint: str, policy: str, queue: int, name: str | None) -> dict[str, Any]:
    """The body of `$es.subscriber.joined` (`id`: the public id, never the sid)."""
    body: dict[str, Any] = {"id": id, "endpoint": endpoint, "policy": policy, "queue": queue}
    if name is not None:
        body["name"] = name
    return body


def left(id: str, reason: str) -> dict[str, Any]:
    """The body of `$es.subscriber.left` (`id`: the public id)."""
    return {"id": id, "reason": reason}
