"""Fixtures for every test: fail any test that leaves a ZeroMQ socket open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import zmq


def _open_sockets() -> int:
    ctx = zmq.Context.instance()
    return sum(1 for s in list(ctx._sockets) if not s.closed)


@pytest.fixture(autouse=True)
def no_leaked_sockets() -> Iterator[None]:
    """Clients use the shared context; a test must close every client it makes."""
    before = _open_sockets()
    yield
    leaked = _open_sockets() - before
    assert leaked <= 0, f"test left {leaked} ZeroMQ socket(s) open: close your clients"
