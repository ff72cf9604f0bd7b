"""The ZeroMQ shell of the event server: sockets, the poll loop, stalls, shutdown.

Invariants:
- Every socket here lives in the thread that runs `serve()`. Other threads and signal handlers
  reach the loop only through `stop()`, which sets a flag and writes one byte to a socketpair
  the loop polls.
- Requests are handled strictly in arrival order. The fan-outs of publishes read in one turn
  are gathered (es.gather) into one message per subscriber, sent when the turn ends or before
  any other request is handled. While a block-mode subscriber's queue is full,
  the current publish waits (at most that subscriber's max_stall); requests read meanwhile wait in
  a bounded backlog, except STATS, which is read-only and answered at once. When the backlog is
  full the loop stops reading, so ZeroMQ's own high-water marks push back on publishers.
- Each turn of the loop handles a bounded number of messages, so a flood from one client cannot
  keep the loop from noticing a stop request.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import zmq
from zmq.utils.monitor import recv_monitor_message

from clients.errors import ErrorCode, EsError
from clients.lifecycle import Daemon, ExitCode
from clients.naming import locate_ns
from clients.security import (
    HANDSHAKE_EVENTS,
    HANDSHAKES,
    HandshakeWatch,
    Keys,
    as_client,
    as_server,
    release,
    server_keys,
    warn_if_exposed,
)
from clients.wire import MAX_HEADER_BYTES, peek_command
from es.actions import Action, Batch, Close, Fanout, Open, Persist, PersistRetained, Reply
from es.broker import Broker
from es.config import ServerConfig
from es.gather import Gather
from es.registration import Registration
from es.storage import Storage, open_storage

__all__ = ["BindError", "EventServer", "ExitCode"]

log = logging.getLogger("es.server")

# How often the loop reads socket-monitor events and removes dead or stalled subscribers.
_HOUSEKEEPING = 0.5
# No ZMTP heartbeats (HEARTBEAT_IVL/TIMEOUT/TTL): with them, libzmq 4.3.x can abort the whole
# process on an assertion (!_io_error in stream_engine_base.cpp, libzmq issues #4364 and #4841)
# when a peer goes away mid-stream, which our fuzz test triggered under CPU load. Liveness rests on
# the application heartbeat (silent peers) and socket monitors (dropped connections) instead.

# A connection coming up or going down, and how its handshake ended (clients.security.HANDSHAKES).
_LINK_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | HANDSHAKE_EVENTS
# The ZAP domain of the control socket: which client keys it accepts.
_ZAP_DOMAIN = "es"

# Messages handled per turn before the loop polls again (and so notices a stop request).
_TURN = 512
# Requests held while a publish is stalled; past either bound the loop stops reading the socket
# (and ZeroMQ's high-water marks push back on the clients).
_BACKLOG = 256
_BACKLOG_BYTES = 32 << 20


class BindError(OSError):
    """The control socket could not bind (address in use, or not an address of this host)."""


@dataclass
class _Stall:
    """A fan-out waiting for full block-mode subscribers; deadline per waiting sid."""

    fanout: Fanout
    delivered: set[str] = field(default_factory=set)  # who got their batch
    waiting: dict[str, tuple[Batch, float]] = field(default_factory=dict)


def _size_for(ctx: zmq.Context[zmq.Socket[bytes]], subscribers: int) -> None:
    """Room for a DEALER and a monitor per subscriber: libzmq's default is 1023 sockets, and
    each socket holds file descriptors, so the soft descriptor limit is raised to the hard one."""
    ctx.set(zmq.MAX_SOCKETS, min(ctx.get(zmq.SOCKET_LIMIT), 2 * subscribers + 64))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _size(peer: bytes, frames: list[bytes]) -> int:
    """The bytes a request holds in the backlog."""
    return len(peer) + sum(len(f) for f in frames)


def _bind_endpoint(host: str, port: int) -> str:
    literal = f"[{host}]" if ":" in host else host
    return f"tcp://{literal}:{port}"


class EventServer(Daemon):
    """The event server. `serve()` runs it in this thread; `start()` runs it in a new one.

    >>> server = EventServer(ServerConfig(port=0))
    >>> thread = server.start()
    >>> server.wait_until_started(5.0)
    True
    >>> server.stop(); thread.join()
    """

    thread_name = "es-server"

    def __init__(
        self,
        config: ServerConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(on_ready)
        self.config = config
        self._clock = clock
        self._ctx: zmq.Context[zmq.Socket[bytes]] | None = None
        self._router: zmq.Socket[bytes] | None = None
        self._keys: Keys | None = None
        self._storage: Storage | None = None
        self._handshakes: HandshakeWatch | None = None
        self._dealers: dict[str, zmq.Socket[bytes]] = {}
        self._monitors: dict[str, zmq.Socket[bytes]] = {}
        self._next_housekeeping = 0.0
        self._stall: _Stall | None = None
        self._backlog: deque[tuple[bytes, list[bytes]]] = deque()
        self._backlog_bytes = 0
        self._gather = Gather()
        self._held: deque[Fanout] = deque()  # gathered fan-outs waiting for a stall to end
        self.broker = Broker(config, now=clock())

    def serve(self) -> int:
        """Bind, announce readiness, serve until stopped; return the process exit code."""
        try:
            self._keys = server_keys(self.config.ident, self.config.keys_dir)
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            return self._failed_to_start(ExitCode.USAGE)
        try:
            self._storage = open_storage(self.config.storage)
        except (ValueError, sqlite3.Error) as exc:
            log.error("cannot open storage %s: %s", self.config.storage, exc)
            return self._failed_to_start(ExitCode.USAGE)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        _size_for(ctx, self.config.limits.max_subscribers)
        self._ctx = ctx
        try:
            self._router, endpoint = self._bind(ctx)
        except BindError as exc:
            log.error("%s", exc)
            release(ctx, _ZAP_DOMAIN)
            ctx.destroy(linger=0)
            self._storage.close()
            return self._failed_to_start(ExitCode.BIND)
        registration = self._register(endpoint) if self.config.use_naming else None
        if registration is False:
            self._close_all()
            return self._failed_to_start(ExitCode.NAMING)
        try:
            self._restore()
            self._announce(endpoint)
            self._loop()
            if registration:  # gone from the name server first: no new clients for a dying server
                registration.stop(remove=not self._force)
            self.exit_code = ExitCode.FORCED if self._force else self._drain()
        finally:
            self._close_all()
        return self.exit_code

    def _restore(self) -> None:
        """Take back the subscribers and retained events storage kept, and reconnect to them."""
        assert self._storage is not None
        subscribers = list(self._storage.subscribers())
        retained = list(self._storage.retained())
        for action in self.broker.restore(subscribers, retained, time.monotonic(), self._clock()):
            self._apply([action])  # one at a time: a socket that cannot be made stops no other
        if subscribers or retained:
            log.info(
                "restored %d subscriber(s) and %d retained event(s) from %s",
                len(self._dealers),
                len(retained),
                self.config.storage,
            )

    def _register(self, endpoint: str) -> Registration | Literal[False]:
        """Claim :Pyro.EventService and keep it; False (after logging why) if that is impossible."""
        try:
            ns_endpoint = locate_ns(self.config.ns_address, keys=self._keys)
            registration = Registration(endpoint, ns_endpoint, self.config.ns_lease, self._keys)
            registration.claim()
        except (EsError, ValueError) as exc:
            log.error("%s", exc)
            return False
        registration.start()
        return registration

    def _bind(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> tuple[zmq.Socket[bytes], str]:
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        # ZeroMQ drops a peer that sends a frame larger than this, before it is ever buffered.
        limit = max(self.config.limits.max_message_bytes, MAX_HEADER_BYTES)
        router.setsockopt(zmq.MAXMSGSIZE, limit + 1024)
        if ":" in self.config.host:
            router.setsockopt(zmq.IPV6, 1)
        as_server(router, self._keys, _ZAP_DOMAIN)
        address = _bind_endpoint(self.config.host, self.config.port)
        try:
            router.bind(address)
        except zmq.ZMQError as exc:
            router.close()
            raise BindError(f"cannot bind {address}: {exc.strerror}") from None
        endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._handshakes = HandshakeWatch(router, "event server")
        secured = "CurveZMQ" if self._keys else "no security"
        log.info("event server listening on %s (%s)", endpoint, secured)
        warn_if_exposed(self.config.host, self._keys, "event server")
        return router, endpoint

    # --- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        assert self._router is not None
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._waker, zmq.POLLIN)
        while not self._stop_requested:
            self._housekeeping()
            if self._stall is not None:
                self._wait_stall()
                continue
            if self._gather or self._held:  # left from a turn that a stall cut short
                self._flush_gather()
                continue
            if self._backlog:
                self._run_backlog()
                continue
            ready = poller.poll(
                max(0, int((self._next_housekeeping - time.monotonic()) * 1000)) + 1
            )
            self._waker.clear_if_woken(ready)
            self._read_requests()

    def _read_link(self, sid: str, mono: float) -> None:
        """Pass on what the subscriber's socket monitor saw: its connection up, or down."""
        monitor = self._monitors.get(sid)
        if monitor is None:
            return
        with contextlib.suppress(zmq.Again):
            while True:
                event = int(recv_monitor_message(monitor, zmq.NOBLOCK)["event"])
                if event in HANDSHAKES:
                    ok = HANDSHAKES[event]
                    if ok is not True:
                        log.warning("subscriber %s: handshake with its inbox failed", sid)
                    self.broker.handshake(sid, ok)
                    continue
                self.broker.link(sid, event == zmq.EVENT_CONNECTED, mono)

    def _may_block(self, sid: str, mono: float) -> bool:
        """Block mode holds publishers back only for a subscriber that is connected now: one that
        never connected, or lost its connection, would hold them for nothing (and a client could
        stall everyone by subscribing with an address nobody listens on). Nor for one whose last
        stall ran out until a batch gets through to it again."""
        self._read_link(sid, mono)  # fresh news for this one subscriber, not at the next tick
        return self.broker.may_wait(sid)

    def _housekeeping(self) -> None:
        """Every _HOUSEKEEPING seconds: note link changes, remove dead and stalled subscribers."""
        mono = time.monotonic()
        if mono < self._next_housekeeping:
            return
        self._next_housekeeping = mono + _HOUSEKEEPING
        if self._handshakes is not None:
            self._handshakes.poll()
        for sid in self._monitors:
            self._read_link(sid, mono)
        actions = self.broker.sweep(mono, self._clock())
        for action in actions:
            if isinstance(action, Close):
                reason = self.broker.eviction(action.sid)
                log.warning("subscriber %s removed (%s)", action.sid, reason)
        self._apply(actions)

    def _read_requests(self, limit: int = _TURN) -> int:
        """Handle up to `limit` waiting requests, then send what they gathered; stop early when
        a fan-out stalls."""
        assert self._router is not None
        handled = 0
        while handled < limit and self._stall is None:
            try:
                message = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            handled += 1
            self._take_request(message[0], message[1:])
        self._flush_gather()
        return handled

    def _take_request(self, peer: bytes, frames: list[bytes]) -> bool:
        """Handle a request read in a turn, gathering its fan-out. Anything but a publish first
        sends what was gathered (a PING answers only once earlier events are on their way); if
        that stalls, the request waits at the head of the backlog and False is returned."""
        if (self._gather or self._held) and peek_command(frames) != "PUB":
            self._flush_gather()
            if self._stall is not None:
                self._keep(peer, frames, first=True)
                return False
        self._handle(peer, frames, gather=True)
        return True

    def _flush_gather(self) -> None:
        """Send what was gathered (after anything held before it), unless a stall is on."""
        if self._stall is None:
            self._hold(self._gather.take())

    def _hold(self, fanout: Fanout | None) -> None:
        """Send `fanout` after those held before it; while a stall is on, hold it. (A full
        gathered batch can be handed back in the middle of a request whose earlier fan-out
        started a stall: it must not go out, nor be merged, before the stall ends.)"""
        if fanout is not None:
            self._held.append(fanout)
        while self._held and self._stall is None:
            self._fanout(self._held.popleft())

    def _handle(self, peer: bytes, frames: list[bytes], gather: bool = False) -> None:
        try:
            actions = self.broker.handle(peer, frames, self._clock(), time.monotonic())
        except Exception:  # a bug in the core must not take the server down
            log.exception("internal error handling a request")
            actions = [self.broker.error(peer, 0, ErrorCode.INTERNAL, "internal server error")]
        self._apply(actions, gather)

    def _apply(self, actions: list[Action], gather: bool = False) -> None:
        """Carry out actions in order; with `gather`, fan-outs join the turn's gathering."""
        for action in actions:
            match action:
                case Reply(peer, frames):
                    self._reply(peer, frames)
                case Open(sid, endpoint, hwm, peer, rid, key):
                    if not self._open(sid, endpoint, hwm, key):
                        message = f"cannot connect to {endpoint}"
                        self._apply([self.broker.error(peer, rid, ErrorCode.BAD_ENDPOINT, message)])
                        return  # this error replaces the rest of the request's actions
                case Close(sid):
                    self._close(sid)
                case Persist() | PersistRetained():
                    self._persist(action)
                case Fanout() if gather:
                    self._hold(self._gather.add(action))
                case Fanout():
                    self._fanout(action)

    def _persist(self, action: Persist | PersistRetained) -> None:
        """Write to storage now, before the reply that follows in the same list of actions."""
        assert self._storage is not None
        try:
            match action:
                case Persist(sid, None):
                    self._storage.delete_subscriber(sid)
                case Persist(_, record) if record is not None:
                    self._storage.put_subscriber(record)
                case PersistRetained(key, None):
                    self._storage.delete_retained(key)
                case PersistRetained(key, event) if event is not None:
                    self._storage.put_retained(key, event)
        except sqlite3.Error as exc:  # the server goes on; what it keeps may be stale
            log.error("cannot write to storage %s: %s", self.config.storage, exc)

    def _reply(self, peer: bytes, frames: list[bytes]) -> None:
        assert self._router is not None
        try:
            self._router.send_multipart([peer, *frames], zmq.NOBLOCK)
        except zmq.Again:  # the client does not read its replies; ROUTER drops, as it should
            log.debug("reply to an unresponsive client dropped")

    def _open(self, sid: str, endpoint: str, hwm: int, key: str | None) -> bool:
        assert self._ctx is not None
        dealer = self._ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.SNDHWM, hwm)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.setsockopt(zmq.IPV6, 1)
        # With security the inbox must prove the key the subscriber gave (or, with a passphrase,
        # the shared one), and it accepts only this server's key: nobody else can deliver to it.
        as_client(dealer, self._keys, None if key is None else key.encode())
        try:
            monitor = dealer.get_monitor_socket(_LINK_EVENTS)
            dealer.connect(endpoint)
        except zmq.ZMQError as exc:
            dealer.close()
            self.broker.abandon(sid)
            log.warning("cannot connect to subscriber %s at %s: %s", sid, endpoint, exc)
            return False
        self._dealers[sid] = dealer
        self._monitors[sid] = monitor
        return True

    def _close(self, sid: str) -> None:
        dealer = self._dealers.pop(sid, None)
        monitor = self._monitors.pop(sid, None)
        if dealer is not None:
            dealer.disable_monitor()
            dealer.close(linger=0)
        if monitor is not None:
            monitor.close(linger=0)
        if self._stall is not None:
            self._stall.waiting.pop(sid, None)

    # --- fan-out and stalls ----------------------------------------------------------------------

    def _fanout(self, fanout: Fanout) -> None:
        stall = _Stall(fanout)
        now = time.monotonic()
        # Meta-events can come while a publish is stalled (from housekeeping); they never wait,
        # and one for a subscriber the stalled publish waits on is dropped, so that it cannot
        # overtake that subscriber's earlier event.
        waiting = self._stall.waiting if self._stall is not None else {}
        for batch in fanout.batches:
            if batch.sid not in self._dealers:  # cannot happen while core and shell agree
                log.error("no socket for subscriber %s: batch skipped", batch.sid)
                continue
            if batch.sid in waiting:
                self.broker.dropped(batch.sid, batch.count, now)
            elif self._send(batch):
                stall.delivered.add(batch.sid)
            elif batch.block and batch.max_stall > 0 and self._may_block(batch.sid, now):
                log.debug("publish waits: queue of subscriber %s is full", batch.sid)
                stall.waiting[batch.sid] = (batch, now + batch.max_stall)
                self.broker.stalled(batch.sid, now)
            else:
                self.broker.dropped(batch.sid, batch.count, now)
        if stall.waiting:  # only ever for a publish: nothing else is read during a stall
            self._stall = stall
        else:
            self._finish(stall)

    def _send(self, batch: Batch) -> bool:
        dealer = self._dealers.get(batch.sid)
        if dealer is None:
            return False
        try:
            dealer.send_multipart(batch.frames(), zmq.NOBLOCK)
        except zmq.Again:
            return False
        self.broker.delivered(batch.sid, batch.count, batch.last_seq)
        return True

    def _finish(self, stall: _Stall) -> None:
        if self._stall is stall:
            self._stall = None
        for confirm in stall.fanout.confirms:
            receivers = len(confirm.sids & stall.delivered)
            self._apply([self.broker.confirmation(confirm, receivers)])

    def _wait_stall(self) -> None:
        """One wait for the stalled subscribers' queues to have room, or for their deadlines."""
        stall = self._stall
        assert stall is not None
        if not stall.waiting:  # every waiting subscriber was removed meanwhile
            self._finish(stall)
            return
        poller = zmq.Poller()
        poller.register(self._waker, zmq.POLLIN)
        if self._backlog_has_room():
            poller.register(self._router, zmq.POLLIN)
        for sid in stall.waiting:
            poller.register(self._dealers[sid], zmq.POLLOUT)
        deadline = min(self._next_housekeeping, *(d for _, d in stall.waiting.values()))
        ready = poller.poll(max(0, int((deadline - time.monotonic()) * 1000) + 1))
        self._waker.clear_if_woken(ready)
        now = time.monotonic()
        for sid, (batch, due) in list(stall.waiting.items()):
            if self._send(batch):
                stall.delivered.add(sid)
                del stall.waiting[sid]
            elif now >= due:
                log.warning(
                    "subscriber %s stalled over %.1f s: event dropped", sid, batch.max_stall
                )
                self.broker.stall_expired(sid, batch.count, now)
                del stall.waiting[sid]
        self._read_into_backlog()
        if not stall.waiting:
            self._finish(stall)

    def _keep(self, peer: bytes, frames: list[bytes], first: bool = False) -> None:
        """Put a request in the backlog: at its end, or `first` (one that must go next)."""
        if first:
            self._backlog.appendleft((peer, frames))
        else:
            self._backlog.append((peer, frames))
        self._backlog_bytes += _size(peer, frames)

    def _backlog_has_room(self) -> bool:
        return len(self._backlog) < _BACKLOG and self._backlog_bytes < _BACKLOG_BYTES

    def _read_into_backlog(self) -> None:
        assert self._router is not None
        while self._backlog_has_room():
            try:
                message = self._router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if self.broker.answers_at_once(message[1:]):
                self._handle(message[0], message[1:])
            else:
                self._keep(message[0], message[1:])

    def _run_backlog(self) -> None:
        handled = 0
        while self._backlog and self._stall is None and handled < _TURN:
            peer, frames = self._backlog.popleft()
            self._backlog_bytes -= _size(peer, frames)
            if not self._take_request(peer, frames):
                break
            handled += 1
        self._flush_gather()

    # --- shutdown --------------------------------------------------------------------------------

    def _drain(self) -> int:
        """Finish what already arrived, within drain_timeout; then let queued events leave."""
        deadline = time.monotonic() + self.config.drain_timeout
        log.info(
            "draining (up to %.1f s); interrupt again to stop at once", self.config.drain_timeout
        )
        while time.monotonic() < deadline and not self._force:
            if self._stall is not None:
                self._wait_stall()
            elif self._backlog:
                self._run_backlog()
            elif self._gather or self._held:
                self._flush_gather()
            elif not self._read_requests():
                break
        if self._force:
            return ExitCode.FORCED
        linger = max(0, int((deadline - time.monotonic()) * 1000))
        for dealer in self._dealers.values():
            dealer.setsockopt(zmq.LINGER, linger)
        return ExitCode.OK

    def _close_all(self) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        if self._handshakes is not None:
            self._handshakes.close()
        if self._router is not None:
            self._router.close(linger=0)
        for monitor in self._monitors.values():
            monitor.close(linger=0)
        self._monitors.clear()
        for dealer in self._dealers.values():
            dealer.close(linger=0 if self._force else None)
        self._dealers.clear()
        release(ctx, _ZAP_DOMAIN)
        if self._storage is not None:
            self._storage.close()
        self._terminate(ctx)
        self._release()
        log.info("event server stopped")

    def _terminate(self, ctx: zmq.Context[zmq.Socket[bytes]]) -> None:
        """ctx.term() waits for lingering events (bounded by drain_timeout). It runs in a helper
        so that a forced stop can walk away from it; the process then exits without waiting."""
        helper = threading.Thread(target=ctx.term, name="es-term", daemon=True)
        helper.start()
        while helper.is_alive() and not self._force:
            helper.join(0.05)
