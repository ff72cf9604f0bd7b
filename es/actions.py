"""What the broker core asks its ZeroMQ shell to do: plain values, no sockets."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clients.wire import INLINE_BYTES, encode_delivery
from es.storage import StoredEvent, StoredSubscriber

__all__ = [
    "Action",
    "Batch",
    "Close",
    "Confirm",
    "Fanout",
    "Open",
    "Persist",
    "PersistRetained",
    "Reply",
]


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


@dataclass(slots=True)
class Batch:
    """One EV message for one subscriber: events already numbered, encoded only when sent.

    `metas` are (seq, subject, time, format) or, with flags, (..., {"retained": true}), one per
    payload; consecutive batches for one subscriber may be merged (es.gather). `payloads` may be
    shared with other subscribers' batches of the same publish: never change it in place.
    """

    sid: str
    stream: int
    lost: int
    metas: list[tuple[Any, ...]]
    payloads: list[bytes]
    block: bool
    max_stall: float
    size: int = 0  # payload bytes

    @property
    def count(self) -> int:
        """How many events the batch holds."""
        return len(self.metas)

    @property
    def last_seq(self) -> int:
        """The sequence number of its last event."""
        return int(self.metas[-1][0])

    def frames(self) -> list[bytes]:
        """The EV message: payloads inside the header when small (one frame to send, however
        many events), in frames of their own otherwise."""
        inline = self.size <= INLINE_BYTES
        return encode_delivery(self.sid, self.stream, self.lost, self.metas, self.payloads, inline)


@dataclass(frozen=True, slots=True)
class Confirm:
    """A confirmed publish's answer, owed to `peer` once its events to `sids` were handed on."""

    peer: bytes
    rid: int
    sids: frozenset[str]


@dataclass(frozen=True, slots=True)
class Fanout:
    """Deliver `batches`; then answer each confirmed publish among them (Broker.confirmation)
    with how many of its subscribers got their batch."""

    batches: list[Batch]
    confirms: tuple[Confirm, ...] = ()


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
