"""What happened, told back to the broker: plain values, no sockets.

The shell (es.server) and the flow (es.flow) never call into the broker to tell it something;
they hand it these, and `Broker.hear` returns the actions they lead to, which go the usual way
(through the flow to the shell).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Acked",
    "Full",
    "Handshaken",
    "Linked",
    "OpenFailed",
    "Outcome",
    "Refill",
    "Stalled",
]


@dataclass(frozen=True, slots=True)
class Linked:
    """The socket monitor saw the connection to `sid`'s inbox come up, or go down."""

    sid: str
    up: bool


@dataclass(frozen=True, slots=True)
class Handshaken:
    """The socket monitor saw a handshake with `sid`'s inbox: succeeded (True), refused our key
    or our security (False), or failed with no reason given (None)."""

    sid: str
    ok: bool | None


@dataclass(frozen=True, slots=True)
class Acked:
    """A message came back on `sid`'s delivery connection: an ACK, if it is one (SPEC 3.7)."""

    sid: str
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class OpenFailed:
    """The shell could not open `sid`'s delivery socket: the request (`peer`, `rid`) that asked
    for it fails with `code`."""

    sid: str
    peer: bytes
    rid: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Stalled:
    """A publish began waiting for room in `sid`'s queue (the flow)."""

    sid: str


@dataclass(frozen=True, slots=True)
class Full:
    """`sid`'s queue had no room for an event: it was dropped, or waits (the flow)."""

    sid: str


@dataclass(frozen=True, slots=True)
class Refill:
    """A durable subscriber's lane has room for events spilled to its log (the flow)."""

    sid: str


Outcome = Linked | Handshaken | Acked | OpenFailed | Stalled | Full | Refill
