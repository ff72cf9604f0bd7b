"""When a subscriber must go: the verdict of its liveness, link and queue, from times alone.

Pure: every time is a monotonic reading passed in, so the rules are tested with a fake clock.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FAILED_HANDSHAKES", "Health", "verdict"]

FAILED_HANDSHAKES = 3
"""Handshakes in a row that fail without a reason before the inbox counts as refusing us."""


@dataclass
class Health:
    """What the server knows of one subscriber's liveness (monotonic seconds)."""

    last_heard: float
    linked: bool | None = None  # None: no news from the link yet (connecting)
    link_since: float = 0.0
    full_since: float | None = None
    refused: bool = False  # its inbox refused the server's CurveZMQ key: it never will take it
    # Handshakes that failed without saying why since the last good one. One can be a peer dying
    # mid-handshake; several in a row are an inbox that does not have the key it was given.
    failed_handshakes: int = 0

    def heard(self, now: float) -> None:
        """The subscriber sent something (a heartbeat, an ACK, a request) at `now`."""
        self.last_heard = max(self.last_heard, now)

    def link(self, up: bool, now: float) -> None:
        """The socket monitor saw the connection to its inbox go up or down at `now`."""
        if self.linked is not up:
            self.linked, self.link_since = up, now

    def handshake(self, ok: bool | None) -> None:
        """A handshake succeeded (True), was refused (False), or failed without a reason (None)."""
        if ok is True:
            self.failed_handshakes = 0
        elif ok is False:
            self.refused = True
        else:
            self.failed_handshakes += 1
            self.refused = self.refused or self.failed_handshakes >= FAILED_HANDSHAKES

    def full(self, now: float) -> None:
        """Its queue was found full at `now` (the start of a stall, if not stalled yet)."""
        if self.full_since is None:
            self.full_since = now

    def consumed(self, now: float) -> None:
        """The client acknowledged newer events: it is making progress, and its queue has room
        (only consumption counts: a subscriber that never reads still lets bytes through while
        kernel buffers grow)."""
        self.full_since = None
        self.heard(now)


def verdict(health: Health, now: float, liveness: float, evict_stalled: float) -> str | None:
    """Why the subscriber must be removed now, or None if it may stay."""
    if health.refused:
        return "refused"  # security: its inbox does not accept this server (or the key is wrong)
    if now - health.last_heard > liveness:
        return "silent"  # its client stopped sending heartbeats: the process is gone
    if health.linked is not True and now - health.link_since > liveness:
        return "unreachable" if health.linked is None else "disconnected"
    stalled = health.full_since is not None and now - health.full_since > evict_stalled
    if evict_stalled > 0 and stalled:
        return "stalled"
    return None
