"""`es up`: a name server and an event server together in the foreground, for `make run`.

Invariants:
- Both daemons run in sessions of their own, so a terminal's Ctrl-C reaches only this supervisor,
  which stops them in order: the event server first (it removes its name from the name server),
  then the name server. A second Ctrl-C is passed on, which makes each stop at once.
- The event server starts only after the name server's ready line (es.daemon.launch), and is
  told its address.
- Only processes started here are signalled, by their own PID.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from types import FrameType
from typing import IO

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


def run_stack(ns_args: list[str], es_args: list[str]) -> int:
    """Start `ns serve` and `es serve`, print how to use them, wait for Ctrl-C; return the exit
    code (0 when both stopped cleanly)."""
    python = [sys.executable, "-m"]
    env = dict(os.environ)
    ns_proc, ns_ready = start_daemon([*python, "naming", "serve", *ns_args], "ns", env)
    try:
        env["NS_ADDRESS"] = str(ns_ready["endpoint"])
        es_proc, es_ready = start_daemon([*python, "es", "serve", *es_args], "es", env)
    except BaseException:
        stop_daemon(ns_proc)
        raise
    print(json.dumps({"ready": "stack", "ns": ns_ready["endpoint"], "es": es_ready["endpoint"]}))
    print(
        f"name server {ns_ready['endpoint']}, event server {es_ready['endpoint']} "
        f"(:Pyro.EventService)\n"
        "In another terminal, with no address needed:\n"
        "  .venv/bin/es sub StockQuotes\n"
        "  .venv/bin/es pub StockQuotes hello\n"
        "  .venv/bin/ns listall\n"
        "Ctrl-C stops both.",
        flush=True,
    )

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):  # SIGINT too: it may have been ignored
        signal.signal(signum, interrupted)
    try:
        while es_proc.poll() is None and ns_proc.poll() is None:
            try:
                es_proc.wait(1.0)
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        pass
    codes = (stop_daemon(es_proc), stop_daemon(ns_proc))
    return 0 if codes == (0, 0) else 1
