"""The cluster's retained events in a JetStream stream (SPEC 15.6), run on the link's asyncio
loop (es.cluster.link).

Invariants:
- The stream ES_RETAINED keeps one message per subject, on `rt.<tokens>`, each with its lifetime
  as a NATS message TTL; three replicas where the cluster has three servers, else one.
- Retained events go in in the order given, from a queue of their own, so that retrying one
  through a leader election (up to RETAIN_DEADLINE) never holds up the node's events; one the
  stream never takes is counted in `unsent`.
- An ordered consumer brings the last event of each subject, then every change, into
  `arrived`, for the server's thread; `on` says whether the stream is there at all (without
  JetStream, retained events stay on their node).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nats.errors import Error as NatsError
from nats.js.api import DeliverPolicy, StreamConfig
from nats.js.client import JetStreamContext

__all__ = ["RETAINED_STREAM", "RETAIN_DEADLINE", "RetainedStream"]

log = logging.getLogger("es.cluster")

RETAINED_STREAM = "ES_RETAINED"
"""The JetStream stream of retained events: its subjects are `rt.>`."""
RETAIN_DEADLINE = 10.0
"""Seconds a retained event is tried for in JetStream (a leader election takes a few)."""
_OPEN_ATTEMPTS = 150  # ~60 s: JetStream may still be electing a leader when a node starts

Kept = list[tuple[str, bytes, float | None]]
"""Retained events to keep: stream subject, body (es.cluster.frames), seconds to live."""


class RetainedStream:
    """The stream of retained events, as one node uses it (see the module)."""

    def __init__(self, bounds: tuple[int, int], wake: Callable[[], None]) -> None:
        self.bounds = bounds  # at most this many retained events, of this many payload bytes
        self.on = False
        self.unsent = 0
        self.arrived: deque[tuple[bytes, float | None]] = deque()  # for the server's thread
        self._queue: asyncio.Queue[Kept] = asyncio.Queue()  # bound to the loop at first use
        self._wake = wake

    def put(self, events: Kept) -> None:
        """Queue retained events for the stream (on the link's loop)."""
        self._queue.put_nowait(events)

    async def open(self, js: JetStreamContext) -> None:
        """Make sure the stream is there, and follow it from the last event of each subject;
        without JetStream, say so and go on."""
        count, size = self.bounds
        last: Exception | None = None
        for attempt in range(_OPEN_ATTEMPTS):
            replicas = 3 if attempt % 2 == 0 else 1  # R3 where the cluster has three servers
            config = StreamConfig(
                name=RETAINED_STREAM,
                subjects=["rt.>"],
                max_msgs_per_subject=1,
                allow_msg_ttl=True,
                num_replicas=replicas,
                max_msgs=count,
                max_bytes=size + count * 1024,  # payloads, and each message's own fields
            )
            try:
                try:
                    await js.add_stream(config)
                except NatsError as exc:
                    if "already in use" not in str(exc):
                        raise
                await js.subscribe(
                    "rt.>",
                    ordered_consumer=True,
                    deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
                    cb=self._arrived,
                )
            except (TimeoutError, NatsError) as exc:
                last = exc
                await asyncio.sleep(0.4)
                continue
            self.on = True
            log.info("backbone: retained events in JetStream (%d replica(s))", replicas)
            return
        log.warning("backbone: no JetStream (%r): retained events stay on this node", last)

    async def _arrived(self, msg: Any) -> None:
        """A retained event from the stream: for the server's thread."""
        ttl = (msg.headers or {}).get("Nats-TTL")
        self.arrived.append((msg.data, float(ttl.rstrip("s")) if ttl else None))
        self._wake()

    async def keep(self, js: JetStreamContext) -> None:
        """Put queued retained events in the stream, in order, for as long as the link runs."""
        while True:
            for subject, body, ttl in await self._queue.get():
                headers = None if ttl is None else {"Nats-TTL": f"{max(1, math.ceil(ttl))}s"}
                until = time.monotonic() + RETAIN_DEADLINE
                while True:
                    try:
                        await js.publish(subject, body, headers=headers)
                        break
                    except (TimeoutError, NatsError) as exc:
                        if time.monotonic() < until:
                            await asyncio.sleep(0.25)
                            continue
                        self.unsent += 1
                        log.warning("backbone: a retained event was not kept: %r", exc)
                        break
