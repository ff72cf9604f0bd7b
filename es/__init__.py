"""The event server daemon `es`: a broker core (`es.broker`) inside a ZeroMQ shell (`es.server`).

`EventServer` and `ServerConfig` load on first use, so that `import es` (and every `es` command
that is not `serve`) stays quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["EventServer", "ServerConfig", "__version__"]

if TYPE_CHECKING:
    from es.config import ServerConfig
    from es.server import EventServer

_LAZY = {"EventServer": "es.server", "ServerConfig": "es.config"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'es' has no attribute {name!r}")
