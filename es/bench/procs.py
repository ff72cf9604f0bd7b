"""Processes for the benchmark: role processes in JSON lines, and a private name and event server.

Invariants:
- Every read from a process has a deadline (lines are read by a thread into a queue), so a role
  that hangs fails the run instead of freezing it.
- Only processes started here are stopped, by their own PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["BenchError", "Role", "Stack", "cpu_of", "rss_of"]


class BenchError(RuntimeError):
    """A role process failed or did not answer in time."""


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_of(pid: int) -> int:
    """Resident memory of a process in bytes, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Role:
    """One role process (es.bench.roles), read in JSON lines."""

    def __init__(self, role: str, args: dict[str, Any]) -> None:
        self.role = role
        self._log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "es.bench.roles", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.ready: dict[str, Any] = {}
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.say(json.dumps(args))  # on stdin: 10,000 patterns do not fit on a command line

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def line(self, timeout: float) -> dict[str, Any]:
        """The next JSON line, within `timeout` seconds."""
        while True:
            try:
                line = self._lines.get(timeout=timeout)
            except queue.Empty:
                raise BenchError(f"bench {self.role}: no answer in {timeout:.0f} s") from None
            if line is None:
                self._log.seek(0)
                tail = self._log.read()[-2000:]
                raise BenchError(f"bench {self.role} exited ({self.proc.wait()}):\n{tail}")
            if line.startswith("{"):
                data: dict[str, Any] = json.loads(line)
                return data

    def say(self, text: str) -> None:
        """Write one line to the role's stdin."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        """Close its stdin and wait for it to end (kill it after 30 s)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
        self._log.close()

    def __enter__(self) -> Role:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None and self.proc.poll() is None:
            self.proc.kill()
        self.close()


class Stack:
    """A private name server and event server on loopback, port 0, for `make bench`. It never
    touches the user's: no URI file is written or read (a running stack stays the one that
    `es pub` and `ns list` find), and no default port is used."""

    def __init__(self, *es_args: str) -> None:
        from es.stack import start_daemon

        env = dict(os.environ)
        env["NS_URI_FILE"] = ""  # '' is nowhere: the user's file stays theirs
        self.log = tempfile.NamedTemporaryFile("w+", prefix="es-bench-", suffix=".log")  # noqa: SIM115
        ns_command = [sys.executable, "-m", "naming", "serve", "-n", "127.0.0.1", "-p", "0"]
        self._ns, ns_ready = start_daemon(ns_command, "ns", env, self.log)
        try:
            env["NS_ADDRESS"] = str(ns_ready["endpoint"])
            command = [sys.executable, "-m", "es", "serve", "-n", "127.0.0.1", "-p", "0"]
            self._es, es_ready = start_daemon([*command, *es_args], "es", env, self.log)
        except BaseException:
            self._stop(self._ns)
            self.log.close()
            raise
        self.endpoint = str(es_ready["endpoint"])
        self.ns_endpoint = str(ns_ready["endpoint"])
        self.pid = self._es.pid

    @staticmethod
    def _stop(proc: subprocess.Popen[str]) -> None:
        from es.stack import stop_daemon

        try:
            stop_daemon(proc)
        except subprocess.TimeoutExpired:  # deaf to two interrupts: it is ours, so kill it
            proc.kill()
            proc.wait(30)

    def kill_es(self) -> None:
        """Kill the event server (ours, by its PID) with SIGKILL, as a crash would."""
        self._es.kill()
        self._es.wait(30)

    def close(self) -> None:
        """Stop the event server, then the name server, and drop their log."""
        self._stop(self._es)
        self._stop(self._ns)
        self.log.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
