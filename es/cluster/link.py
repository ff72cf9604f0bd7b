"""The backbone connection: nats-py in a thread of its own, running its own asyncio loop.

Invariants:
- Only this module talks to NATS. The server's thread hands work over with `send`, `listen` and
  `stop`, which never wait for the network: each puts one item on a queue that one task of the
  loop carries out in order, so publishes and (un)subscriptions reach NATS in the order given.
- What arrives on the filters we listen on reaches `take` in the order the nats-server sent
  it, whatever filter it came by. nats-py gives each subscription its own queue and task, which
  would reorder messages across subscriptions, so `_Client` takes ours off its reader before
  that (the one method of nats-py's we override).
- The inbound queue is bounded, in messages and in bytes; past either, messages are counted in
  `overflow`, not kept, and the reader never waits for the server's thread. Where messages may
  be missing (dropped here, or lost with a connection to NATS), the queue holds a gap (None) in
  their place, once for each stretch of them: the node then tells its subscribers. At half
  either bound it is `crowded`, and wakes the server's poll once more, even during a stall.
- When the queue goes from empty to not empty, one byte on a socketpair wakes the server's
  poll (`fileno`); so does a barrier that ends, and a backlog that falls back under its bound.
- Events handed to `send` and not yet taken by NATS are bounded (`backlogged`): past
  MAX_BACKLOG bytes the server reads no more requests, so publishers are held back as a full
  block-mode queue holds them, until NATS takes more. An event NATS refuses (its buffer full
  while it reconnects) is counted in `unsent`, and before the next event this node sends a
  `gap` on `es.gap`, which every node reads in order with its events: their subscribers are told.
  So it does after losing its connection to NATS: what it sent last may have died with it.
- Heartbeats: every `heartbeat` seconds the node says it is alive on `es.hb`; hearing a node
  that is news, it answers at once, so a new node knows its peers within a round trip.
- Retained events live in the JetStream stream ES_RETAINED, one message per subject on
  `rt.<tokens>` (SPEC 15.6): `retain` puts a publish's there, in order, each with its lifetime,
  and `settled` says whether the stream took them; an ordered consumer brings every node the
  last of each subject, then each change, into `take_retained`. Without JetStream on the NATS
  cluster, retained events stay on their node.
- A barrier (`barrier`) is carried out after everything handed over before it: so the
  subscriptions it follows are on the NATS server before its request leaves. It asks every live
  peer on `es.barrier` and ends when all answered (each peer's NATS server then knows our
  interest: a route carries a subscription before a message sent after it) or at its deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError

from es.cluster.frames import BadFrame, pack_control, unpack_control
from es.cluster.peers import Barrier, Peers
from es.cluster.stream import RetainedStream

__all__ = ["Link", "LinkError"]

log = logging.getLogger("es.cluster")

# Messages kept for the server's thread at most, and their bytes: about 1 s of a busy node's
# traffic. Past either the backbone reader drops them (counted) rather than wait, as a full
# drop-mode queue does.
MAX_INBOUND = 100_000
MAX_INBOUND_BYTES = 64 << 20
# Seconds between reconnection attempts to the NATS servers (nats-py's default is 2).
_RECONNECT_WAIT = 1
# Bytes nats-py buffers for us while it reconnects; past that a publish fails (and is counted).
_PENDING_BYTES = 64 << 20
HEARTBEAT = 1.0
"""Seconds between a node's heartbeats; a peer silent for three of them is taken for gone."""
BARRIER_TIMEOUT = 2.0
"""Seconds a barrier waits for peers to answer: the longest a SUB's reply waits for it."""
HEARTBEATS = "es.hb"
BARRIERS = "es.barrier"
GAPS = "es.gap"
_GAPS = GAPS.encode()
MAX_BACKLOG = 64 << 20
"""Bytes of events handed to the link and not yet taken by NATS, past which the server stops
reading requests (nats-py's own buffer holds as much again)."""


class LinkError(ConnectionError):
    """The backbone could not be reached at start."""


class _Client(Client):
    """nats-py's client, with the messages of some subscriptions handed to one sink in the
    order they arrive (see the module)."""

    def __init__(self, sink: Callable[[bytes, bytes], None]) -> None:
        """`sink(subject, body)` takes the messages of the ordered subscriptions."""
        super().__init__()
        self.ordered: set[int] = set()
        self._sink = sink

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        if sid in self.ordered:
            self.stats["in_msgs"] += 1
            self.stats["in_bytes"] += len(data)
            self._sink(subject, data)
            return
        await super()._process_msg(sid, subject, reply, data, headers)

    async def subscribe_ordered(self, nats_filter: str) -> Subscription:
        """Subscribe, with the messages going to the sink from the first one: the sid is
        marked before nats-py sends SUB (it numbers subscriptions 1, 2, ... with no await
        between taking the number and sending)."""
        sid = self._sid + 1
        self.ordered.add(sid)
        sub: Subscription = await self.subscribe(nats_filter)
        assert sub._id == sid, "nats-py numbered its subscriptions another way"
        return sub


class Link:
    """The node's connection to the NATS cluster (see the module)."""

    def __init__(
        self,
        servers: list[str],
        name: str,
        epoch: int,
        max_inbound: int = MAX_INBOUND,
        heartbeat: float = HEARTBEAT,
        retained: tuple[int, int] = (10_000, 64 << 20),
    ) -> None:
        self.servers = servers
        self.name = name
        self.epoch = epoch
        self.heartbeat = heartbeat
        self.stream = RetainedStream(retained, self._wake)
        self.peers = Peers(3 * heartbeat)
        self.known: tuple[str, ...] = ()  # the live peers when last heard, for other threads
        self._ended: deque[int] = deque()  # barriers that ended, for the server's thread
        self.max_inbound = max_inbound
        self.overflow = 0  # messages dropped because the inbound queue was full
        self.unsent = 0  # events NATS refused to take (buffer full while reconnecting)
        self.connected = False
        self._stopping = False
        self._inbound: deque[bytes | None] = deque()
        self._in_added = 0  # bytes queued inbound (by the link's thread only)
        self._in_taken = 0  # bytes of them taken (by the server's thread only)
        self.handed = 0  # bytes of events given to `send` (by the server's thread only)
        self.taken = 0  # bytes of them NATS took or refused (by the link's thread only)
        self._throttled = False  # the server found the backlog full: wake it when it is not
        self._owe_gap = False  # an event was not sent: say so before the next one
        self._gapped = False  # the last thing queued is a gap
        self._crowding = False  # crowded since the last `take`: the server was woken for it
        self.gaps = 0
        self._signalled = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._loop = asyncio.new_event_loop()
        self._work: asyncio.Queue[tuple[str, Any] | None] | None = None
        self._client: _Client | None = None
        self._subs: dict[str, Subscription] = {}
        self._ready = threading.Event()
        self._failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="es-backbone", daemon=True)

    # --- the server's thread ---------------------------------------------------------------

    def start(self, timeout: float) -> None:
        """Connect, or raise LinkError saying why within `timeout` seconds."""
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop(0)
            raise LinkError(f"no NATS server answered at {', '.join(self.servers)}")
        if self._failure is not None:
            self._thread.join(timeout)
            raise LinkError(self._failure)

    def fileno(self) -> int:
        """What the server polls: readable when messages are waiting."""
        return self._wake_r.fileno()

    @property
    def pending(self) -> bool:
        """Whether messages, retained events or ended barriers are waiting."""
        stream = self.stream
        return bool(self._inbound or self._ended or stream.arrived or stream.settled)

    def retain(self, token: int, events: list[tuple[str, bytes, float | None]]) -> None:
        """Keep a publish's retained events (stream subject, body, seconds to live) in
        JetStream, in order; `settled` then gives `token` back. (Publishes are held for the
        stream only while `stream.on`: es.cluster.node.)"""
        self._hand("retain", (token, events))

    def settled(self) -> list[tuple[int, str | None]]:
        """The publishes whose retained events the stream took (None) or did not (why not)."""
        settled = self.stream.settled
        return [settled.popleft() for _ in range(len(settled))]

    def take_retained(self) -> list[tuple[bytes, float | None]]:
        """Retained events the stream brought (body, seconds to live), oldest first."""
        arrived = self.stream.arrived
        return [arrived.popleft() for _ in range(len(arrived))]

    def barrier(self, token: int) -> None:
        """Make sure every live peer knows of the subscriptions handed over so far; `ended`
        gives `token` back once it does (or at BARRIER_TIMEOUT)."""
        self._hand("barrier", token)

    def ended(self) -> list[int]:
        """The barriers that ended since the last call."""
        ended = self._ended
        return [ended.popleft() for _ in range(len(ended))]

    @property
    def backlogged(self) -> bool:
        """Whether events handed over and not yet taken by NATS are over MAX_BACKLOG bytes."""
        if self.handed - self.taken <= MAX_BACKLOG:
            return False
        self._throttled = True
        return True

    @property
    def crowded(self) -> bool:
        """Whether half the inbound queue's bound, in messages or bytes, waits to be taken."""
        return (
            2 * len(self._inbound) >= self.max_inbound
            or 2 * (self._in_added - self._in_taken) >= MAX_INBOUND_BYTES
        )

    def take(self, most: int) -> list[bytes | None]:
        """Up to `most` waiting message bodies, oldest first; None where some may be missing."""
        self.hush()
        self._signalled = False  # before taking: a message added now wakes the poll again
        self._crowding = False
        inbound = self._inbound
        taken = [inbound.popleft() for _ in range(min(most, len(inbound)))]
        self._in_taken += sum([len(body) for body in taken if body is not None])
        return taken

    def hush(self) -> None:
        """Empty the wake pipe without taking anything (the server cannot take now, during a
        stall): no new byte comes until the next `take`, so the poll does not spin."""
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def send(self, messages: list[tuple[str, bytes]]) -> None:
        """Publish (subject, body) messages, in order."""
        self.handed += sum([len(body) for _, body in messages])
        self._hand("send", messages)

    def listen(self, start: list[str], stop: list[str]) -> None:
        """Start and stop listening on NATS filters."""
        self._hand("listen", (start, stop))

    def stop(self, timeout: float) -> None:
        """Publish what was handed over, close the connection, end the thread."""
        self._stopping = True
        if self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._put, None)
            self._thread.join(timeout)
        self._wake_r.close()
        self._wake_w.close()

    def _hand(self, kind: str, work: Any) -> None:
        self._loop.call_soon_threadsafe(self._put, (kind, work))

    # --- the link's thread -----------------------------------------------------------------

    def _put(self, item: tuple[str, Any] | None) -> None:
        assert self._work is not None
        self._work.put_nowait(item)

    def _arrived(self, subject: bytes, data: bytes) -> None:
        """A message on one of our filters (called by nats-py's reader, in wire order)."""
        full = (
            len(self._inbound) >= self.max_inbound
            or self._in_added - self._in_taken + len(data) > MAX_INBOUND_BYTES
        )
        if subject == _GAPS or full:
            self.overflow += subject != _GAPS
            self._gap()
            return
        self._gapped = False
        self._in_added += len(data)
        self._inbound.append(data)
        if not self._crowding and self.crowded:  # the server may be in a stall, hushed
            self._crowding, self._signalled = True, False
        self._wake()

    def _gap(self) -> None:
        """Messages may be missing here: one gap for the stretch (the bound may be passed by
        this one entry)."""
        if not self._gapped:
            self._gapped = True
            self.gaps += 1
            self._inbound.append(None)
            self._wake()

    def _wake(self) -> None:
        if not self._signalled:
            self._signalled = True
            with contextlib.suppress(BlockingIOError):  # a full pipe: a wake is waiting anyway
                self._wake_w.send(b"\0")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._main())
            left = asyncio.all_tasks(self._loop)  # nats-py's own, after it closed
            for task in left:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        finally:
            self._loop.close()

    async def _main(self) -> None:
        self._work = asyncio.Queue()
        client = self._client = _Client(self._arrived)
        try:
            await client.connect(
                servers=self.servers,
                name=f"es node {self.name}",
                no_echo=True,  # our own events are delivered here already
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=_RECONNECT_WAIT,
                connect_timeout=2,
                pending_size=_PENDING_BYTES,
                error_cb=self._error,
                disconnected_cb=self._disconnected,
                reconnected_cb=self._reconnected,
            )
        except (TimeoutError, NatsError, OSError) as exc:
            self._failure = f"cannot connect to NATS at {', '.join(self.servers)}: {exc!r}"
            self._ready.set()
            return
        self.connected = True
        await client.subscribe_ordered(GAPS)  # read in order with events: a gap falls in place
        await client.subscribe(HEARTBEATS, cb=self._heard)
        await client.subscribe(BARRIERS, cb=self._asked)
        loop = asyncio.get_running_loop()
        beating = loop.create_task(self._beat())
        opening = loop.create_task(self.stream.open(client.jetstream()))  # it may be electing
        keeping = loop.create_task(self.stream.keep(client.jetstream()))
        self._ready.set()
        log.info("backbone: connected to %s as node %s", _where(client), self.name)
        try:
            while (item := await self._work.get()) is not None:
                await self._carry_out(*item)
        finally:
            for task in (beating, opening, keeping):
                task.cancel()
            with contextlib.suppress(NatsError, OSError, asyncio.TimeoutError):
                await client.flush(timeout=2)
            with contextlib.suppress(NatsError, OSError):
                await client.close()

    async def _carry_out(self, kind: str, work: Any) -> None:
        client = self._client
        assert client is not None
        if kind == "barrier":
            asyncio.get_running_loop().create_task(self._barrier(work))
            return
        if kind == "send":
            await self._send(client, work)
            return
        if kind == "retain":  # a queue of their own: a retry must not hold up the events
            self.stream.put(*work)
            return
        start, stop = work
        for nats_filter in stop:
            sub = self._subs.pop(nats_filter, None)
            if sub is not None:
                client.ordered.discard(sub._id)
                with contextlib.suppress(NatsError):
                    await sub.unsubscribe()
        for nats_filter in start:
            self._subs[nats_filter] = await client.subscribe_ordered(nats_filter)

    async def _send(self, client: _Client, messages: list[tuple[str, bytes]]) -> None:
        """Publish events; one NATS refuses is counted, and a gap goes before the next."""
        for subject, body in messages:
            try:
                if self._owe_gap:
                    await client.publish(GAPS, pack_control("gap", self.name, self.epoch))
                    self._owe_gap = False
                await client.publish(subject, body)
            except NatsError as exc:
                self.unsent += 1
                self._owe_gap = True
                log.debug("backbone: publish refused: %r", exc)
        self.taken += sum([len(body) for _, body in messages])
        if self._throttled and self.handed - self.taken <= MAX_BACKLOG // 2:
            self._throttled = False
            self._wake()  # the server may read requests again

    async def _beat(self) -> None:
        """A heartbeat every `heartbeat` seconds, for as long as the link runs."""
        while True:
            await self._say(HEARTBEATS, "hb")
            self._look(time.monotonic())  # a peer may have gone silent
            await asyncio.sleep(self.heartbeat)

    def _look(self, now: float) -> None:
        """Note the live peers for the server's thread, and wake it when they changed."""
        known = tuple(sorted(self.peers.live(now)))
        if known != self.known:
            self.known = known
            self._wake()

    async def _say(self, subject: str, kind: str, reply: str = "") -> None:
        assert self._client is not None
        with contextlib.suppress(NatsError):
            await self._client.publish(subject, pack_control(kind, self.name, self.epoch), reply)

    async def _heard(self, msg: Any) -> None:
        """A heartbeat: note the peer; a new one hears ours at once."""
        try:
            _, node, epoch = unpack_control(msg.data)
        except BadFrame:
            return
        if node == self.name:
            return
        now = time.monotonic()
        news = self.peers.heard(node, epoch, now)
        self._look(now)
        if news:
            await self._say(HEARTBEATS, "hb")

    async def _asked(self, msg: Any) -> None:
        """A peer's barrier: answer it (our NATS server already has its subscriptions)."""
        if msg.reply:
            await self._say(msg.reply, "here")

    async def _barrier(self, token: int) -> None:
        """Ask every live peer, and wait for their answers (at most BARRIER_TIMEOUT)."""
        client = self._client
        assert client is not None
        now = time.monotonic()
        barrier = Barrier(self.peers.live(now), now + BARRIER_TIMEOUT)
        if not barrier.done(now):
            answered = asyncio.Event()

            async def answer(msg: Any) -> None:
                with contextlib.suppress(BadFrame):
                    barrier.answer(unpack_control(msg.data)[1])
                if barrier.done(time.monotonic()):
                    answered.set()

            inbox = client.new_inbox()
            sub = await client.subscribe(inbox, cb=answer)
            await self._say(BARRIERS, "barrier", inbox)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(answered.wait(), BARRIER_TIMEOUT)
            with contextlib.suppress(NatsError):
                await sub.unsubscribe()
            if barrier.waiting:
                log.warning("backbone: no answer from %s", ", ".join(sorted(barrier.waiting)))
        self._ended.append(token)
        self._wake()

    async def _error(self, exc: Exception) -> None:
        log.warning("backbone: %s", exc)

    async def _disconnected(self) -> None:
        self.connected = False
        if not self._stopping:
            self._gap()  # what NATS sent meanwhile is lost with the connection
            self._owe_gap = True  # and what we sent that it had not passed on: the peers are told
            log.warning("backbone: disconnected from NATS; reconnecting")

    async def _reconnected(self) -> None:
        self.connected = True
        assert self._client is not None
        log.warning("backbone: reconnected to %s", _where(self._client))


def _where(client: Client) -> str:
    """The server a client is connected to, as host:port."""
    url = client.connected_url
    return f"{url.hostname}:{url.port}" if url is not None else "(none)"
