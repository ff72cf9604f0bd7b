"""The event server daemon `es`: a broker core (`es.broker`) inside a ZeroMQ shell (`es.server`)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["EventServer", "ServerConfig", "__version__"]

from es.config import ServerConfig
from es.server import EventServer
