"""What the broker knows of one subscriber."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from clients.wire import MAX_INT
from es.health import Health

__all__ = ["SubscriberState", "new_stream"]


@dataclass
class SubscriberState:
    """What the broker knows of one subscriber: its queue, stream, counters and health."""

    sid: str
    endpoint: str
    stream: int
    policy: str
    queue: int
    max_stall: float
    since: float
    health: Health
    next_seq: int = 1
    lost_pending: int = 0
    last_sent_seq: int = 0
    acked: int = 0
    sent: int = 0
    dropped: int = 0
    stalls: int = 0
    key: str | None = None
    name: str | None = None  # a service name, announced when it arrives and goes
    resumed: bool = False  # restored from storage: its next event says events were lost
    acked_at: float = 0.0  # monotonic time of the last ACK that moved `acked` forward
    # A block-mode stall ran out: publishers no longer wait for it until its queue has room
    # again (a dead-slow subscriber costs them one max_stall, not one per publish).
    stalled_out: bool = False


def new_stream() -> int:
    """A random stream id: a subscriber's new sequence of events (SPEC 7.3)."""
    return secrets.randbelow(MAX_INT) + 1
