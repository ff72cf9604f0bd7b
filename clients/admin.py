"""One-shot requests for tools: ping and stats."""

from __future__ import annotations

from typing import Any

import zmq

from clients.control import Control
from clients.naming import resolve_es_uri
from clients.security import Keys
from clients.wire import Ping, Stats

__all__ = ["ping", "stats"]


def _ask(
    es_uri: str | None, message: type[Ping] | type[Stats], timeout: float, keys: Keys | None
) -> dict[str, Any]:
    endpoint = resolve_es_uri(es_uri, keys=keys)
    control = Control(zmq.Context.instance(), endpoint, timeout, keys=keys)
    try:
        return control.request(message)
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
