"""What the dashboard streams to its pages (server-sent events): the live tail of a subject or
pattern, the meta-events (activity), and the latest statistics.

Invariants:
- A tail is one drop-mode subscriber with a small queue, made for one page and closed when that
  page goes: it can never hold publishers back, and every loss it suffers is a visible row.
- At most MAX_TAILS tails are open at once; every buffer here is bounded.
- A page that reads slowly never holds up the others: each reads the shared buffers at its own
  pace, and what it missed of a bounded buffer is gone for it alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from clients.aio import AsyncSubscriber
from clients.event import Event
from clients.security import Keys
from es.dashboard.rows import Tail, event_rows, gap_row

__all__ = ["MAX_TAILS", "TAIL_QUEUE", "Feed", "open_tail"]

MAX_TAILS = 8
TAIL_QUEUE = 100
"""The queue a tail's subscriber asks for, in events: past it, the server drops (and tells)."""
TAIL_ROWS = 1000
"""Rows a tail or the activity feed keeps for a page."""


class Feed:
    """A bounded buffer of rows that pages follow (`follow`), each at its own pace."""

    def __init__(self, size: int = TAIL_ROWS) -> None:
        self.tail = Tail(size)
        self._changed = asyncio.Event()

    def add(self, rows: list[dict[str, Any]]) -> None:
        """Keep `rows`, and wake the pages that follow."""
        self.tail.add(rows)
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self, after: int = 0) -> AsyncIterator[list[dict[str, Any]]]:
        """The rows after row `after` (those still kept), then each new lot as it comes."""
        seen = after
        while True:
            changed = self._changed
            rows = self.tail.since(seen)
            if rows:
                seen = rows[-1]["n"]
                yield rows
            await changed.wait()


async def open_tail(
    es_uri: str | None,
    keys: Keys | None,
    *,
    subject: str | None,
    pattern: str | None,
    shown: int,
) -> AsyncIterator[dict[str, Any]]:
    """Subscribe (raising the server's error, BadPattern say, before anything is streamed) and
    return the tail's rows as server-sent events, until the page goes."""
    losses: list[dict[str, Any]] = []

    def told(lost: int | None, event: Event | None) -> None:
        losses.append(gap_row(lost, time.time()))

    sub = AsyncSubscriber(es_uri, keys=keys, policy="drop", queue_size=TAIL_QUEUE, on_gap=told)
    try:
        if pattern is not None:
            await sub.subscribe_match(pattern)
        else:
            await sub.subscribe(subject or "")
    except BaseException:
        await sub.close()
        raise
    return _rows(sub, losses, shown)


async def _rows(
    sub: AsyncSubscriber, losses: list[dict[str, Any]], shown: int
) -> AsyncIterator[dict[str, Any]]:
    try:
        while True:
            event = await sub.next(timeout=1.0)
            rows = losses[:]
            losses.clear()
            if event is not None:
                rows += event_rows(event, shown)
            for row in rows:
                yield {"event": "row", "data": json.dumps(row)}
    finally:
        await sub.close()
