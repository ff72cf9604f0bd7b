"""The messages of the wire protocol, as frozen dataclasses forming three unions.

Invariants:
- One class per command; field names match the field tables in SPEC.md.
- Messages hold only validated values: the codec builds them after checking every field, so code
  that receives one never re-checks types.
- Payloads are opaque bytes: nothing here decodes them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

__all__ = [
    "MAX_INT",
    "PUBLIC_ID_DIGITS",
    "VERSION",
    "Ack",
    "Bye",
    "Delivery",
    "Err",
    "EventItem",
    "Format",
    "Heartbeat",
    "InboxMessage",
    "Loss",
    "Ok",
    "Options",
    "Ping",
    "Policy",
    "PubItem",
    "Publish",
    "Reply",
    "Request",
    "Stats",
    "Subscribe",
    "SubscribeMatch",
    "Unsubscribe",
    "public_id",
]

PUBLIC_ID_DIGITS = 16


def public_id(sid: str) -> str:
    """The name a subscriber is shown by (SPEC 7.1): the first 16 hex digits of the SHA-256 of
    its sid. The sid itself is the subscriber's secret and is never shown."""
    digest = hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()
    return digest[:PUBLIC_ID_DIGITS]


VERSION = 1
"""The protocol version every message starts with."""

MAX_INT = 2**53 - 1
"""Largest integer on the wire: every integer must survive a JavaScript number unchanged."""


class Format(IntEnum):
    """How an event's payload frame is encoded. The server never looks inside a payload."""

    RAW = 0
    MSGPACK = 1
    PICKLE = 2


class Policy(StrEnum):
    """What the server does when a subscriber's queue is full (SPEC 3.1): hold publishers back
    (for up to max_stall seconds per event), or drop the event for that subscriber alone."""

    BLOCK = "block"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Replay:
    """What a subscription asks of the server's history (SPEC 7.11): the `last` events it holds,
    those published `since` a wall-clock time, or those `start`ing at a seq of the history's
    `stream`. On the wire: a map with one of `last`, `since` and `from`, and `stream` only with
    `from`."""

    last: int | None = None
    since: float | None = None
    start: int | None = None
    stream: int | None = None


@dataclass(frozen=True, slots=True)
class Options:
    """Queue options a subscriber asks for; None means the server's default. On the wire the
    queue size is `queue` (SPEC 3.1)."""

    policy: Policy | None = None
    queue_size: int | None = None
    max_stall: float | None = None
    key: str | None = None
    """The inbox's CurveZMQ public key (40 Z85 characters), when security is on."""
    name: str | None = None
    """A service name: its arrival and departure are announced as $es.service.* meta-events."""
    durable: str | None = None
    """A durable name: the server stores this subscriber's events until it acknowledges them,
    while it is away too, and gives them to whoever subscribes with this name next (SPEC 7.10)."""
    group: str | None = None
    """A queue group: each event its subscriptions match goes to one member (SPEC 7.12)."""
    history: Replay | None = None
    """Events from the server's history for the subscriptions this request asks for, sent before
    any later event (SPEC 7.11)."""


@dataclass(frozen=True, slots=True)
class Subscribe:
    """SUB (SPEC 3.1): subscribe `sid`, whose inbox is `endpoint`, to exact subjects."""

    rid: int
    sid: str
    endpoint: str
    subjects: tuple[str, ...]
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class SubscribeMatch:
    """SUBMATCH (SPEC 3.2): subscribe `sid` to subjects matching RE2 patterns."""

    rid: int
    sid: str
    endpoint: str
    patterns: tuple[str, ...]
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """UNSUB (SPEC 3.3): remove each name, as a subject and as a pattern."""

    rid: int
    sid: str
    subjects: tuple[str, ...]


@dataclass(slots=True)
class PubItem:
    """One event of a PUB: its subjects, the payload's format code and the payload. Not frozen,
    unlike the other messages: one is built per event on both sides, and a frozen dataclass
    takes four times as long to build (its __init__ goes through object.__setattr__)."""

    subjects: tuple[str, ...]
    fmt: int
    payload: bytes
    retain: bool = False
    """Keep it as the subject's retained event (an empty payload clears that instead)."""
    ttl: float | None = None
    """Seconds the retained event lives; None: until replaced or cleared."""


@dataclass(slots=True)
class Publish:
    """PUB (SPEC 3.4): events to publish, in order; with `confirm`, the server answers. Not
    frozen, as PubItem: one is built for every PUB on both sides, in half the time."""

    rid: int
    confirm: bool
    items: tuple[PubItem, ...]
    inline: bool = False
    """Payloads inside the header instead of one frame each (SPEC 3.4): the same message."""


@dataclass(frozen=True, slots=True)
class Ping:
    """PING (SPEC 3.5): the server's name, version, clock and limits; earlier requests are done."""

    rid: int


@dataclass(frozen=True, slots=True)
class Stats:
    """STATS (SPEC 3.6): counters for people and tools."""

    rid: int


@dataclass(frozen=True, slots=True)
class Ack:
    """ACK (SPEC 3.7): `sid` has consumed up to `seq`; never answered."""

    rid: int
    sid: str
    seq: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """A subscriber saying it is alive; the reply says whether the server still knows it."""

    rid: int
    sid: str


@dataclass(frozen=True, slots=True)
class ListSubjects:
    """Subjects published on recently, optionally those matching an RE2 `pattern`."""

    rid: int
    pattern: str | None = None


@dataclass(frozen=True, slots=True)
class NumSub:
    """How many subscribers an event on each subject would reach."""

    rid: int
    subjects: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ListSubscribers:
    """Every subscriber (or those whose public id starts with `id`) with its subscriptions,
    queue, drops, stall and lag."""

    rid: int
    id: str | None = None


Request = (
    Subscribe
    | SubscribeMatch
    | Unsubscribe
    | Publish
    | Ping
    | Stats
    | Ack
    | Heartbeat
    | ListSubjects
    | NumSub
    | ListSubscribers
)


@dataclass(frozen=True, slots=True)
class Ok:
    """A successful reply to request `rid`, with its body."""

    rid: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Err:
    """A refused request `rid`: a stable code (SPEC 6) and a message for people."""

    rid: int
    code: str
    message: str


Reply = Ok | Err


@dataclass(slots=True)
class EventItem:
    """One event in a delivery: its sequence number, subject, time, format and payload. Not
    frozen, for the reason PubItem is not: one is built per event delivered."""

    seq: int
    subject: str
    time: float
    fmt: int
    payload: bytes
    retained: bool = False
    """A retained event, sent because of a new subscription: it may be old."""
    resumed: bool = False
    """The first event after the server restarted and restored this subscriber from storage:
    events published meanwhile were lost."""
    history: int | None = None
    """Its seq in the server's history, when a history rule keeps it (SPEC 7.11)."""
    replayed: bool = False
    """Sent from the history because a subscription asked for it: it may be old."""
    redelivered: bool = False
    """A queue group's event handed to this member after the one that had it went (SPEC 7.12)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """A batch of events for one subscriber; `lost` counts events dropped just before it."""

    sid: str
    stream: int
    lost: int
    events: tuple[EventItem, ...]
    inline: bool = False
    """Payloads inside the header instead of one frame each (SPEC 5): the same batch."""


@dataclass(frozen=True, slots=True)
class Loss:
    """A loss notice (SPEC 5.1): the `lost` events of `stream` up to and including `seq` were
    dropped for this subscriber, and no delivery followed them to say so."""

    sid: str
    stream: int
    lost: int
    seq: int


@dataclass(frozen=True, slots=True)
class Bye:
    """The server is stopping (SPEC 5.2): nothing more will come on `stream`. The subscriber
    should look the server up again and subscribe there, without waiting for its heartbeats to
    go unanswered."""

    sid: str
    stream: int


InboxMessage = Delivery | Loss | Bye
"""What a subscriber's inbox receives: events, a loss notice, or a goodbye."""
