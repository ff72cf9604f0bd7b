"""What the broker core asks for: plain values, no sockets.

Everything goes one way: the broker's actions pass through the flow (es.flow), which takes
Fanout, Progress and Link into the lanes (turning them into Sends) and notes each Open's lane;
the shell (es.server) carries out Reply, Open, Close and Send. What the shell and the flow saw
goes back to the broker as outcomes (es.outcomes), never as calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clients.wire import Publish
    from es.lane import Lane

__all__ = [
    "Action",
    "Batch",
    "Close",
    "Confirm",
    "Fanout",
    "Hold",
    "Link",
    "Open",
    "Progress",
    "Refilled",
    "Refuse",
    "Reply",
    "Send",
]


@dataclass(frozen=True, slots=True)
class Reply:
    """Send `frames` to the control peer `peer`."""

    peer: bytes
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class Open:
    """Create the DEALER for `sid`, connected to `endpoint`, for a queue of `queue_size` events.

    `peer` and `rid` name the request, so the shell can answer it if the socket cannot be made.
    """

    sid: str
    endpoint: str
    queue_size: int
    peer: bytes
    rid: int
    key: str | None = None  # the inbox's CurveZMQ public key, when the subscriber gave one
    lane: Lane | None = field(default=None, compare=False, repr=False)  # its queue, for the flow


@dataclass(frozen=True, slots=True)
class Close:
    """Close the DEALER of `sid`, discarding what is still queued for it. `reason`: why the
    server removed it (for the log), when it did so on its own. `detach`: a durable subscriber
    went away; its lane stays, to count what its log keeps for it meanwhile."""

    sid: str
    reason: str | None = field(default=None, compare=False)
    detach: bool = False


@dataclass(slots=True)
class Batch:
    """Numbered events for one subscriber, consecutive in seq from `first`, not yet sent.

    `events` are packed (clients.wire.pack_event: subject, time, format, flags), one per
    payload; both lists may be shared with other subscribers' batches of the same publish: never
    change them in place. `block`: a publish to a block-mode subscriber, which may wait for room
    (up to `max_stall` seconds); meta-events and retained events never do.
    """

    sid: str
    first: int
    events: list[bytes]
    payloads: list[bytes]
    size: int  # payload bytes
    block: bool = False
    max_stall: float = 0.0

    @property
    def count(self) -> int:
        """How many events the batch holds."""
        return len(self.events)

    def split(self, n: int) -> tuple[Batch | None, Batch]:
        """The first `n` events (None when `n` is 0) and the rest (at least one event)."""
        if n <= 0:
            return None, self
        head = self.payloads[:n]
        size = sum(map(len, head))
        rest = self.payloads[n:]
        first, events, block, stall = self.first, self.events, self.block, self.max_stall
        return (
            Batch(self.sid, first, events[:n], head, size, block, stall),
            Batch(self.sid, first + n, events[n:], rest, self.size - size, block, stall),
        )

    def fitting(self, max_events: int, max_bytes: int) -> int:
        """How many events from its start fit in one message (at least one)."""
        if self.count <= max_events and self.size <= max_bytes:
            return self.count
        total, n = 0, 0
        for payload in self.payloads[:max_events]:
            total += len(payload)
            if total > max_bytes and n:
                break
            n += 1
        return n


@dataclass(frozen=True, slots=True)
class Confirm:
    """A confirmed publish's answer, owed to `peer` once its events to `sids` were handed on."""

    peer: bytes
    rid: int
    sids: frozenset[str]
    groups: int = 0  # queue groups it reached: each counts as one subscriber (es.grouping)


@dataclass(frozen=True, slots=True)
class Fanout:
    """Offer `batches` to their subscribers' queues; then answer each confirmed publish among
    them with how many of its subscribers took at least one event (es.flow). Without `waits`,
    no batch waits for room, whatever its policy: what does not fit is dropped (and told), as
    other nodes' events are when too many wait during a stall (es.cluster.node)."""

    batches: list[Batch]
    confirms: tuple[Confirm, ...] = ()
    waits: bool = True


@dataclass(frozen=True, slots=True)
class Send:
    """Send `frames` (an EV of `count` events, or a LOST notice when `count` is 0) on the
    delivery socket of `sid`. `lost` is the loss it reports; `before` the last seq the subscriber
    had been told of before it (es.lane: to undo it if the send fails)."""

    sid: str
    frames: list[bytes]
    count: int
    lost: int
    before: int


@dataclass(frozen=True, slots=True)
class Progress:
    """The subscriber `sid` acknowledged progress: its queue may have room (for es.flow only)."""

    sid: str


@dataclass(frozen=True, slots=True)
class Link:
    """The server's connection to `sid`'s inbox is `up` or down now; `back`: up again after it
    was lost, so what was in flight must be sent again (for es.flow only)."""

    sid: str
    up: bool
    back: bool = False


@dataclass(frozen=True, slots=True)
class Refilled:
    """Events of a durable subscriber taken back from its log for its lane (for es.flow only):
    `batch`, or None when the log no longer holds any of its spilled events up to `through`."""

    sid: str
    batch: Batch | None
    through: int


@dataclass(frozen=True, slots=True)
class Refuse:
    """Answer publish `rid` of `peer` with `frames` (an ERR) instead of what it was owed: its
    confirmation, if the flow holds one, or nothing (for es.flow, which passes it on)."""

    peer: bytes
    rid: int
    frames: list[bytes]


@dataclass(frozen=True, slots=True)
class Hold:
    """A publish of retained events on a node of a cluster, checked but not taken yet: its
    retained events go to the cluster's stream first (es.cluster.node), and `peer`'s later
    requests wait (es.flow) until the stream took them (`Broker.publish_held`) or did not
    (its ERR)."""

    peer: bytes
    request: Publish
    time: float  # the server time its events get


Action = Reply | Open | Close | Fanout | Send | Progress | Link | Refilled | Refuse | Hold
