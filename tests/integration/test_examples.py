"""Every example runs, against a real event server, and prints what it promises."""

from __future__ import annotations

import ast
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


def test_raw_client_uses_only_pyzmq_and_msgpack(es: Daemon) -> None:
    source = (EXAMPLES / "raw_client.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "os", "secrets", "sys", "typing", "msgpack", "zmq"}
    lines = run_example("raw_client.py", es).splitlines()
    assert lines[0].startswith("subscribed")
    assert [line.split()[0] for line in lines[1:4]] == ["RAW.QUOTES", "raw.news.sun", "raw.quotes"]
    assert lines[-1] == "received 3 events; subscriptions left: 0"
