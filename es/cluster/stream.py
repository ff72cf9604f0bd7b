"""The cluster's retained events in a JetStream stream (SPEC 15.6), run on the link's asyncio
loop (es.cluster.link).

Invariants:
- The stream ES_RETAINED keeps one message per subject, on `rt.<tokens>`, each with its lifetime
  as a NATS message TTL; three replicas where the cluster has three servers, else one.
- Each publish's retained events go in in the order given, from a queue of their own, so that
  retrying one through a leader election never holds up the node's events; each publish has
  RETAIN_DEADLINE from when it was queued, however long those before it take. Each publish is
  settled once, in `settled`: taken (None), or why not, after which its remaining events are
  not tried; each event the stream did not take is counted in `unsent`.
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
RETAIN_DEADLINE = 7.0
"""Seconds a publish's retained events are tried for in JetStream (a leader election takes a
few): under a client's default request timeout (10 s), so that it hears why."""
_ATTEMPT = 2.0  # seconds one try waits for the stream's answer
_OPEN_ATTEMPTS = 150  # ~60 s: JetStream may still be electing a leader when a node starts

Kept = list[tuple[str, bytes, float | None]]
"""Retained events to keep: stream subject, body (es.cluster.frames), seconds to live."""
Settled = tuple[int, str | None]
"""A publish's token, and None if the stream took its retained events, else why not."""


class RetainedStream:
    """The stream of retained events, as one node uses it (see the module)."""

    def __init__(self, bounds: tuple[int, int], wake: Callable[[], None]) -> None:
        self.bounds = bounds  # at most this many retained events, of this many payload bytes
        self.on = False
        self.unsent = 0
        self.arrived: deque[tuple[bytes, float | None]] = deque()  # for the server's thread
        self.settled: deque[Settled] = deque()  # for the server's thread too
        # Each publish's token, events and deadline; bound to the loop at first use.
        self._queue: asyncio.Queue[tuple[int, Kept, float]] = asyncio.Queue()
        self._wake = wake

    def put(self, token: int, events: Kept) -> None:
        """Queue a publish's retained events for the stream (on the link's loop); it has until
        RETAIN_DEADLINE from now, however long those before it take."""
        self._queue.put_nowait((token, events, time.monotonic() + RETAIN_DEADLINE))

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
        """Put each publish's retained events in the stream, in order, and settle it, for as
        long as the link runs."""
        while True:
            token, events, until = await self._queue.get()
            failure = None
            for n, (subject, body, ttl) in enumerate(events):
                failure = await self._put(js, subject, body, ttl, until)
                if failure is not None:
                    self.unsent += len(events) - n
                    log.warning("backbone: retained events not kept: %s", failure)
                    break
            self.settled.append((token, failure))
            self._wake()

    async def _put(
        self, js: JetStreamContext, subject: str, body: bytes, ttl: float | None, until: float
    ) -> str | None:
        """Put one retained event in the stream, trying until `until` (monotonic); None once
        it is there, else what went wrong."""
        headers = None if ttl is None else {"Nats-TTL": f"{max(1, math.ceil(ttl))}s"}
        failure = "no time left"
        while (left := until - time.monotonic()) > 0:
            try:
                wait = max(0.1, min(_ATTEMPT, left))
                await js.publish(subject, body, headers=headers, timeout=wait)
                return None
            except (TimeoutError, NatsError) as exc:
                failure = repr(exc)
            await asyncio.sleep(min(0.25, max(0.0, until - time.monotonic())))
        return failure
