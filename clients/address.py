"""Endpoints: checking them, and which address a subscriber binds and advertises.

Nothing here sends a packet: finding the local address uses a UDP socket's connect(), which only
asks the kernel for a route.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = [
    "advertised_endpoint",
    "bind_address",
    "local_address_for",
    "resolve_tcp",
    "tcp_endpoint",
]


def tcp_endpoint(host: str, port: int) -> str:
    """`tcp://HOST:PORT`, an IPv6 literal in brackets (tcp://[::1]:7766), as ZeroMQ and URLs
    write it. The one place this is done: the daemons use it too."""
    literal = f"[{host}]" if ":" in host else host
    return f"tcp://{literal}:{port}"


def resolve_tcp(uri: str) -> str:
    """`uri` checked as tcp://HOST:PORT; `HOST:PORT` is accepted as a short form."""
    if "://" not in uri:
        uri = f"tcp://{uri}"
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or not port:
        raise ValueError(f"address must be tcp://HOST:PORT, not {uri!r}")
    return uri


def _host_port(uri: str) -> tuple[str, int]:
    parts = urlsplit(uri)
    return parts.hostname or "", parts.port or 0


def _numeric(host: str) -> str:
    """An IP address for `host` (resolving a name once, here, not in the event server)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return str(socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)[0][4][0])


def local_address_for(es_uri: str) -> str:
    """The local IP address this host uses to reach the event server."""
    host, port = _host_port(es_uri)
    ip = _numeric(host)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        probe.connect((ip, port))
        return str(probe.getsockname()[0])


def bind_address(host: str) -> str:
    """An endpoint to bind on `host` at a free port (IPv6 literals in brackets)."""
    return tcp_endpoint(host, 0)


def advertised_endpoint(bound: str, publish_host: str | None, es_uri: str) -> str:
    """What the event server should connect to: the bound port on the advertised address."""
    host, port = _host_port(bound)
    if publish_host:
        host = _numeric(publish_host)
    elif ipaddress.ip_address(host).is_unspecified:
        host = local_address_for(es_uri)
    return tcp_endpoint(host, port)
