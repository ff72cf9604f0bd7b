"""A subscriber's inbox: the queue options it asks the server for, the ROUTER it binds for the
server to deliver to, how large that may grow, how often it acknowledges, and the events a
delivery carries.

Used by clients.subscriber, from the one thread that reads the inbox at a time.

Acknowledgements free room in the subscriber's queue on the server (SPEC 3.7): the server sends
at most a queue's worth of events that were not acknowledged, so what waits here is bounded by
the queue size too. They go back on the inbox, to the delivery connection the events came from,
from the consuming thread: every half queue (at most every ACK_EVERY) events, at least every
ACK_INTERVAL while events are consumed, and when the inbox runs dry (at most every ACK_DRY
seconds, so that light traffic does not cost an ACK per event); never blocking.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import zmq

from clients.address import advertised_endpoint, bind_address, local_address_for
from clients.errors import RemoteProtocolError
from clients.event import Event
from clients.security import Keys, as_server
from clients.streams import STREAMS_KEPT, Streams
from clients.wire import POLICIES, Delivery, Options, Policy, Replay, fields

__all__ = [
    "ACK_DRY",
    "ACK_EVERY",
    "ACK_INTERVAL",
    "DEFAULT_QUEUE",
    "Servers",
    "ack_every",
    "asked_options",
    "events_of",
    "hwm",
    "open_inbox",
    "plain_events",
    "still_registered",
]

ACK_EVERY = 256
"""Most events between acknowledgements while events keep coming (fewer for a queue smaller
than twice this: every half queue, so the server never waits for room while we read)."""

ACK_DRY = 0.05
"""Shortest time between acknowledgements sent because the inbox ran dry."""

ACK_INTERVAL = 1.0
"""Longest time between acknowledgements while events are consumed: the server judges a
subscriber stalled by how long it goes without consuming anything."""

log = logging.getLogger("clients.subscriber")

DEFAULT_QUEUE = 1000
"""The server's default queue, in events, until a SUB reply says what ours is."""


def asked_options(
    policy: Policy | str | None,
    queue_size: int | None,
    max_stall: float | None,
    keys: Keys | None,
    name: str | None,
    durable: str | bool | None = None,
    group: str | None = None,
) -> Options:
    """The options of every SUB (None: the server's default); ValueError for a bad one. A
    durable group's member gives `durable=True` (or the group's name)."""
    if policy is not None and policy not in POLICIES:
        raise ValueError("policy must be 'block' or 'drop'")
    if queue_size is not None and queue_size < 0:
        raise ValueError("queue_size must be 0 (unbounded) or more")
    inbox_key = None if keys is None else keys.public.decode()
    chosen = None if policy is None else Policy(policy)
    if group is not None:
        durable = _group_durable(group, durable, name)
    if durable is True or durable is False:
        raise ValueError("durable=True is for a group's members: give a durable name")
    if durable is not None and not durable:
        raise ValueError("durable must be a non-empty name")
    if durable is not None and name is not None:
        raise ValueError("a durable subscriber cannot also be a named service")
    return Options(chosen, queue_size, max_stall, inbox_key, name, durable, group)


def _group_durable(group: str, durable: str | bool | None, name: str | None) -> str | None:
    """The durable option of a queue group's member (SPEC 7.12): the group's name, or none."""
    if not group or group.startswith("$"):
        raise ValueError("group must be a non-empty name not starting with $")
    if name is not None:
        raise ValueError("a group's member cannot also be a named service")
    if durable is True or durable == group:
        return group
    if durable is None or durable is False:
        return None
    raise ValueError(f"a durable group's durable name is the group's: {group!r} (or True)")


def asked_history(history: Replay | Mapping[str, Any] | None) -> Replay | None:
    """The `history` a subscribe call asks for (SPEC 7.11): a Replay, or a map as on the wire
    (`{"last": 100}`, `{"since": t}`, `{"from": seq, "stream": id}`); ValueError for a bad one."""
    if history is None or isinstance(history, Replay):
        return history
    if not isinstance(history, Mapping):
        raise ValueError('history must be a map: {"last": N}, {"since": t} or {"from": seq}')
    asked = dict(history)
    since = asked.get("since")
    if isinstance(since, datetime.datetime):  # an aware datetime, as messages take them
        if since.tzinfo is None:
            raise ValueError("history since: a datetime must be aware (it has a time zone)")
        asked["since"] = since.timestamp()
    try:
        return fields.replay(asked)
    except RemoteProtocolError as exc:
        raise ValueError(exc.message) from None


def ack_every(queue_size: int) -> int:
    """Events between acknowledgements for a queue of `queue_size` events (0: unbounded)."""
    return ACK_EVERY if queue_size == 0 else max(1, min(ACK_EVERY, (queue_size + 1) // 2))


def hwm(queue_size: int) -> int:
    """The inbox's limit in messages for a queue of `queue_size` events (0: unbounded). The
    server sends at most a queue's worth of events not acknowledged (and a loss notice), each
    message holding at least one: the server never reaches this limit, and it bounds what
    something else could push here. A ROUTER inbox never drops what comes in: at the limit it
    only holds the sender back."""
    return 0 if queue_size == 0 else queue_size + 16


def open_inbox(
    ctx: zmq.Context[Any],
    keys: Keys | None,
    zap_domain: str,
    queue_size: int,
    es_uri: str,
    host: str | None,
    publish_host: str | None,
) -> tuple[zmq.Socket[bytes], str]:
    """A bound inbox and the endpoint to give the server. With security, only the event server
    (its key) can connect and deliver: nobody else can push events into it."""
    inbox: zmq.Socket[bytes] = ctx.socket(zmq.ROUTER)
    try:
        inbox.setsockopt(zmq.LINGER, 0)
        as_server(inbox, keys, zap_domain)
        inbox.setsockopt(zmq.RCVHWM, hwm(queue_size))
        bind_host = host or local_address_for(es_uri)
        inbox.setsockopt(zmq.IPV6, int(":" in bind_host))
        inbox.bind(bind_address(bind_host))
        bound = inbox.getsockopt_string(zmq.LAST_ENDPOINT)
        return inbox, advertised_endpoint(bound, publish_host, es_uri)
    except BaseException:
        inbox.close(linger=0)
        raise


def events_of(delivery: Delivery, streams: Streams, allow_pickle: bool) -> tuple[list[Event], int]:
    """The new events of one EV batch, and how many were lost just before them (also marked on
    the first): the server's count, or the gap in seq if larger (clients.streams). Events this
    subscriber had already (a durable subscriber's, sent again: SPEC 7.10) are left out."""
    first, last = delivery.events[0].seq, delivery.events[-1].seq
    lost, seen = streams.batch(delivery.stream, first, last, delivery.lost)
    stream = delivery.stream
    items = delivery.events[seen:]  # a durable subscriber's events sent again: had already
    events = [
        Event(e.subject, e.time, e.seq, e.payload, e.fmt, stream=stream, allow_pickle=allow_pickle)
        for e in items
    ]
    for event, item in zip(events, items, strict=True):
        if item.retained or item.resumed:  # resumed: the server restarted and restored us
            event.retained, event.resumed = item.retained, item.resumed
        if item.history is not None:  # kept by the server's history (SPEC 7.11)
            event.history, event.replayed = item.history, item.replayed
        if item.redelivered:  # a queue group's, handed again (SPEC 7.12)
            event.redelivered = True
    if events:
        events[0].lost = lost
    return events, lost


def plain_events(
    stream: int,
    lost: int,
    first: int,
    metas: list[list[Any]],
    payloads: Sequence[bytes],
    streams: Streams,
    allow_pickle: bool,
) -> tuple[list[Event], int]:
    """events_of for a batch of events without flags as clients.wire.quick_batch checked it
    (each meta [subject, time, format]): the same events, made without a Delivery between (a
    property test holds the two equal). The hot path: it runs for almost every batch."""
    last = first + len(metas) - 1
    lost, seen = streams.batch(stream, first, last, lost)
    if seen:  # a durable subscriber's events sent again: had already
        metas, payloads = metas[seen:], payloads[seen:]
    events = [
        Event(meta[0], meta[1], seq, payload, meta[2], stream=stream, allow_pickle=allow_pickle)
        for seq, meta, payload in zip(range(first + seen, last + 1), metas, payloads, strict=True)
    ]
    if events:
        events[0].lost = lost
    return events, lost


class Servers:
    """Where ACKs go back: the delivery connections (the inbox ROUTER's routing ids) each recent
    stream came on, the newest last. A stream has one connection, but a durable subscriber's
    outlives it (SPEC 7.10): after a reconnection or a restart of the server its events come
    again on a new one while the old one may still hold some. An ACK goes to every connection
    of its stream; those gone drop it (a ROUTER drops what has no peer)."""

    def __init__(self, streams: int = STREAMS_KEPT, each: int = 4) -> None:
        self._streams = streams
        self._each = each
        self._of: dict[int, list[bytes]] = {}

    def heard(self, stream: int, server: bytes) -> None:
        """A delivery of `stream` came from the connection `server`."""
        servers = self._of.pop(stream, [])
        if not servers or servers[-1] != server:
            others = [s for s in servers if s != server][-(self._each - 1) :]
            servers = [*others, server]
        self._of[stream] = servers
        while len(self._of) > self._streams:
            del self._of[next(iter(self._of))]

    def of(self, stream: int) -> list[bytes]:
        """The connections of `stream`, oldest first."""
        return self._of.get(stream, [])


def still_registered(heartbeat: dict[str, Any], endpoint: str) -> bool:
    """Whether a HEARTBEAT reply says the server still delivers to us at `endpoint`; if not,
    say why (the subscriber then subscribes again)."""
    if heartbeat.get("known"):
        if heartbeat.get("endpoint") in (None, endpoint):
            return True
        # Someone subscribed with our sid to another inbox: take our registration back.
        log.warning("the event server's registration of this subscriber was replaced")
        return False
    why = heartbeat.get("evicted", "restart")
    log.warning("the event server lost our subscriptions (%s)", why)
    return False
