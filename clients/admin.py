"""One-shot requests for tools: ping, stats and introspection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import zmq

from clients.control import Control
from clients.naming import resolve_es_uri
from clients.security import Keys
from clients.wire import ListSubjects, ListSubscribers, NumSub, Ping, Request, Stats

__all__ = ["numsub", "ping", "stats", "subjects", "subscribers"]


def _ask(
    es_uri: str | None, build: Callable[[int], Request], timeout: float, keys: Keys | None
) -> dict[str, Any]:
    endpoint = resolve_es_uri(es_uri, keys=keys)
    control = Control(zmq.Context.instance(), endpoint, timeout, keys=keys)
    try:
        return control.request(build)
    finally:
        control.close()


def ping(
    es_uri: str | None = None, timeout: float = 5.0, keys: Keys | None = None
) -> dict[str, Any]:
    """The server's name, version and clock."""
    return _ask(es_uri, Ping, timeout, keys)


def stats(
    es_uri: str | None = None, timeout: float = 5.0, keys: Keys | None = None
) -> dict[str, Any]:
    """Server counters and, per subscriber, policy, queue depth, drops and subscriptions."""
    return _ask(es_uri, Stats, timeout, keys)


def subjects(
    es_uri: str | None = None,
    pattern: str | None = None,
    timeout: float = 5.0,
    keys: Keys | None = None,
) -> dict[str, Any]:
    """Subjects published on, most recent first: {"subjects": [{subject, events, last}], ...}."""
    return _ask(es_uri, lambda rid: ListSubjects(rid, pattern), timeout, keys)


def numsub(
    names: list[str], es_uri: str | None = None, timeout: float = 5.0, keys: Keys | None = None
) -> list[int]:
    """For each subject, how many subscribers an event on it would reach now."""
    body = _ask(es_uri, lambda rid: NumSub(rid, tuple(names)), timeout, keys)
    return [int(n) for n in body["counts"]]


def subscribers(
    es_uri: str | None = None,
    id: str | None = None,
    timeout: float = 5.0,
    keys: Keys | None = None,
) -> dict[str, Any]:
    """Every subscriber (or those whose public id starts with `id`) with subscriptions, queue,
    drops, stall and lag."""
    return _ask(es_uri, lambda rid: ListSubscribers(rid, id), timeout, keys)
