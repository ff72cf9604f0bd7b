"""What a subscriber tells the server of its progress (SPEC 3.7): which events its program is
done with, and the ACKs that say so (mixed into Subscriber).

Invariants:
- An event counts as done when the program asks for the next one, waits, or closes, never when
  it is handed out: an event a program was still handling when it died is sent again (a
  durable subscriber's) or to another member (a group's).
- ACKs go back on the inbox, to every recent delivery connection of the stream of the last
  event done (clients.inbox.Servers), every `ack_every` events, every ACK_INTERVAL while
  consuming, and ACK_DRY after the inbox ran dry.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import zmq

from clients.event import Event
from clients.inbox import ACK_DRY, ACK_INTERVAL, Servers
from clients.wire import Ack, encode

__all__ = ["SIGNAL_SLICE", "Acknowledging"]

SIGNAL_SLICE = 0.5
"""Longest single wait in poll(): a Ctrl-C that lands just before a wait begins is only noticed
when the wait returns (Python runs signal handlers between calls), so waits are cut in slices."""


class Acknowledging:
    """Events handed to the program, and the ACKs for those it is done with (see the module)."""

    sid: str
    _inbox: zmq.Socket[bytes]
    _ready: deque[Event]
    _read_inbox: Callable[[], None]
    _servers: Servers
    _handed: Event | None
    _last_seq: int
    _last_stream: int
    _unacked: int
    _ack_every: int
    _acked_at: float

    def _take(self) -> Event | None:
        """One event without waiting: from the decoded batch, else from the inbox."""
        if not self._ready:
            self._read_inbox()
        if not self._ready:
            return None
        event = self._ready.popleft()
        self._done()
        self._handed = event
        if self._unacked >= self._ack_every or time.monotonic() - self._acked_at >= ACK_INTERVAL:
            self._ack()  # room for more; a slow consumer still reports progress now and then
        return event

    def _done(self) -> None:
        """The program asks for another event (or closes): the one it was handed is done, and
        is acknowledged with the next ACK. An event a program was still handling when it died
        is therefore sent again (a durable subscriber's) or to another member (a group's)."""
        handed = self._handed
        if handed is not None:
            self._handed = None
            self._last_seq, self._last_stream = handed.seq, handed.stream
            self._unacked += 1

    def _ack(self, dry: bool = False) -> float:
        """Tell the server how far we got; `dry` (the inbox ran dry): only if ACK_DRY passed.
        Returns the seconds until a dry ACK is due (a long time when none is)."""
        if not self._unacked or self._last_seq == 0:
            return SIGNAL_SLICE
        if dry:
            wait = self._acked_at + ACK_DRY - time.monotonic()
            if wait > 0:
                return wait
        servers = self._servers.of(self._last_stream)
        if not servers:
            return SIGNAL_SLICE
        ack = encode(Ack(0, self.sid, self._last_seq))
        for server in servers:
            try:
                self._inbox.send_multipart([server, *ack], zmq.NOBLOCK)
            except zmq.ZMQError:  # no room towards that server now: try again soon
                return ACK_DRY
        self._unacked = 0
        self._acked_at = time.monotonic()
        return SIGNAL_SLICE
