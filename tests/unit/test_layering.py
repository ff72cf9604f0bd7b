"""The layers: pure cores load without sockets, storage drivers or the CLI, and the client library
depends on no daemon.

- The broker core, the flow, the index, a subscriber's lane, the naming registry and service, and
  the wire codec import with zmq, sqlite3 and typer all refused.
- Nothing under clients/ imports `es`, `naming` or `typer`: the Python client is a library,
  and what only the daemons use lives with them (es/daemon/).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]

CORES = [
    "es.broker",
    "es.flow",
    "es.index",
    "es.lane",
    "es.cluster.subjects",
    "es.cluster.frames",
    "es.cluster.interest",
    "naming.registry",
    "naming.service",
    "clients.wire",
]
BLOCKED = ["zmq", "sqlite3", "typer", "nats"]

# Installed before anything else: any import of a blocked package (or of a module inside it)
# raises ImportError, as if it were not installed.
_REFUSE = """
import importlib.abc, sys

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ImportError(f"{{name}} is refused by this test")
        return None

sys.meta_path.insert(0, Refuse())
for module in {cores!r}:
    __import__(module)
loaded = sorted(n for n in sys.modules if n.split(".")[0] in {blocked!r})
assert not loaded, loaded
"""


def test_the_cores_import_without_zmq_sqlite_or_typer() -> None:
    code = _REFUSE.format(blocked=BLOCKED, cores=CORES)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr


def _imported(path: Path) -> set[str]:
    """The top-level packages a module imports, wherever in it (TYPE_CHECKING blocks too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Call) and (lazy := _import_module_of(node)):
            found.add(lazy.split(".")[0])
    return found


def _import_module_of(call: ast.Call) -> str | None:
    """The module `importlib.import_module("literal")` loads: a lazy import is an import too."""
    func, args = call.func, call.args
    if isinstance(func, ast.Attribute) and func.attr == "import_module" and args:
        first = args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value
    return None


def test_the_client_library_imports_no_daemon_and_no_cli() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported(path) & {"es", "naming", "typer"})
        for path in sorted((ROOT / "clients").rglob("*.py"))
        if "node_modules" not in path.parts
    }
    assert {path: found for path, found in offenders.items() if found} == {}
