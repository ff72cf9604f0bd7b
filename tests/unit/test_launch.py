"""The daemon launcher with stand-in processes: the ready line read, and every way to fail."""

from __future__ import annotations

import os
import sys

import pytest

from es.daemon.launch import LaunchError, launch


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


READY = (
    "import json, os, signal; "
    "print(json.dumps({'ready': %r, 'endpoint': 'tcp://127.0.0.1:1', 'pid': os.getpid()}), "
    "flush=True); signal.pause()"
)


def test_the_ready_line_is_read() -> None:
    proc, ready = launch(_python(READY % "es"), "es", os.environ)
    try:
        assert ready["endpoint"] == "tcp://127.0.0.1:1" and ready["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_a_daemon_that_exits_first_is_reported_with_its_code() -> None:
    with pytest.raises(LaunchError, match="naming serve exited with code 3"):
        launch(_python("raise SystemExit(3)"), "ns", os.environ, what="naming serve")


def test_a_ready_line_not_its_own_is_refused_and_the_process_killed() -> None:
    with pytest.raises(LaunchError, match="not its ready line"):
        launch(_python(READY % "ns"), "es", os.environ)
    with pytest.raises(LaunchError, match="not its ready line: hello"):
        launch(_python("import signal; print('hello', flush=True); signal.pause()"), "es", {})


def test_a_daemon_silent_past_the_deadline_is_killed() -> None:
    with pytest.raises(LaunchError, match="printed no ready line"):
        launch(_python("import signal; signal.pause()"), "es", os.environ, deadline=0.2)
