"""Starting a daemon process and reading its ready line: `es up`, `es bench` and the tests.

Invariants:
- Nothing sleeps: the ready line is awaited with select() against one deadline, generous
  because CI machines are shared (a daemon that is ready answers at once anyway).
- The ready line is the first line on the daemon's stdout (the only one it writes there): one
  JSON object naming the daemon (`ready`), its bound `endpoint` and its `pid`. One line only is
  read: a pipe's reader buffers past it, so waiting for a second would wait on an empty pipe.
- A daemon that is not ready by the deadline, or whose ready line is not its own, is killed by
  its PID: it is the one started here, never anything found by name.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import time
from collections.abc import Mapping
from typing import IO, Any

__all__ = ["START_DEADLINE", "LaunchError", "launch", "read_line"]

START_DEADLINE = 60.0
"""Seconds a daemon gets to print its ready line: generous, since CI machines are shared and
have two cores; a daemon that is ready is seen at once."""


class LaunchError(Exception):
    """A daemon did not become ready: it exited first, or printed no ready line in time."""


def read_line(stream: IO[str], deadline: float) -> str | None:
    """One line from a pipe, or None at its end; TimeoutError at `deadline` (time.monotonic)."""
    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not sel.select(remaining):
            raise TimeoutError("no line before the deadline")
    line = stream.readline()
    return line or None


def launch(
    command: list[str],
    kind: str,
    env: Mapping[str, str],
    stderr: IO[str] | None = None,
    *,
    new_session: bool = False,
    what: str | None = None,
    deadline: float = START_DEADLINE,
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start `command` (its log to `stderr`, else to ours; in a session of its own with
    `new_session`, so that a terminal's Ctrl-C does not reach it) and return it with its ready
    line, which must say `"ready": kind` and the process's own PID. LaunchError, naming the
    daemon as `what` (default: `kind`), when it exits first or is not ready in `deadline`
    seconds; then it has been stopped."""
    what = what or kind
    proc = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env=dict(env),
        start_new_session=new_session,
    )
    assert proc.stdout is not None
    try:
        try:
            line = read_line(proc.stdout, time.monotonic() + deadline)
        except TimeoutError:
            raise LaunchError(f"{what} printed no ready line in {deadline:.0f} s") from None
        if line is None:
            code = proc.wait(deadline)
            raise LaunchError(f"{what} exited with code {code}")
        ready = _ready_line(line)
        if ready.get("ready") != kind or ready.get("pid") != proc.pid:
            raise LaunchError(f"{what} printed a line that is not its ready line: {line.strip()}")
        return proc, ready
    except BaseException:
        if proc.poll() is None:
            proc.kill()  # ours, by its PID: it hung, or was not what we meant to start
        proc.wait(deadline)
        if proc.stdout is not None:
            proc.stdout.close()
        raise


def _ready_line(line: str) -> dict[str, Any]:
    """The JSON object on `line`; empty if it holds none."""
    try:
        found = json.loads(line)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}
