"""The ZeroMQ shell of the event server: sockets, the poll loop, shutdown.

Invariants:
- Every socket here lives in the thread that runs `serve()`. Other threads and signal handlers
  reach the loop only through `stop()`, which sets a flag and writes one byte to a socketpair
  the loop polls.
- The shell decides nothing about events: it hands each request to the flow (es.flow), in the
  order read, and carries out the actions it gets back (replies, sends, sockets to open or close,
  writes to storage). It reads no requests while the flow's backlog is full, so ZeroMQ's own
  high-water marks push back on the clients; during a stall it waits for the ACKs that end it.
- Each turn of the loop handles a bounded number of messages, so a flood from one client cannot
  keep the loop from noticing a stop request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Literal

import zmq

from clients.address import tcp_endpoint
from clients.errors import ErrorCode, EsError
from clients.naming import locate_ns
from clients.security import (
    Keys,
    as_server,
    release,
)
from clients.waker import readable
from clients.wire import MAX_HEADER_BYTES, public_id
from es.actions import Action, Close, Open, Reply, Send
from es.broker import Broker
from es.cluster.node import Node
from es.config import ServerConfig
from es.daemon.lifecycle import Daemon, ExitCode
from es.daemon.security import HandshakeWatch, server_keys, warn_if_exposed
from es.daemon.sizing import size_for
from es.deliveries import Deliveries
from es.flow import Flow, Inbound
from es.outcomes import Full, OpenFailed, Outcome, Refill, Stalled
from es.records import Storage, StorageError, StoredEvent, StoredSubscriber
from es.registration import Registration
from es.storage import open_storage

__all__ = ["BindError", "EventServer", "ExitCode"]

log = logging.getLogger("es.server")

# How often the loop reads socket-monitor events and removes dead or stalled subscribers.
_HOUSEKEEPING = 0.5
# No ZMTP heartbeats: with them libzmq 4.3.x can abort on an assertion (!_io_error, issues #4364,
# #4841) when a peer goes away mid-stream, as our fuzz test found under load. Liveness rests on
# the application heartbeat and socket monitors instead.

# The ZAP domain of the control socket: which client keys it accepts.
_ZAP_DOMAIN = "es"

# Messages handled per turn before the loop polls again (and so notices a stop request).
_TURN = 512
# Longest a turn reads requests before it sends what they gathered: what one client's requests
# can add to the delay of another's events, past the cost of the one request being handled.
_TURN_SECONDS = 0.005
_OPEN_FAILED = {
    ErrorCode.LIMIT_EXCEEDED: "the server is out of descriptors for subscribers",
    ErrorCode.BAD_ENDPOINT: "cannot connect to {endpoint}",
}


class BindError(OSError):
    """The control socket could not bind (address in use, or not an address of this host)."""


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
        self._deliveries: Deliveries | None = None  # made with the context, in serve()
        self._next_housekeeping = 0.0
        # Both pollers wait for the waker and for ACKs on the watched delivery sockets; readers
        # for requests too (sleepers serve while the backlog is full).
        self._readers = zmq.Poller()
        self._sleepers = zmq.Poller()
        self._watching: dict[zmq.Socket[bytes], str] = {}  # watched delivery sockets -> sids
        self._node: Node | None = None  # in a cluster (es serve --cluster)
        self.broker = Broker(config, now=clock())
        self.flow = Flow()

    def serve(self) -> int:
        """Bind, announce readiness, serve until stopped; return the process exit code."""
        try:
            self._keys = server_keys(self.config.ident, self.config.keys_dir)
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            return self._failed_to_start(ExitCode.USAGE)
        try:
            self._storage = open_storage(self.config.storage, self.config.fsync)
            kept = list(self._storage.subscribers()), list(self._storage.retained())
        except (ValueError, StorageError) as exc:
            log.error("cannot use storage %s: %s", self.config.storage, exc)
            if self._storage is not None:
                self._storage.close()
            return self._failed_to_start(ExitCode.USAGE)
        self.broker.use(self._storage)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        wanted = self.config.limits.max_subscribers
        capacity = size_for(ctx, wanted)
        (log.warning if capacity.bound_by else log.info)("%s", capacity.describe(wanted))
        self.broker.limit_room(capacity.subscribers)
        self._ctx = ctx
        self._deliveries = Deliveries(ctx, self._keys)
        try:
            self._router, endpoint = self._bind(ctx)
        except BindError as exc:
            log.error("%s", exc)
            release(ctx, _ZAP_DOMAIN)
            ctx.destroy(linger=0)
            self._storage.close()
            return self._failed_to_start(ExitCode.BIND)
        if self.config.cluster is not None:
            self._node = Node.join(self.broker, self.config)
            if self._node is None:
                self._close_all()
                return self._failed_to_start(ExitCode.CLUSTER)
            self._readers.register(self._node.link, zmq.POLLIN)
            self._sleepers.register(self._node.link, zmq.POLLIN)
        registration = self._register(endpoint) if self.config.use_naming else None
        if registration is False:
            self._close_all()
            return self._failed_to_start(ExitCode.NAMING)
        try:
            self._restore(*kept)
            self._announce(endpoint)
            self._loop()
            if registration:  # gone from the name server first: no new clients for a dying server
                registration.stop(remove=not self._force)
            self.exit_code = ExitCode.FORCED if self._force else self._drain()
        finally:
            self._close_all()
        return self.exit_code

    def _restore(self, subscribers: list[StoredSubscriber], retained: list[StoredEvent]) -> None:
        """Take back the subscribers and retained events storage kept, and reconnect to them."""
        mono = time.monotonic()
        restored = self.broker.restore(subscribers, retained, mono, self._clock())
        for action in self.flow.route(restored, mono):
            self._apply([action])  # one at a time: a socket that cannot be made stops no other
        if subscribers or retained:
            log.info(
                "restored %d subscriber(s) and %d retained event(s) from %s",
                len(self._deliveries or ()),
                len(retained),
                self.config.storage,
            )

    def _register(self, endpoint: str) -> Registration | Literal[False]:
        """Claim :Pyro.EventService and keep it; False (after logging why) if that is impossible."""
        config, shared = self.config, self.config.cluster is not None  # a node: beside the others
        try:
            ns = locate_ns(config.ns_address, keys=self._keys)
            registration = Registration(endpoint, ns, config.ns_lease, self._keys, shared=shared)
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
        address = tcp_endpoint(self.config.host, self.config.port)
        try:
            router.bind(address)
        except zmq.ZMQError as exc:
            router.close()
            raise BindError(f"cannot bind {address}: {exc.strerror}") from None
        endpoint = router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._handshakes = HandshakeWatch(router, "event server")
        self._readers.register(router, zmq.POLLIN)
        self._readers.register(self._waker, zmq.POLLIN)
        self._sleepers.register(self._waker, zmq.POLLIN)
        secured = "CurveZMQ" if self._keys else "no security"
        log.info("event server listening on %s (%s)", endpoint, secured)
        warn_if_exposed(self.config.host, self._keys, "event server")
        return router, endpoint

    # --- the loop --------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop_requested:
            self._turn()

    def _turn(self) -> int:
        """One turn: housekeeping, then the backlog, or a wait for requests (and, during a stall,
        for the ACKs that end it) and up to _TURN of them. Returns the requests handled."""
        self._housekeeping()
        flow = self.flow
        if flow.stalled:
            mono = time.monotonic()
            for sid in flow.waiting():  # fresh news of those waited for, not at the next tick
                self._read_link(sid, mono)
            for sid, dropped in flow.expire(mono):
                log.warning(
                    "subscriber %s: gave up waiting for room, %d event(s) dropped",
                    public_id(sid),
                    dropped,
                )
        if flow.busy and not flow.stalled:
            for _ in range(_TURN):
                inbound = flow.next_ready()
                if inbound is None:
                    break
                self._handle(inbound, time.monotonic())
            self._flush()
            return 1
        wake = self._next_housekeeping
        due = flow.deadline()
        if due is not None:
            wake = min(wake, due)
        self._watch(flow.watched())
        poller = self._readers if self._reading() else self._sleepers
        node = self._node  # a stall holds other nodes' events too, unless too many wait
        taking = node is not None and (not flow.stalled or node.link.crowded)
        waiting = taking and node is not None and node.pending
        ready = poller.poll(0 if waiting else max(0, int((wake - time.monotonic()) * 1000)) + 1)
        self._waker.clear_if_woken(ready)
        if taking and node is not None and node.pending:
            self._take_in(node)
        elif node is not None:
            node.link.hush()  # nothing taken during a stall: the pipe must not keep waking us
        acks = [self._watching[socket] for socket, _ in ready if socket in self._watching]
        if acks:  # room: what it made room for goes out now, not after the requests
            self._read_acks(acks)
            self._flush()
        return self._read_requests()

    def _reading(self) -> bool:
        """Whether to read requests: the flow's backlog has room, and so has the backbone's."""
        return self.flow.reading() and (self._node is None or not self._node.link.backlogged)

    def _take_in(self, node: Node) -> None:
        """Events from other nodes: fanned out here, then sent before the requests are read.
        (During a stall they wait in the link until it is crowded, then go without waiting.)"""
        mono, hurry = time.monotonic(), self.flow.stalled
        self._apply(node.released())
        self._apply([] if hurry else node.settle(self.flow, mono))  # a PUB waits for no stall
        self._apply(self.flow.route(node.losses(self._clock()), mono))
        for actions in node.runs(mono, _TURN, self._clock(), wait=not hurry):
            self._apply(self.flow.route(actions, mono))
            if self.flow.stalled and not (hurry and node.link.crowded):
                break
        self._flush()

    def _watch(self, sids: list[str]) -> None:
        """Poll the delivery sockets of `sids` for ACKs (their queues need them), and no others."""
        assert self._deliveries is not None
        sockets = [(self._deliveries.socket(sid), sid) for sid in sids]
        wanted = {socket: sid for socket, sid in sockets if socket is not None}
        if wanted.keys() == self._watching.keys():
            return
        for socket in self._watching.keys() - wanted.keys():
            self._readers.unregister(socket)
            self._sleepers.unregister(socket)
        for socket in wanted.keys() - self._watching.keys():
            self._readers.register(socket, zmq.POLLIN)
            self._sleepers.register(socket, zmq.POLLIN)
        self._watching = wanted

    def _read_acks(self, sids: list[str]) -> None:
        """Hand the broker the ACKs that came back on these subscribers' delivery connections."""
        assert self._deliveries is not None
        self._hear(self._deliveries.acks(sids), time.monotonic())

    def _read_requests(self) -> int:
        """Read waiting requests, up to _TURN of them or for _TURN_SECONDS, handling each the
        flow admits now; then send what they gathered."""
        assert self._router is not None
        flow, handled = self.flow, 0
        mono = time.monotonic()
        until = mono + _TURN_SECONDS
        while handled < _TURN and self._reading() and mono < until:
            if handled == 1 and not readable(self._router):
                break  # the usual turn at a light load: one request, and no exception to end it
            try:
                inbound = self._receive()
            except zmq.Again:
                break
            handled += 1
            if flow.admit(inbound):
                self._handle(inbound, mono)
            mono = time.monotonic()
        self._flush()
        return handled

    def _flush(self, everything: bool = False) -> None:
        """Send what the flow gathered, once what durable subscribers' logs took is committed
        (a failed commit first turns into its answers: es.durables)."""
        failed = self.broker.commit(everything)
        if failed:
            self._apply(self.flow.route(failed, time.monotonic()))
        self._apply(self.flow.flush(self.broker.holding()))
        if self._node is not None:
            self._node.send_out()

    def _handle(self, inbound: Inbound, mono: float) -> None:
        """One request, one way through: what was gathered before it if it must go first, the
        broker's answer, the flow's routing of it; then the shell carries it out."""
        stalled = self.flow.stalled
        if self.flow.flushes_before(inbound):
            self._flush()
        actions = self.broker.handle(
            inbound.peer, inbound.frames, self._clock(), mono, inbound.owner
        )
        if self._node is not None:
            actions = self._node.after(actions, self.flow)
        self._apply(self.flow.route(actions, mono))
        if self.flow.stalled and not stalled:  # a stall that has just begun
            waiting = ", ".join(map(public_id, self.flow.waiting()))
            log.debug("publish waits: queue of subscriber(s) %s full", waiting)

    def _hear(self, outcomes: list[Outcome], mono: float) -> None:
        """Tell the broker what happened; carry out what follows, through the flow."""
        if outcomes:
            self._apply(self.flow.route(self.broker.hear(outcomes, mono), mono))

    def _receive(self) -> Inbound:
        """The next request (zmq.Again if there is none): its peer, frames, and, with security,
        the client key its connection proved (what ZAP made its User-Id), which owns the
        subscribers it makes (SPEC 7.1)."""
        assert self._router is not None
        if self._keys is None:
            message = self._router.recv_multipart(zmq.NOBLOCK)
            return Inbound(message[0], message[1:], None)
        first = self._router.recv(zmq.NOBLOCK, copy=False)
        frames = self._router.recv_multipart(zmq.NOBLOCK) if first.more else []
        owner = first.get("User-Id")
        return Inbound(first.bytes, frames, owner if isinstance(owner, str) and owner else None)

    def _read_link(self, sid: str, mono: float) -> None:
        """Pass on what the subscriber's socket monitor saw: its connection up or down."""
        assert self._deliveries is not None
        self._hear(self._deliveries.links(sid), mono)

    def _housekeeping(self) -> None:
        """Every _HOUSEKEEPING seconds: note link changes, remove dead and stalled subscribers."""
        mono = time.monotonic()
        if mono < self._next_housekeeping:
            return
        self._next_housekeeping = mono + _HOUSEKEEPING
        if self._handshakes is not None:
            self._handshakes.poll()
        assert self._deliveries is not None
        sids = self._deliveries.sids()
        for sid in sids:
            self._read_link(sid, mono)
        self._read_acks(sids)  # how far each got, for depth and lag
        actions = self.flow.route(self.broker.sweep(mono, self._clock()), mono)
        for action in actions:
            if isinstance(action, Close):
                log.warning("subscriber %s removed (%s)", public_id(action.sid), action.reason)
        self._apply(actions)
        self._flush(everything=True)  # what was only forgotten is written at least this often
        self._compact()

    def _compact(self) -> None:
        """A bounded step of giving space that acknowledged and dropped events freed back to
        the file system (es.storage); a failure is logged, and tried again later."""
        if self._storage is None:
            return
        try:
            self._storage.compact()
        except StorageError as exc:
            log.warning("%s", exc)

    def _apply(self, actions: Sequence[Action | Outcome]) -> None:
        """Carry out actions in order; pass the outcomes among them on to the broker. A
        subscriber's sends that fail are handed back to the flow (with its later sends of the
        same list), which counts their events as lost."""
        refused: dict[str, list[Send]] = {}
        heard: list[Outcome] = []
        for action in actions:
            match action:
                case Send(sid):
                    if sid in refused:
                        refused[sid].append(action)
                    elif self._deliveries is None or not self._deliveries.send(action):
                        refused[sid] = [action]
                case Reply(peer, frames):
                    self._reply(peer, frames)
                case Open(sid, endpoint, queue_size, peer, rid, key):
                    assert self._deliveries is not None
                    code = self._deliveries.open(sid, endpoint, queue_size, key)
                    if code is not None:
                        message = _OPEN_FAILED[code].format(endpoint=endpoint)
                        heard.append(OpenFailed(sid, peer, rid, code, message))
                        break  # its error replaces the rest of the request's actions
                case Close(sid):
                    self._close(sid)
                case Stalled() | Full() | Refill():
                    heard.append(action)
        for sends in refused.values():
            self.flow.refused(sends)
        if heard:
            self._hear(heard, time.monotonic())

    def _reply(self, peer: bytes, frames: list[bytes]) -> None:
        assert self._router is not None
        try:
            self._router.send_multipart([peer, *frames], zmq.NOBLOCK)
        except zmq.Again:  # the client does not read its replies; ROUTER drops, as it should
            log.debug("reply to an unresponsive client dropped")

    def _close(self, sid: str) -> None:
        assert self._deliveries is not None
        dealer = self._deliveries.socket(sid)
        if dealer is not None and self._watching.pop(dealer, None) is not None:
            self._readers.unregister(dealer)
            self._sleepers.unregister(dealer)
        self._deliveries.close(sid)

    # --- shutdown --------------------------------------------------------------------------------

    def _drain(self) -> int:
        """Finish what already arrived, within drain_timeout; then let queued events leave."""
        deadline = time.monotonic() + self.config.drain_timeout
        log.info(
            "draining (up to %.1f s); interrupt again to stop at once", self.config.drain_timeout
        )
        while time.monotonic() < deadline and not self._force:
            if not self._turn() and not (self.flow.busy or self.flow.holding):
                break
        if self._force:
            return ExitCode.FORCED
        if self._deliveries is not None:
            self._deliveries.linger(max(0, int((deadline - time.monotonic()) * 1000)))
        return ExitCode.OK

    def _close_all(self) -> None:
        ctx = self._ctx
        if ctx is None:
            return
        if self._handshakes is not None:
            self._handshakes.close()
        if self._node is not None:
            self._node.stop(self.config.drain_timeout)
        if self._router is not None:
            self._router.close(linger=0)  # before the goodbyes: no client finds this one again
        if self._deliveries is not None:
            if not self._force:  # a BYE behind each subscriber's last events (SPEC 5.2)
                for sid, frames in self.broker.goodbyes():
                    self._deliveries.goodbye(sid, frames)
            self._deliveries.close_all(linger=not self._force)
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
