"""How many subscribers this process can hold: one figure, from the limits the system sets.

Each subscriber costs the event server a fixed set of descriptors and ZeroMQ sockets (see the
constants). The figure is computed once at start-up from the process's descriptor limits and
ZeroMQ's socket ceiling, so that a SUB past it is refused with LIMIT_EXCEEDED *before* anything
runs out, instead of failing half way through opening a socket.

Pure: the limits are passed in; the shell reads and raises them (es.server).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "FDS_PER_SUBSCRIBER",
    "SOCKETS_PER_SUBSCRIBER",
    "Capacity",
    "plan",
    "reserve_for",
    "wanted_descriptors",
]

FDS_PER_SUBSCRIBER = 4
"""The delivery DEALER's mailbox, the two ends of its socket monitor (each a ZeroMQ socket with a
mailbox of its own), and the TCP connection to the inbox."""

SOCKETS_PER_SUBSCRIBER = 3
"""The delivery DEALER and the two PAIR sockets of its monitor."""

_SOCKETS_RESERVED = 64
"""ZeroMQ sockets of the server itself: control ROUTER, its monitor, the ZAP handler's, the name
server registration's, with room to spare."""

_RESERVE_MAX = 1024
_RESERVE_MIN = 64


def reserve_for(descriptors: int) -> int:
    """Descriptors kept back from subscribers: for control connections (each client holds one or
    two), the storage file, logging and the server's own sockets. A quarter of the limit, between
    64 and 1024."""
    return max(_RESERVE_MIN, min(_RESERVE_MAX, descriptors // 4))


@dataclass(frozen=True, slots=True)
class Capacity:
    """What the limits allow. `subscribers` is the figure SUBs are refused past."""

    subscribers: int
    sockets: int  # ZeroMQ's MAX_SOCKETS for the context
    descriptors: int  # the soft descriptor limit the process runs with
    reserved: int  # descriptors kept back from subscribers
    bound_by: str | None  # what holds `subscribers` below the configured maximum; None if nothing

    def describe(self, wanted: int) -> str:
        """One line for the start-up log."""
        text = (
            f"room for {self.subscribers} subscriber(s): {FDS_PER_SUBSCRIBER} descriptors each, "
            f"{self.reserved} of {self.descriptors} kept for clients"
        )
        if self.bound_by is not None:
            text += f"; --max-subscribers {wanted} is out of reach ({self.bound_by})"
        return text


def wanted_descriptors(max_subscribers: int) -> int:
    """A soft descriptor limit that lets `max_subscribers` subscribers in."""
    return FDS_PER_SUBSCRIBER * max_subscribers + _RESERVE_MAX


def plan(max_subscribers: int, descriptors: int, socket_limit: int) -> Capacity:
    """The capacity of a process with soft descriptor limit `descriptors` (already raised as far
    as the hard limit allows) and ZeroMQ socket ceiling `socket_limit`, configured for at most
    `max_subscribers` subscribers."""
    reserved = reserve_for(descriptors)
    by_fds = max(0, (descriptors - reserved) // FDS_PER_SUBSCRIBER)
    by_sockets = max(0, (socket_limit - _SOCKETS_RESERVED) // SOCKETS_PER_SUBSCRIBER)
    subscribers = min(max_subscribers, by_fds, by_sockets)
    bound_by = None
    if subscribers < max_subscribers:
        if by_fds <= by_sockets:
            need = wanted_descriptors(max_subscribers)
            bound_by = f"the descriptor limit is {descriptors}; it needs {need} (ulimit -n)"
        else:
            bound_by = f"ZeroMQ allows {socket_limit} sockets"
    sockets = min(socket_limit, SOCKETS_PER_SUBSCRIBER * subscribers + _SOCKETS_RESERVED)
    return Capacity(subscribers, sockets, descriptors, reserved, bound_by)
