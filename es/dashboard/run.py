"""Running the dashboard: uvicorn on a socket of its own (so port 0 works and the ready line can
name the port it got), one JSON ready line on stdout, stopped by SIGINT or SIGTERM.

Invariants:
- The ready line is printed once the app has started (its lifespan ran), never before.
- SIGINT and SIGTERM stop it gracefully (uvicorn finishes its requests), and it exits 0; uvicorn
  raises the signal again once done, which here ends as a KeyboardInterrupt.
- It binds 127.0.0.1 unless told otherwise, and warns when told to listen elsewhere read-write:
  its pages can change the names and publish.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Callable

import uvicorn

from es import __version__
from es.daemon.lifecycle import terminate_like_interrupt
from es.dashboard.app import Dashboard, make_app
from es.dashboard.source import Source

__all__ = ["run"]

log = logging.getLogger("es.dashboard")


def run(
    source: Source,
    host: str,
    port: int,
    *,
    read_only: bool,
    ui: bool,
    labels: frozenset[str],
    announce: Callable[[str], None] | None = None,
) -> int:
    """Serve until stopped; the process exit code."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        log.error("cannot bind %s:%d: %s", host, port, exc.strerror)
        sock.close()
        return 3
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    served = f"{shown}:{bound}"
    if not read_only and ui and not _loopback(host):
        log.warning(
            "the dashboard listens on %s and can change names and publish: "
            "use --read-only, or keep it behind a proxy that checks who comes",
            host,
        )
    board = Dashboard(source, served, read_only=read_only, ui=ui, labels=labels)
    config = uvicorn.Config(make_app(board), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    terminate_like_interrupt()  # what uvicorn raises again after a SIGTERM: no death by signal
    with contextlib.suppress(KeyboardInterrupt):  # the signal uvicorn handled, raised again
        asyncio.run(_serve(server, sock, f"http://{served}", announce or _announce))
    return 0


async def _serve(
    server: uvicorn.Server, sock: socket.socket, url: str, announce: Callable[[str], None]
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started and not serving.done():
        await asyncio.sleep(0.01)
    if server.started:
        log.info("dashboard at %s", url)
        announce(url)
    await serving


def _announce(url: str) -> None:
    line = {"ready": "dashboard", "endpoint": url, "pid": os.getpid(), "version": __version__}
    print(json.dumps(line), flush=True)


def _loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
