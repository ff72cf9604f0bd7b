"""Keeping `:Pyro.EventService` in the name server pointing at this event server.

Invariants:
- `claim()` runs before the server says it is ready: a ready server is registered. A name held
  by another event server that answers PING is never taken (NameHeld); a stale holder is replaced.
- The lease is renewed from a thread of its own with a socket of its own, every third of the
  lease, so one lost renewal never lets the name expire. A renewal that finds the entry gone (the
  name server restarted without storage, or the lease ran out) registers again.
- On a graceful stop the name is removed, with the lease token, so a successor's registration is
  never removed by mistake.
- A node of a cluster registers the name shared (SPEC 12.6): beside the other nodes, each with a
  lease of its own, and removes only its own entry.
"""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import urlsplit

import zmq

from clients.address import local_address_for, tcp_endpoint
from clients.control import Control
from clients.errors import EsError, NameTaken, NotFound, NotOwner
from clients.names import EVENT_SERVICE
from clients.naming import NameServer
from clients.security import Keys
from clients.wire import Ping

__all__ = ["NameHeld", "Registration"]

log = logging.getLogger("es.registration")

# How long a holder of the name gets to prove it is alive before it counts as stale.
_LIVENESS_TIMEOUT = 1.5


class NameHeld(EsError):
    """Another live event server holds the name."""


def is_live_event_server(
    uri: str, keys: Keys | None = None, timeout: float = _LIVENESS_TIMEOUT
) -> bool:
    """Whether an event server answers at `uri` (so a name it holds is not stale)."""
    control = Control(zmq.Context.instance(), uri, timeout, keys=keys)
    try:
        return control.request(Ping).get("server") == "es"
    except EsError:
        return False
    finally:
        control.close()


def advertised(endpoint: str, ns_endpoint: str) -> str:
    """The endpoint clients should use: a wildcard bind is replaced by the address that reaches
    the name server (where the clients will look it up)."""
    parts = urlsplit(endpoint)
    if parts.hostname not in ("0.0.0.0", "::"):
        return endpoint
    host = local_address_for(ns_endpoint)
    return tcp_endpoint(host, parts.port or 0)


class Registration:
    """The event server's name in the name server: claimed at start, renewed, removed at stop."""

    def __init__(
        self,
        endpoint: str,
        ns_endpoint: str,
        lease: float,
        keys: Keys | None = None,
        name: str = EVENT_SERVICE,
        shared: bool = False,
    ) -> None:
        self.name = name
        self.shared = shared
        self.keys = keys
        self.ns_endpoint = ns_endpoint
        self.uri = advertised(endpoint, ns_endpoint)
        self.lease = lease
        self._token: str | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _ns(self) -> NameServer:
        return NameServer(self.ns_endpoint, timeout=max(1.0, self.lease / 3), keys=self.keys)

    def claim(self) -> None:
        """Register the name, or raise NameHeld / another EsError saying why not."""
        with self._ns() as ns:
            self._claim(ns)
        log.info("registered %s -> %s (lease %.1f s)", self.name, self.uri, self.lease)

    def _claim(self, ns: NameServer) -> None:
        try:
            body = ns.register(
                self.name, self.uri, lease=self.lease, meta="event server", shared=self.shared
            )
        except NameTaken:
            holder = ns.lookup(self.name)
            if holder != self.uri and is_live_event_server(holder, self.keys):
                raise NameHeld(
                    f"{self.name} is held by a live event server at {holder}; stop it, or run "
                    "this one with -N (no name server)"
                ) from None
            log.warning("replacing the stale registration of %s (%s)", self.name, holder)
            body = ns.register(
                self.name,
                self.uri,
                replace=True,
                lease=self.lease,
                meta="event server",
                shared=self.shared,
            )
        self._token = str(body["token"])

    def start(self) -> None:
        """Renew the lease from now on, in a thread."""
        self._thread = threading.Thread(target=self._renew_forever, name="es-lease", daemon=True)
        self._thread.start()

    def _renew_forever(self) -> None:
        with self._ns() as ns:
            while not self._stopping.wait(self.lease / 3):
                self._renew(ns)

    def _renew(self, ns: NameServer) -> None:
        try:
            ns.renew(self.name, self._token or "")
        except NotFound:
            log.warning("%s was gone from the name server: registering again", self.name)
            self._try(lambda: self._claim(ns))
        except NotOwner:
            log.warning("%s was taken over by another registration", self.name)
            self._try(lambda: self._claim(ns))
        except EsError as exc:  # timeouts: the name server may be restarting; try next time
            log.warning("cannot renew %s: %s", self.name, exc)

    @staticmethod
    def _try(action: Any) -> None:
        try:
            action()
        except EsError as exc:
            log.error("%s", exc)

    def stop(self, remove: bool = True) -> None:
        """Stop renewing; remove the name unless told not to (a forced stop lets it expire)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.lease)
        if not remove or self._token is None:
            return
        try:
            with NameServer(self.ns_endpoint, timeout=1.0) as ns:
                ns.remove(self.name, self._token)
            log.info("removed %s from the name server", self.name)
        except EsError as exc:
            log.warning("could not remove %s: %s", self.name, exc)
