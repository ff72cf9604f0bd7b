"""What the broker core asks its ZeroMQ shell to do: plain values, no sockets."""

from __future__ import annotations

from dataclasses import dataclass

from es.storage import StoredEvent, StoredSubscriber

__all__ = ["Action", "Batch", "Close", "Fanout", "Open", "Persist", "PersistRetained", "Reply"]


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `frames` to the control peer `peer`."""

    peer: bytes
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class Open:
    """Create the DEALER for `sid`, connected to `endpoint`, send high-water mark `hwm`.

    `peer` and `rid` name the request, so the shell can answer it if the socket cannot be made.
    """

    sid: str
    endpoint: str
    hwm: int
    peer: bytes
    rid: int
    key: str | None = None  # the inbox's CurveZMQ public key, when the subscriber gave one


@dataclass(frozen=True, slots=True)
class Close:
    """Close the DEALER of `sid`, discarding what is still queued for it."""

    sid: str


@dataclass(frozen=True, slots=True)
class Batch:
    """One EV message for one subscriber: `count` events, already numbered."""

    sid: str
    frames: list[bytes]
    count: int
    last_seq: int
    block: bool
    max_stall: float


@dataclass(frozen=True, slots=True)
class Fanout:
    """Deliver `batches`; then, if `confirm`, answer `peer` with `Broker.confirmation`."""

    peer: bytes
    rid: int
    confirm: bool
    batches: list[Batch]


@dataclass(frozen=True, slots=True)
class Persist:
    """Write a subscriber's record to storage (None: delete it) before the actions after it."""

    sid: str
    record: StoredSubscriber | None


@dataclass(frozen=True, slots=True)
class PersistRetained:
    """Write a retained event to storage under `key` (None: delete it)."""

    key: str
    event: StoredEvent | None


Action = Reply | Open | Close | Fanout | Persist | PersistRetained
