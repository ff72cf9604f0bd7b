"""The event a subscriber receives, with Pyro's attributes (subject, msg, time) and more."""

from __future__ import annotations

from typing import Any

from clients.payload import decode_payload

__all__ = ["Event"]

_UNSET: Any = object()


class Event:
    """One published message, as delivered to one subscriber.

    - `subject`: the subject as the publisher spelled it.
    - `msg`: the message, decoded on first access (raises PayloadError if it cannot be).
    - `time`: the server's timestamp (seconds since the epoch), the same for every subscriber.
    - `seq`: this subscriber's sequence number; consecutive unless events were lost.
    - `lost`: how many events for this subscriber were lost just before this one (usually 0).
    - `resumed`: True for the first event after the subscriber recovered from losing the event
      server; events published meanwhile are lost and their number is unknown.
    - `retained`: True for a retained event, sent because of a new subscription; it may be old.
    - `history`: its seq in the server's history when a history rule keeps it (SPEC 7.11), else
      None; `replayed`: True when it was sent from the history because a subscription asked for
      it (it may be old).
    - `redelivered`: True for a queue group's event handed to this member after the member that
      had it went without acknowledging it: that one may have handled it too.
    - `payload`, `format`: the raw frame and its format code, for programs that decode themselves.
    """

    __slots__ = (
        "_allow_pickle",
        "_msg",
        "format",
        "history",
        "lost",
        "payload",
        "redelivered",
        "replayed",
        "resumed",
        "retained",
        "seq",
        "stream",
        "subject",
        "time",
    )

    def __init__(
        self,
        subject: str,
        time: float,
        seq: int,
        payload: bytes,
        format: int,
        *,
        lost: int = 0,
        stream: int = 0,
        retained: bool = False,
        allow_pickle: bool = False,
    ) -> None:
        self.subject = subject
        self.time = time
        self.seq = seq
        self.payload = payload
        self.format = format
        self.lost = lost
        self.stream = stream
        self.resumed = False
        self.retained = retained
        self.history: int | None = None
        self.replayed = False
        self.redelivered = False
        self._allow_pickle = allow_pickle
        self._msg: Any = _UNSET

    @property
    def msg(self) -> Any:
        """The message, decoded from the payload on first access (PayloadError if it cannot be)."""
        if self._msg is _UNSET:
            self._msg = decode_payload(self.payload, self.format, self._allow_pickle)
        return self._msg

    def __repr__(self) -> str:
        return (
            f"Event(subject={self.subject!r}, seq={self.seq}, time={self.time:.6f}, "
            f"lost={self.lost})"
        )
