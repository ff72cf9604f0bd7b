"""Events as the live tail shows them, and the tail's bounded buffer. Pure.

Invariants:
- Every loss a subscriber is told of becomes a visible gap row before the event that follows
  it: `lost` (a known number) or `resumed` (an unknown number), or alone when the server told it
  in a notice no event followed.
- A row never carries more than `shown` bytes of a payload in any view (JSON, text, hex); `cut`
  says when some was left out. A payload that cannot be decoded (or is pickle, never decoded
  here) still shows as hex.
- The buffer keeps the newest `size` rows, each numbered once, 1, 2, ... in arrival order.
"""

from __future__ import annotations

import base64
import datetime
import json
from collections import deque
from typing import Any

from clients.errors import PayloadError
from clients.event import Event
from clients.payload import decode_payload
from clients.wire import Format

__all__ = ["MAX_DECODED", "Tail", "event_rows", "gap_row"]

MAX_DECODED = 1 << 20
"""Payloads larger than this are shown in hex only: decoding them is not worth a live view."""


def event_rows(event: Event, shown: int) -> list[dict[str, Any]]:
    """The rows for `event`: a gap row first when losses came before it, then its own."""
    rows = []
    if event.resumed:
        rows.append(gap_row(None, event.time))
    if event.lost:
        rows.append(gap_row(event.lost, event.time))
    rows.append(_event_row(event, shown))
    return rows


def gap_row(lost: int | None, time: float) -> dict[str, Any]:
    """A gap: `lost` events never arrived (None: an unknown number, the server was away)."""
    return {"kind": "gap", "lost": lost, "time": time}


def _event_row(event: Event, shown: int) -> dict[str, Any]:
    payload = event.payload
    cut = len(payload) > shown
    row: dict[str, Any] = {
        "kind": "event",
        "seq": event.seq,
        "subject": event.subject,
        "time": event.time,
        "format": _format_name(event.format),
        "size": len(payload),
        "retained": event.retained,
        "hex": payload[:shown].hex(" "),
        "cut": cut,
    }
    if len(payload) > MAX_DECODED:
        row.update(json=None, text=f"(not decoded: {len(payload)} bytes)")
        return row
    try:
        message = decode_payload(payload, event.format, allow_pickle=False)
    except PayloadError as exc:
        row.update(json=None, text=f"(not shown: {exc})")
        return row
    jsonable = _jsonable(message)
    text = _text(message, jsonable)
    row["cut"] = cut or len(text) > shown
    row["text"] = text[:shown]
    row["json"] = jsonable if len(json.dumps(jsonable)) <= shown else None
    return row


def _text(message: Any, jsonable: Any) -> str:
    """The text view: a string as it is, bytes as UTF-8 where they are, anything else as JSON."""
    if isinstance(message, str):
        return message
    if isinstance(message, bytes):
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            return f"({len(message)} bytes, not UTF-8)"
    return json.dumps(jsonable, ensure_ascii=False)


def _format_name(code: int) -> str:
    try:
        return Format(code).name.lower()
    except ValueError:
        return f"format {code}"


def _jsonable(value: Any) -> Any:
    """A decoded message as JSON can carry it: bytes in base64, times in ISO 8601."""
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode()}
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN is not JSON
        return None
    return value


class Tail:
    """The newest rows of a live tail, numbered (see the module)."""

    def __init__(self, size: int) -> None:
        self.rows: deque[dict[str, Any]] = deque(maxlen=size)
        self.count = 0  # rows ever added: the number of the newest

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Keep `rows`, each numbered, the oldest forgotten past the size."""
        for row in rows:
            self.count += 1
            self.rows.append({"n": self.count, **row})

    def since(self, n: int) -> list[dict[str, Any]]:
        """The rows kept that are newer than row `n`, oldest first."""
        return [row for row in self.rows if row["n"] > n]
