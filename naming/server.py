"""The ZeroMQ shell of the name server: the ROUTER, the discovery socket, the URI file.

Invariants:
- Every socket lives in the thread running `serve()`; other threads only call stop().
- Each turn handles a bounded number of requests and datagrams, then sweeps expired leases at
  most every `sweep_interval`, so neither a flood nor silence delays expiry for long.
- The URI file is written after the socket is bound and before the ready announcement, and
  removed on the way out only if it still names this server.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import zmq

from clients.address import local_address_for, tcp_endpoint
from clients.errors import RemoteProtocolError
from clients.naming import uri_file_path
from clients.security import Keys, as_server, release
from clients.wire import MAX_HEADER_BYTES
from clients.wire.ns import MAX_DATAGRAM, decode_where, encode_here
from es.daemon.lifecycle import Daemon, ExitCode
from es.daemon.security import HandshakeWatch, server_keys, warn_if_exposed
from es.daemon.storage import StorageError
from naming.config import NsConfig
from naming.records import Storage
from naming.registry import Registry
from naming.service import NameService, build_service
from naming.storage import open_storage

__all__ = ["NameServerDaemon"]

log = logging.getLogger("ns.server")

_ZAP_DOMAIN = "ns"  # which client keys the ROUTER accepts
_TURN = 512  # requests handled per turn before looking at the clock and the stop flag


class NameServerDaemon(Daemon):
    """The name server. `serve()` runs it here; `start()` in a thread."""

    thread_name = "ns-server"

    def __init__(
        self,
        config: NsConfig,
        *,
        clock: Callable[[], float] = time.time,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(on_ready)
        self.config = config
        self.discovery: str | None = None
        self.uri_file: Path | None = None
        self._clock = clock
        self._handshakes: HandshakeWatch | None = None

    def serve(self) -> int:
        """Bind, answer requests and discovery until stopped; return the exit code."""
        opened = self._open()
        if opened is None:
            return self._failed_to_start(ExitCode.USAGE)
        storage, keys = opened
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        router = ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        router.setsockopt(zmq.MAXMSGSIZE, MAX_HEADER_BYTES + 1024)
        as_server(router, keys, _ZAP_DOMAIN)
        try:
            endpoint = self._bind(router)
        except zmq.ZMQError as exc:
            log.error("cannot bind %s:%s: %s", self.config.host, self.config.port, exc.strerror)
            router.close()
            release(ctx, _ZAP_DOMAIN)
            ctx.term()
            storage.close()
            return self._failed_to_start(ExitCode.BIND)
        warn_if_exposed(self.config.host, keys, "name server")
        self._handshakes = handshakes = HandshakeWatch(router, "name server")
        udp = self._open_discovery(endpoint)
        failed = False
        try:
            self._run(router, udp, storage, endpoint)
        except StorageError as exc:  # at start: the name server could not register itself
            log.error("%s", exc)
            failed = True
        finally:
            handshakes.close()
            router.close(linger=0)
            if udp is not None:
                udp.close()
            release(ctx, _ZAP_DOMAIN)
            ctx.term()
            storage.close()
            self._remove_uri_file(endpoint)
            self._release()
            log.info("name server stopped")
        if failed:
            self._ready.set()
            self.exit_code = ExitCode.ERROR
        else:
            self.exit_code = ExitCode.FORCED if self.forced else ExitCode.OK
        return self.exit_code

    def _open(self) -> tuple[Storage, Keys | None] | None:
        """The storage and the keys the configuration names; None (after logging why) if one
        of them cannot be used."""
        try:
            storage = open_storage(self.config.storage)
        except (ValueError, StorageError) as exc:
            log.error("cannot use storage %s: %s", self.config.storage, exc)
            return None
        try:
            keys = server_keys(self.config.ident, self.config.keys_dir)
        except (OSError, ValueError) as exc:
            log.error("%s", exc)
            storage.close()
            return None
        return storage, keys

    def _run(
        self, router: zmq.Socket[bytes], udp: socket.socket | None, storage: Storage, endpoint: str
    ) -> None:
        cfg = self.config
        registry = Registry(
            storage, min_lease=cfg.min_lease, max_lease=cfg.max_lease, max_names=cfg.max_names
        )
        registry.expire(self._clock())
        service = build_service(registry, endpoint, self._clock())
        self._write_uri_file(endpoint)
        secured = "CurveZMQ" if cfg.ident or cfg.keys_dir else "no security"
        log.info("name server listening on %s (storage %s, %s)", endpoint, cfg.storage, secured)
        self._announce(endpoint)
        poller = zmq.Poller()
        poller.register(router, zmq.POLLIN)
        poller.register(self._waker, zmq.POLLIN)
        if udp is not None:
            poller.register(udp, zmq.POLLIN)
        next_sweep = time.monotonic() + cfg.sweep_interval
        handshakes = self._handshakes
        assert handshakes is not None
        while not self._stop_requested:
            ready = poller.poll(max(0, int((next_sweep - time.monotonic()) * 1000)) + 1)
            self._waker.clear_if_woken(ready)
            self._answer_requests(router, service)
            if udp is not None:
                self._answer_discovery(udp, endpoint)
            if time.monotonic() >= next_sweep:
                handshakes.poll()
                try:
                    for name in registry.expire(self._clock()):
                        log.info("lease of %s expired", name)
                except StorageError as exc:  # tried again at the next sweep
                    log.error("%s", exc)
                next_sweep = time.monotonic() + cfg.sweep_interval

    def _bind(self, router: zmq.Socket[bytes]) -> str:
        if ":" in self.config.host:
            router.setsockopt(zmq.IPV6, 1)
        router.bind(tcp_endpoint(self.config.host, self.config.port))
        return router.getsockopt_string(zmq.LAST_ENDPOINT)

    # --- requests and discovery ----------------------------------------------------------------

    def _answer_requests(self, router: zmq.Socket[bytes], service: NameService) -> None:
        for _ in range(_TURN):
            try:
                peer, *frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                reply = service.handle(frames, self._clock())
            except Exception:  # a bug must not take the name server down
                log.exception("internal error handling a request")
                continue
            with contextlib.suppress(zmq.Again):
                router.send_multipart([peer, *reply], zmq.NOBLOCK)

    def _open_discovery(self, endpoint: str) -> socket.socket | None:
        """A UDP socket answering WHERE broadcasts on the same port number as the ROUTER."""
        if not self.config.discovery or ":" in self.config.host:
            return None  # IPv6 has no broadcast
        address = ipaddress.ip_address(self.config.host)
        # A broadcast to 127.255.255.255 reaches a socket bound there, not one on 127.0.0.1.
        listen = "127.255.255.255" if address.is_loopback else "0.0.0.0"
        port = int(endpoint.rsplit(":", 1)[1])
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((listen, port))
        except OSError as exc:
            log.warning("discovery off: cannot bind udp %s:%d: %s", listen, port, exc)
            udp.close()
            return None
        udp.setblocking(False)
        self.discovery = f"udp://{listen}:{port}"
        return udp

    def _answer_discovery(self, udp: socket.socket, endpoint: str) -> None:
        for _ in range(_TURN):
            try:
                data, asker = udp.recvfrom(MAX_DATAGRAM + 1)
            except BlockingIOError:
                return
            try:
                nonce = decode_where(data)
            except RemoteProtocolError:
                continue  # not a question of ours: no answer, so no amplification
            with contextlib.suppress(OSError):
                udp.sendto(encode_here(nonce, self._reachable(endpoint, asker[0])), asker)

    def _reachable(self, endpoint: str, asker: str) -> str:
        """The endpoint as the asker can reach it (a wildcard bind names no address)."""
        if not ipaddress.ip_address(self.config.host).is_unspecified:
            return endpoint
        port = endpoint.rsplit(":", 1)[1]
        return f"tcp://{local_address_for(f'tcp://{asker}:{port}')}:{port}"

    # --- URI file --------------------------------------------------------------------------------

    def _write_uri_file(self, endpoint: str) -> None:
        path = uri_file_path(self.config.uri_file)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{os.getpid()}")
            partial.write_text(endpoint + "\n")
            partial.replace(path)  # atomic: a reader sees the old file or the new one
        except OSError as exc:
            log.warning("cannot write URI file %s: %s", path, exc)
            return
        self.uri_file = path

    def _remove_uri_file(self, endpoint: str) -> None:
        path = self.uri_file
        if path is None:
            return
        with contextlib.suppress(OSError):
            if path.read_text().strip() == endpoint:
                path.unlink()
