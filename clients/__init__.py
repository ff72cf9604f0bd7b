"""Python client of the event service: Publisher, Subscriber (and their asyncio forms,
AsyncPublisher, AsyncSubscriber), Event, NameServer, Keys, errors.

The heavy parts (Publisher, Subscriber, NameServer, which need zmq) load on first use, so that
`clients.wire` and `clients.errors` stay importable without zmq.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from clients.errors import *  # noqa: F403
from clients.errors import __all__ as _error_names

if TYPE_CHECKING:
    from clients.aio import AsyncPublisher, AsyncSubscriber
    from clients.event import Event
    from clients.naming import NameServer, locate_ns
    from clients.publisher import Publisher
    from clients.security import Keys
    from clients.subscriber import Subscriber
    from clients.wire import Policy

_LAZY = {
    "AsyncPublisher": "clients.aio",
    "AsyncSubscriber": "clients.aio",
    "Publisher": "clients.publisher",
    "Subscriber": "clients.subscriber",
    "Event": "clients.event",
    "NameServer": "clients.naming",
    "locate_ns": "clients.naming",
    "Keys": "clients.security",
    "Policy": "clients.wire",
}

__all__ = [
    "AsyncPublisher",
    "AsyncSubscriber",
    "Event",
    "Keys",
    "NameServer",
    "Policy",
    "Publisher",
    "Subscriber",
    "locate_ns",
    *_error_names,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'clients' has no attribute {name!r}")
