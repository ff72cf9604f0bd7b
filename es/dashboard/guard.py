"""Which requests the dashboard takes: read-only mode, and the checks on requests that change
something (a browser on another site must not be able to make one). Pure.

Invariants:
- GET and HEAD never change anything and are always let through.
- Anything else is refused in read-only mode, and otherwise needs a Host header naming the
  address the dashboard serves on (or localhost on a loopback address: no DNS rebinding) and,
  when the browser sends an Origin, that Origin to be this very site.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["refusal"]

_SAFE = frozenset({"GET", "HEAD"})
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def refusal(
    method: str, host: str | None, origin: str | None, served: str, read_only: bool
) -> str | None:
    """Why the request must be refused (a sentence), or None to take it. `served` is the
    `host:port` the dashboard listens on; `host` and `origin` are the request's headers."""
    if method.upper() in _SAFE:
        return None
    if read_only:
        return "this dashboard is read-only (es dashboard --read-only)"
    if host is None or host.lower() not in _hosts(served):
        return f"the Host header {host!r} is not this dashboard's address"
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return f"a request from another site ({origin}) may not change anything here"
    return None


def _hosts(served: str) -> set[str]:
    """The Host headers that name this dashboard."""
    address, port = served.rsplit(":", 1)
    names = {address.lower()}
    if address in ("127.0.0.1", "[::1]") or address.startswith("127."):
        names.update(_LOOPBACK_NAMES)
    return {f"{name}:{port}" for name in names}
