"""`es up`: a name server and an event server together in the foreground, for `make run`; with
`--nodes N`, N event servers as the nodes of a cluster, over N local nats-servers in a NATS
cluster (es.cluster.natsd), for trying a cluster on one machine.

Invariants:
- Both daemons run in sessions of their own, so a terminal's Ctrl-C reaches only this supervisor,
  which stops them in order: the event server first (it removes its name from the name server),
  then the name server. A second Ctrl-C is passed on, which makes each stop at once.
- The event server starts only after the name server's ready line (es.daemon.launch), and is
  told its address.
- Only processes started here are signalled, by their own PID. The nats-servers start before the
  nodes and stop after them.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import IO

from es.cluster.natsd import NatsError, NatsServer, start_cluster
from es.daemon.launch import LaunchError, launch

__all__ = ["run_stack", "start_daemon", "stop_daemon"]

_STOP_WAIT = 30.0  # seconds each daemon gets for its graceful stop before it is forced


def start_daemon(
    command: list[str], kind: str, env: dict[str, str], stderr: IO[str] | None = None
) -> tuple[subprocess.Popen[str], dict[str, object]]:
    """Start `python -m MODULE serve ...` (`kind`: "ns" or "es") in a session of its own (its
    log to `stderr`, else to ours); return it with its JSON ready line. A daemon that is not
    ready ends the command."""
    what = f"{command[2]} {command[3]}"
    try:
        proc, ready = launch(command, kind, env, stderr, new_session=True, what=what)
    except LaunchError as exc:
        raise SystemExit(f"es up: {exc}") from None
    return proc, dict(ready)


def stop_daemon(proc: subprocess.Popen[str]) -> int:
    """Interrupt a daemon and wait for its graceful stop; interrupt again if it is too slow."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(_STOP_WAIT)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):  # too slow, or Ctrl-C again
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # a second interrupt: stop at once
        return proc.wait(_STOP_WAIT)


def run_stack(ns_args: list[str], es_args: list[str], nodes: list[list[str]] | None = None) -> int:
    """Start `ns serve` and `es serve`, print how to use them, wait for Ctrl-C; return the exit
    code (0 when everything stopped cleanly). With `nodes`, one event server for each, with
    `es_args` and its own arguments, each a node of a cluster over a nats-server of its own."""
    python = [sys.executable, "-m"]
    env = dict(os.environ)
    each = [[*es_args, *own] for own in nodes] if nodes else [es_args]
    nats: list[NatsServer] = []
    started: list[subprocess.Popen[str]] = []
    ns_proc, ns_ready = start_daemon([*python, "naming", "serve", *ns_args], "ns", env)
    try:
        env["NS_ADDRESS"] = str(ns_ready["endpoint"])
        if nodes:
            nats = _nats(len(nodes))
            each = [[*args, "--cluster", s.url] for args, s in zip(each, nats, strict=True)]
        readies = []
        for args in each:
            proc, ready = start_daemon([*python, "es", "serve", *args], "es", env)
            started.append(proc)
            readies.append(ready)
    except BaseException:
        _stop_all(started, nats, ns_proc)
        raise
    endpoints = [str(r["endpoint"]) for r in readies]
    line = {"ready": "stack", "ns": ns_ready["endpoint"], "es": endpoints[0]}
    if nodes:
        line |= {"nodes": endpoints, "nats": [s.url for s in nats]}
    print(json.dumps(line))
    print(
        f"name server {ns_ready['endpoint']}, event server(s) {', '.join(endpoints)} "
        f"(:Pyro.EventService)\n"
        "In another terminal, with no address needed:\n"
        "  .venv/bin/es sub StockQuotes\n"
        "  .venv/bin/es pub StockQuotes hello\n"
        "  .venv/bin/ns listall\n"
        "Ctrl-C stops them all.",
        flush=True,
    )

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may have been ignored
        signal.signal(signum, interrupted)
    try:
        while all(p.poll() is None for p in started) and ns_proc.poll() is None:
            try:
                started[0].wait(1.0)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    return 0 if _stop_all(started, nats, ns_proc) else 1


def _nats(size: int) -> list[NatsServer]:
    """The cluster's nats-servers, or the end of the command saying why not."""
    try:
        return start_cluster(size)
    except NatsError as exc:
        raise SystemExit(f"es up: {exc}") from None


def _stop_all(
    nodes: list[subprocess.Popen[str]], nats: list[NatsServer], ns: subprocess.Popen[str]
) -> bool:
    """Stop the event servers, then the nats-servers, then the name server; whether every
    daemon stopped cleanly."""
    codes = [stop_daemon(proc) for proc in nodes]
    for server in nats:
        server.stop()
    codes.append(stop_daemon(ns))
    return all(code == 0 for code in codes)
