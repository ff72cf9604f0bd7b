"""Every example runs, against a real event server, and prints what it promises."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import Daemon

EXAMPLES = Path(__file__).parents[2] / "examples"


def run_example(name: str, es: Daemon) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ES_URI": es.endpoint},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart(es: Daemon) -> None:
    lines = run_example("quickstart.py", es).splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        "stockquotes",
        "stockquote.sun",
        "stockquote.sap",
    ]
    assert lines[-1] == "received 3 events"
