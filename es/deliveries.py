"""The event server's delivery sockets: one DEALER per subscriber, connected to its inbox, with a
monitor that tells when the connection comes and goes.

Part of the ZeroMQ shell (es.server): it only moves bytes. What it sees (ACKs coming back, links
up or down, handshakes) it returns as outcomes (es.outcomes) for the broker to hear; it decides
nothing. Sockets are used from the server's thread only.
"""

from __future__ import annotations

import contextlib
import errno
import logging

import zmq
from zmq.utils.monitor import recv_monitor_message

from clients.errors import ErrorCode
from clients.security import HANDSHAKE_EVENTS, HANDSHAKES, Keys, as_client
from clients.wire import public_id
from es.actions import Send
from es.outcomes import Acked, Handshaken, Linked, Outcome

__all__ = ["Deliveries", "send_hwm"]

log = logging.getLogger("es.server")

# A connection coming up or going down, and how its handshake ended (clients.security.HANDSHAKES).
_LINK_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | HANDSHAKE_EVENTS
# Messages read from one delivery connection per look: only ACKs come back that way, and each
# says all the ones before it did (a flood from a broken inbox costs at most this much a turn).
_ACKS_READ = 64
# Errors of socket creation that mean the process ran out of something, not a bad endpoint.
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})

Socket = zmq.Socket[bytes]


def send_hwm(queue_size: int) -> int:
    """The delivery socket's limit, in messages: never reached by a subscriber that acknowledges
    only what it consumed (its queue holds at most `queue_size` events, so as many messages at
    most, plus one loss notice), with room for ZeroMQ counting reads in batches of half the
    limit. It stops one that acknowledges what it never read from growing the server's memory."""
    return 0 if queue_size == 0 else 2 * queue_size + 128


class Deliveries:
    """Every subscriber's delivery socket and its monitor (see the module)."""

    def __init__(self, ctx: zmq.Context[Socket], keys: Keys | None) -> None:
        self._ctx = ctx
        self._keys = keys
        self._dealers: dict[str, Socket] = {}
        self._monitors: dict[str, Socket] = {}

    def __len__(self) -> int:
        return len(self._dealers)

    def sids(self) -> list[str]:
        """The subscribers that have a delivery socket."""
        return list(self._dealers)

    def socket(self, sid: str) -> Socket | None:
        """`sid`'s delivery socket, to poll for ACKs."""
        return self._dealers.get(sid)

    def open(self, sid: str, endpoint: str, queue_size: int, key: str | None) -> ErrorCode | None:
        """Open `sid`'s delivery socket and its monitor; None, or the error code that says why
        not (LIMIT_EXCEEDED when the process is out of descriptors or sockets)."""
        dealer: Socket | None = None
        monitor: Socket | None = None
        try:
            dealer = self._ctx.socket(zmq.DEALER)
            dealer.setsockopt(zmq.SNDHWM, send_hwm(queue_size))
            dealer.setsockopt(zmq.LINGER, 0)
            dealer.setsockopt(zmq.IPV6, 1)
            # With security the inbox must prove the key the subscriber gave (or, with a
            # passphrase, the shared one), and it accepts only this server's key: nobody else
            # can deliver to it.
            as_client(dealer, self._keys, None if key is None else key.encode())
            monitor = dealer.get_monitor_socket(_LINK_EVENTS)
            dealer.connect(endpoint)
        except (zmq.ZMQError, ValueError) as exc:
            for socket in (monitor, dealer):
                if socket is not None:
                    socket.close(linger=0)
            log.warning("cannot connect to subscriber %s at %s: %s", public_id(sid), endpoint, exc)
            exhausted = isinstance(exc, zmq.ZMQError) and exc.errno in _EXHAUSTED
            return ErrorCode.LIMIT_EXCEEDED if exhausted else ErrorCode.BAD_ENDPOINT
        self._dealers[sid] = dealer
        self._monitors[sid] = monitor
        return None

    def close(self, sid: str) -> None:
        """Close `sid`'s socket, discarding what is still queued in it."""
        dealer = self._dealers.pop(sid, None)
        monitor = self._monitors.pop(sid, None)
        if dealer is not None:
            dealer.disable_monitor()
            dealer.close(linger=0)
        if monitor is not None:
            monitor.close(linger=0)

    def send(self, send: Send) -> bool:
        """Hand `send` to its socket without waiting; False if it could not take it."""
        dealer = self._dealers.get(send.sid)
        if dealer is None:
            return False
        try:
            dealer.send_multipart(send.frames, zmq.NOBLOCK)
        except zmq.Again:  # only a client that acknowledges what it never read gets here
            log.warning(
                "subscriber %s: its delivery socket is full; events dropped", public_id(send.sid)
            )
            return False
        return True

    def acks(self, sids: list[str]) -> list[Outcome]:
        """What came back on these subscribers' delivery connections (their ACKs)."""
        acked: list[Outcome] = []
        for sid in sids:
            dealer = self._dealers.get(sid)
            if dealer is None:
                continue
            for _ in range(_ACKS_READ):
                try:
                    frames = dealer.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                acked.append(Acked(sid, frames))
        return acked

    def links(self, sid: str) -> list[Outcome]:
        """What `sid`'s socket monitor saw since the last look: its connection up or down, and
        how handshakes with its inbox ended."""
        monitor = self._monitors.get(sid)
        if monitor is None:
            return []
        seen: list[Outcome] = []
        with contextlib.suppress(zmq.Again):
            while True:
                event = int(recv_monitor_message(monitor, zmq.NOBLOCK)["event"])
                if event in HANDSHAKES:
                    ok = HANDSHAKES[event]
                    if ok is not True:
                        log.warning(
                            "subscriber %s: handshake with its inbox failed", public_id(sid)
                        )
                    seen.append(Handshaken(sid, ok))
                    continue
                seen.append(Linked(sid, event == zmq.EVENT_CONNECTED))
        return seen

    def linger(self, milliseconds: int) -> None:
        """Let queued events leave for this long once the sockets close (graceful stop)."""
        for dealer in self._dealers.values():
            dealer.setsockopt(zmq.LINGER, milliseconds)

    def goodbye(self, sid: str, frames: list[bytes]) -> None:
        """Queue `frames` (a BYE) behind `sid`'s last events, if it can take them."""
        dealer = self._dealers.get(sid)
        if dealer is not None:
            with contextlib.suppress(zmq.ZMQError):
                dealer.send_multipart(frames, zmq.NOBLOCK)

    def close_all(self, linger: bool) -> None:
        """Close every socket: letting queued events leave (`linger`), or at once."""
        for monitor in self._monitors.values():
            monitor.close(linger=0)
        self._monitors.clear()
        for dealer in self._dealers.values():
            dealer.close(linger=None if linger else 0)
        self._dealers.clear()
