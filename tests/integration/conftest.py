"""Real daemons for tests: `es serve -p 0` as a subprocess, its endpoint read from its ready line.

Rules kept here so that no test can break them: loopback only, no sleeping for start-up (the
ready line is awaited with a deadline), and only processes this fixture started are stopped,
by their own PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pytest

from clients import admin
from es.daemon import launch as launcher

STOP_DEADLINE = 30.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here starts real processes: marked `integration`, so that `-m "not
    integration"` (or `make check`) leaves them out."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.integration)


@dataclass
class Daemon:
    proc: subprocess.Popen[str]
    endpoint: str
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self) -> dict[str, Any]:
        return admin.stats(self.endpoint, timeout=30.0)

    def interrupt(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL: a crash, as far as everyone else can tell."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_DEADLINE)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def stop(self) -> int:
        """SIGINT (graceful), then SIGKILL if it has not exited within the deadline."""
        self.interrupt()
        try:
            return self.proc.wait(STOP_DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_DEADLINE)
            raise AssertionError(f"es did not stop on SIGINT; log:\n{self.log()}") from None
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def read_line(stream: IO[str], deadline: float) -> str | None:
    """One line from a pipe, or None at EOF; fail the test at the deadline."""
    try:
        return launcher.read_line(stream, deadline)
    except TimeoutError:
        raise AssertionError("timed out waiting for a line from a daemon") from None


def es_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "es", *args]


def ns_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "naming", *args]


def spawn(command: list[str], kind: str, env: dict[str, str] | None = None) -> Daemon:
    """Start a daemon and wait (with a deadline) for its JSON ready line (es.daemon.launch)."""
    log = Path(tempfile.mkstemp(prefix=f"{kind}-", suffix=".log")[1])
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log.open("w") as log_file:
        try:
            proc, ready = launcher.launch(command, kind, full_env, log_file)
        except launcher.LaunchError as exc:
            raise AssertionError(f"{exc}; log:\n{log.read_text()}") from None
    return Daemon(proc, ready["endpoint"], log, ready)


def spawn_es(*args: str, env: dict[str, str] | None = None, naming: bool = False) -> Daemon:
    """An event server on a free loopback port; without a name server unless `naming`."""
    flags = () if naming else ("-N",)
    return spawn(es_command("serve", "-n", "127.0.0.1", "-p", "0", *flags, *args), "es", env)


def spawn_ns(*args: str, env: dict[str, str] | None = None) -> Daemon:
    """A name server on a free loopback port (its discovery socket on the same port number)."""
    return spawn(ns_command("serve", "-n", "127.0.0.1", "-p", "0", *args), "ns", env)


@pytest.fixture(autouse=True)
def private_naming(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test finds only its own name server: its own URI file, and no name server address
    or event server address inherited from the environment."""
    uri_file = tmp_path / "ns.uri"
    monkeypatch.setenv("NS_URI_FILE", str(uri_file))
    for name in (
        "NS_ADDRESS",
        "ES_URI",
        "NS_PORT",
        "NS_BROADCAST",
        "ES_IDENT",
        "ES_KEYS",
        "ES_KEY",
        "ES_SERVER_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return uri_file


@pytest.fixture
def start_es() -> Iterator[Callable[..., Daemon]]:
    """Start event servers with the given `es serve` options; all are stopped afterwards."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None, naming: bool = False) -> Daemon:
        daemon = spawn_es(*args, env=env, naming=naming)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
        daemon.log_path.unlink(missing_ok=True)


@pytest.fixture
def start_ns() -> Iterator[Callable[..., Daemon]]:
    """Start name servers with the given `ns serve` options; all are stopped afterwards."""
    started: list[Daemon] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Daemon:
        daemon = spawn_ns(*args, env=env)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
        daemon.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def es() -> Iterator[Daemon]:
    """One event server with default settings, shared by a module's tests (each uses its own
    subjects)."""
    daemon = spawn_es()
    yield daemon
    assert daemon.stop() == 0, daemon.log()
    daemon.log_path.unlink(missing_ok=True)


def wait_until(condition: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    """Poll `condition` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)  # a poll interval between checks, not a wait for start-up
        delay = min(delay * 2, 0.2)
