"""What the broker knows of one subscriber."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from clients.wire import MAX_INT, public_id
from es.actions import Batch
from es.catchup import Catchup
from es.config import QueuePolicy
from es.health import Health
from es.lane import Lane

__all__ = ["SubscriberState", "new_stream"]


@dataclass
class SubscriberState:
    """What the broker knows of one subscriber: its queue policy, its lane (stream and queue),
    health."""

    sid: str
    endpoint: str
    lane: Lane  # its stream and queue: numbering, what is queued, sent, dropped, acknowledged
    queue: QueuePolicy  # block or drop, queue size, max stall
    since: float
    health: Health
    stalls: int = 0
    key: str | None = None
    name: str | None = None  # a service name, announced when it arrives and goes
    resumed: bool = False  # restored from storage: its next event says events were lost
    acked_at: float = 0.0  # monotonic time of the last ACK that moved `acked` forward
    # The client key (Z85) of the connection that made it, with key files; None otherwise. Only
    # a connection with the same key may change it (SPEC 7.1).
    owner: str | None = None
    # A durable subscriber's name (SPEC 7.10): its events wait in the log until acknowledged.
    durable: str | None = None
    detached: bool = False  # a durable subscriber that is away: no socket, its events kept
    # A durable subscriber's, or one's catching up with history: keeps each batch numbered for
    # it where its lane takes spilled events back from (es.durables, es.replays); False when
    # that is over and the batch goes to the lane as any other.
    keep: Callable[[Batch], bool] | None = field(default=None, repr=False)
    catchup: Catchup | None = None  # its replay of history, while it catches up (es.catchup)
    group: str | None = None  # the queue group it is a member of (es.grouping)
    id: str = field(init=False)  # what it is shown as: the sid is its secret

    def __post_init__(self) -> None:
        self.id = public_id(self.sid)

    @property
    def stream(self) -> int:
        """Its current delivery stream (SPEC 7.3)."""
        return self.lane.stream


def new_stream() -> int:
    """A random stream id: a subscriber's new sequence of events (SPEC 7.3)."""
    return secrets.randbelow(MAX_INT) + 1
