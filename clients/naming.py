"""Finding the name server, talking to it, and finding the event server through it.

The name server is found, in this order: an explicit address (argument or $NS_ADDRESS); the URI
file a running `ns` writes ($NS_URI_FILE, or a per-user file in the runtime directory), if the
server there answers; then a UDP broadcast to $NS_BROADCAST (default 127.255.255.255: this host
only) on port $NS_PORT (default 9090), answered by `ns` with its endpoint.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import zmq

from clients.address import resolve_tcp
from clients.control import Control
from clients.errors import AuthFailed, EsConnectionError, EsError, RemoteProtocolError
from clients.names import DEFAULT_GROUP, EVENT_SERVICE, absolute
from clients.security import Keys, choose
from clients.wire import MAX_INT, Ping
from clients.wire.ns import (
    MAX_DATAGRAM,
    CreateGroup,
    DeleteGroup,
    GetMeta,
    ListAll,
    ListNames,
    Lookup,
    Register,
    Remove,
    Renew,
    SetMeta,
    decode_here,
    encode_ns,
    encode_where,
)

__all__ = [
    "DEFAULT_BROADCAST",
    "NS_PORT",
    "NameServer",
    "NameServerNotFound",
    "default_uri_file",
    "discover",
    "es_endpoints",
    "locate_ns",
    "pick",
    "resolve_es_uri",
]

NS_PORT = 9090
"""Pyro's name server port, for both the ROUTER (TCP) and discovery (UDP)."""

DEFAULT_BROADCAST = "127.255.255.255"
"""Discovery stays on this host unless told otherwise (255.255.255.255 reaches the LAN)."""

# Answers to a PING of the address in the URI file must come this fast: it is a local file,
# usually for a server on this host.
_URI_FILE_PING = 1.0


class NameServerNotFound(EsConnectionError):
    """No name server answered at any place the locator tried."""


def default_uri_file() -> Path:
    """Where `ns` writes its endpoint unless told otherwise: one file per user."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"es-ns-{os.getuid()}.uri"


def uri_file_path(path: str | Path | None = None) -> Path | None:
    """The URI file to use: the argument, else $NS_URI_FILE, else the default. '' means none."""
    chosen = str(path) if path is not None else os.environ.get("NS_URI_FILE")
    if chosen == "":
        return None
    return Path(chosen) if chosen else default_uri_file()


def discover(
    broadcast: str | None = None,
    port: int | None = None,
    timeout: float = 0.5,
    retries: int = 3,
) -> str | None:
    """Ask by UDP broadcast where the name server is; its endpoint, or None if none answered."""
    address = broadcast or os.environ.get("NS_BROADCAST") or DEFAULT_BROADCAST
    target = (address, port or int(os.environ.get("NS_PORT") or NS_PORT))
    nonce = secrets.randbelow(MAX_INT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        for _ in range(max(1, retries)):
            sock.sendto(encode_where(nonce), target)
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                sock.settimeout(remaining)
                try:
                    data, _ = sock.recvfrom(MAX_DATAGRAM + 1)
                except TimeoutError:
                    break
                try:
                    answered, endpoint = decode_here(data)
                except RemoteProtocolError:
                    continue  # not an answer of ours
                if answered == nonce:
                    return endpoint
    return None


def _answers(endpoint: str, timeout: float, keys: Keys | None) -> bool:
    control = Control(zmq.Context.instance(), endpoint, timeout, encode_ns, keys, "name server")
    try:
        return control.request(Ping).get("server") == "ns"
    except AuthFailed:
        raise  # a name server is there, and it says who may talk to it: say so
    except EsError:
        return False
    finally:
        control.close()


def locate_ns(
    address: str | None = None,
    *,
    uri_file: str | Path | None = None,
    broadcast: str | None = None,
    port: int | None = None,
    timeout: float = 0.5,
    retries: int = 3,
    keys: Keys | None = None,
) -> str:
    """The name server's endpoint, found as the module docstring says."""
    explicit = address or os.environ.get("NS_ADDRESS")
    if explicit:
        return resolve_tcp(explicit)
    tried = []
    path = uri_file_path(uri_file)
    if path is not None:
        tried.append(f"URI file {path}")
        try:
            endpoint = path.read_text().strip()
        except OSError:
            endpoint = ""
        if endpoint and _answers(endpoint, _URI_FILE_PING, keys):
            return endpoint
    endpoint_found = discover(broadcast, port, timeout, retries)
    if endpoint_found:
        return endpoint_found
    tried.append("broadcast discovery")
    raise NameServerNotFound(
        f"no name server found (tried {', '.join(tried)}): start one with `ns serve`, give "
        "its address in $NS_ADDRESS (or --ns where a command has it), or give the event "
        "server's own address (--es HOST:PORT, $ES_URI)"
    )


class NameServer:
    """A client of the name server, with the operations of Pyro's `pyro-nsc`.

    Relative names are taken to be in `default_group` (`:Default`), as in Pyro.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = 5.0,
        default_group: str = DEFAULT_GROUP,
        ident: str | None = None,
        keys: Keys | None = None,
        context: zmq.Context[Any] | None = None,
        **locate: Any,
    ) -> None:
        keys = choose(ident, keys)
        self.endpoint = locate_ns(address, keys=keys, **locate)
        self.default_group = default_group
        self._control = Control(
            context or zmq.Context.instance(),
            self.endpoint,
            timeout,
            encode_ns,
            keys,
            "name server",
        )

    def _name(self, name: str) -> str:
        return absolute(name, self.default_group)

    def ping(self) -> dict[str, Any]:
        """The name server's answer: its name and version, to check that it is there."""
        return self._control.request(Ping)

    def register(
        self,
        name: str,
        uri: str,
        *,
        replace: bool = False,
        lease: float | None = None,
        meta: str = "",
        shared: bool = False,
    ) -> dict[str, Any]:
        """Register `name`; with a lease, the reply holds the token needed to renew it. With
        `shared`, `uri` joins the name's other URIs (SPEC 12.6)."""
        full = self._name(name)
        return self._control.request(
            lambda rid: Register(rid, full, uri, replace, lease, meta, shared)
        )

    def renew(self, name: str, token: str) -> dict[str, Any]:
        """Extend the lease of `name`, with the token its registration returned."""
        full = self._name(name)
        return self._control.request(lambda rid: Renew(rid, full, token))

    def entry(self, name: str) -> dict[str, Any]:
        """Everything known about `name`: uri, meta and, for leased entries, when it expires."""
        full = self._name(name)
        return self._control.request(lambda rid: Lookup(rid, full))

    def lookup(self, name: str) -> str:
        """The URI registered for `name` (Pyro's resolve); a shared name's first."""
        return str(self.entry(name)["uri"])

    def lookup_all(self, name: str) -> list[str]:
        """Every URI registered for `name`: one, or a shared name's (SPEC 12.6)."""
        entry = self.entry(name)
        uris = entry.get("uris")  # a name server before 12.6 sends only `uri`
        return [str(u) for u in uris] if isinstance(uris, list) and uris else [str(entry["uri"])]

    resolve = lookup

    def remove(self, name: str, token: str | None = None) -> None:
        """Remove `name` (a leased name needs its token); Pyro's unregister."""
        full = self._name(name)
        self._control.request(lambda rid: Remove(rid, full, token))

    unregister = remove

    def list(
        self, group: str | None = None, *, prefix: str | None = None, regex: str | None = None
    ) -> dict[str, Any]:
        """Names and groups directly in `group` (default the root), or by prefix or regex."""
        chosen = None if group is None else self._name(group) if group != ":" else ":"
        return self._control.request(lambda rid: ListNames(rid, chosen, prefix, regex))

    def listall(self) -> dict[str, Any]:
        """Every name with its URI, in every group."""
        return self._control.request(ListAll)

    def create_group(self, group: str) -> None:
        """Create an empty group (`:Stock`); names can then be registered in it."""
        full = self._name(group)
        self._control.request(lambda rid: CreateGroup(rid, full))

    def delete_group(self, group: str) -> None:
        """Delete a group, which must be empty."""
        full = self._name(group)
        self._control.request(lambda rid: DeleteGroup(rid, full))

    def set_meta(self, name: str, meta: str) -> None:
        """Attach a short text to `name` (Pyro's metadata)."""
        full = self._name(name)
        self._control.request(lambda rid: SetMeta(rid, full, meta))

    def get_meta(self, name: str) -> str:
        """The text attached to `name`."""
        full = self._name(name)
        return str(self._control.request(lambda rid: GetMeta(rid, full))["meta"])

    createGroup = create_group  # noqa: N815 - Pyro's spellings
    deleteGroup = delete_group  # noqa: N815
    setMeta = set_meta  # noqa: N815
    getMeta = get_meta  # noqa: N815

    def close(self) -> None:
        """Close the connection to the name server."""
        self._control.close()

    def __enter__(self) -> NameServer:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _pyroname(uri: str) -> tuple[str | None, str]:
    """PYRONAME://HOST:PORT/NAME names the name server; PYRONAME://NAME locates it."""
    rest = uri.split("://", 1)[1]
    if rest.startswith(":") or "/" not in rest:
        return None, rest
    host, _, name = rest.partition("/")
    return host or None, name


def resolve_es_uri(
    es_uri: str | None = None,
    *,
    timeout: float = 5.0,
    keys: Keys | None = None,
    avoid: str | None = None,
) -> str:
    """The event server's endpoint.

    `tcp://HOST:PORT` (or `HOST:PORT`) is used as it is. `PYRONAME://[NSHOST:PORT]/NAME` looks
    NAME up in that name server (or the one the locator finds). With nothing given, $ES_URI is
    used in the same way, and without it `:Pyro.EventService` is looked up. A name with several
    endpoints (the nodes of a cluster) gives one of them at random, other than `avoid` (one that
    just failed) while there is another.
    """
    return pick(es_endpoints(es_uri, timeout=timeout, keys=keys), avoid)


def es_endpoints(
    es_uri: str | None = None, *, timeout: float = 5.0, keys: Keys | None = None
) -> list[str]:
    """Every endpoint `es_uri` stands for (as in resolve_es_uri): an address is one; a name
    has one, or one for each node of a cluster (SPEC 12.6)."""
    uri = es_uri or os.environ.get("ES_URI") or f"PYRONAME://{EVENT_SERVICE}"
    if not uri.upper().startswith("PYRONAME://"):
        return [resolve_tcp(uri)]
    address, name = _pyroname(uri)
    with NameServer(address, timeout=timeout, keys=keys) as ns:
        return [resolve_tcp(u) for u in ns.lookup_all(name)]


def pick(endpoints: list[str], avoid: str | None = None, rng: random.Random | None = None) -> str:
    """One of `endpoints` at random (spreading clients over a cluster's nodes), other than
    `avoid` unless it is the only one."""
    others = [e for e in endpoints if e != avoid] or endpoints
    return (rng or random).choice(others)
