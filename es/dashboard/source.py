"""What the dashboard asks the event server and the name server, as an ordinary client: each
request is one of the thread clients' (clients.admin, clients.naming), run off the event loop.

Invariants:
- Every request has a timeout; a server that does not answer gives an error, never a hang.
- The event server is asked at most once per `interval` for STATS (`poll`), whatever the number
  of pages open: pages read the latest snapshot (`latest`).
- Names under the reserved group `:Pyro` are shown, never changed from here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from clients import admin
from clients.errors import EsError
from clients.names import EVENT_SERVICE, absolute
from clients.naming import NameServer, locate_ns, resolve_es_uri
from clients.security import Keys
from es.dashboard.rates import Rates

__all__ = ["NAME_ACTIONS", "Protected", "Source"]

RESERVED = ":Pyro"
NAME_ACTIONS = ("register", "remove", "mkgroup", "rmgroup", "meta", "resolve")
_LOOKED_UP = 500  # names whose meta and lease the names page shows (the rest: their URI only)
_COUNTED = 256  # subjects whose subscribers the subjects page shows (one NUMSUB takes them)


class Protected(ValueError):
    """A change to a reserved name (`:Pyro` and what is in it)."""


@dataclass
class Source:
    """The dashboard's view of the event server and the name server (see the module)."""

    es_uri: str | None
    ns_address: str | None
    keys: Keys | None
    security: str  # how the dashboard's own connections are secured, for the health page
    timeout: float = 5.0
    interval: float = 1.0
    rates: Rates = field(default_factory=Rates)
    stats: dict[str, Any] | None = None  # the latest STATS body (None: no answer)
    subjects: dict[str, Any] | None = None  # the latest SUBJECTS body, when metrics want it
    error: str | None = None  # why the latest STATS failed
    polled: float = 0.0  # monotonic time of the latest poll
    want_subjects: bool = False

    def latest(self) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(STATS, SUBJECTS) as last polled, for /metrics."""
        return self.stats, self.subjects

    async def poll(self) -> dict[str, float]:
        """Ask for STATS now, note it and its rates; the rates (all 0 without an answer)."""
        try:
            self.stats = await self._es(admin.stats)
            if self.want_subjects:
                self.subjects = await self._es(admin.subjects)
            self.error = None
        except (EsError, ValueError) as exc:
            self.stats, self.subjects, self.error = None, None, str(exc)
        self.polled = time.monotonic()
        if self.stats is None:
            return {}
        return self.rates.add(self.stats["server"], self.polled)

    async def subject_list(self, pattern: str | None) -> dict[str, Any]:
        """SUBJECTS (matching `pattern`), the first _COUNTED of them with their subscribers."""
        body = await self._es(admin.subjects, pattern)
        listed = body["subjects"][:_COUNTED]
        if listed:
            names = [entry["subject"] for entry in listed]
            counts = await asyncio.to_thread(
                admin.numsub, names, self.es_uri, timeout=self.timeout, keys=self.keys
            )
            for entry, count in zip(listed, counts, strict=True):
                entry["subscribers"] = count
        return body

    async def _es(self, call: Any, *args: Any) -> dict[str, Any]:
        body: dict[str, Any] = await asyncio.to_thread(
            call, self.es_uri, *args, timeout=self.timeout, keys=self.keys
        )
        return body

    async def health(self) -> dict[str, Any]:
        """Both servers: reachable, round trip, version, uptime; the event service's name."""
        es = await self._timed(self._es, admin.ping)
        if self.stats is not None:
            es["uptime"] = self.stats["server"].get("uptime")
        ns = await self._timed(self._ns, lambda n: n.ping())
        endpoint = await self._endpoint()
        name = await self._service(endpoint)
        return {
            "es": {**es, "endpoint": endpoint},
            "ns": ns,
            "name": name,
            "security": self.security,
        }

    async def _timed(self, ask: Any, *args: Any) -> dict[str, Any]:
        began = time.monotonic()
        try:
            body = await ask(*args)
        except (EsError, ValueError) as exc:
            return {"up": False, "error": str(exc)}
        took = time.monotonic() - began
        return {"up": True, "rtt": took, "version": body.get("version")}

    async def _endpoint(self) -> str | None:
        """The event server's endpoint the dashboard talks to now."""
        try:
            return await asyncio.to_thread(resolve_es_uri, self.es_uri, keys=self.keys)
        except (EsError, ValueError):
            return None

    async def _service(self, endpoint: str | None) -> dict[str, Any]:
        """`:Pyro.EventService`: registered, whether it points here, the lease left."""
        try:
            entry = await self._ns(lambda n: n.entry(EVENT_SERVICE))
        except (EsError, ValueError) as exc:
            return {"registered": False, "error": str(exc)}
        uris = entry.get("uris") or [entry.get("uri")]
        expires = entry.get("expires")
        left = None if expires is None else max(0.0, float(expires) - time.time())
        return {"registered": True, "uris": uris, "here": endpoint in uris, "lease_left": left}

    async def _ns(self, use: Any) -> Any:
        def run() -> Any:
            address = self.ns_address or locate_ns(None, keys=self.keys)
            with NameServer(address, keys=self.keys, timeout=self.timeout) as ns:
                return use(ns)

        return await asyncio.to_thread(run)

    async def names(self) -> dict[str, Any]:
        """Every group, and every name with its URI (and, for the first ones, meta and lease)."""

        def gather(ns: NameServer) -> dict[str, Any]:
            listing = ns.listall()
            names = []
            for n, (name, uri) in enumerate(sorted(listing["names"].items())):
                row: dict[str, Any] = {"name": name, "uri": uri}
                if n < _LOOKED_UP:
                    try:
                        entry = ns.entry(name)
                    except EsError:
                        continue  # gone meanwhile
                    row.update(meta=entry.get("meta", ""), uris=entry.get("uris", [uri]))
                    if entry.get("expires") is not None:
                        row["lease_left"] = max(0.0, float(entry["expires"]) - time.time())
                row["reserved"] = _reserved(name)
                names.append(row)
            groups = [{"group": g, "reserved": _reserved(g)} for g in sorted(listing["groups"])]
            return {"names": names, "groups": groups, "truncated": listing.get("truncated")}

        result: dict[str, Any] = await self._ns(gather)
        return result

    async def change_name(self, action: str, form: dict[str, Any]) -> dict[str, Any]:
        """One change to the names (NAME_ACTIONS), from the names page; Protected for a
        reserved name, ValueError for an unknown action or a missing field."""
        if action not in NAME_ACTIONS:
            raise ValueError(f"unknown action {action!r}: one of {', '.join(NAME_ACTIONS)}")
        name = str(form.get("name") or form.get("group") or "")
        if not name:
            raise ValueError("a name (or group) is needed")
        if action != "resolve" and _reserved(absolute(name)):
            raise Protected(f"{name} is reserved for the event service and the name server")

        def change(ns: NameServer) -> dict[str, Any]:
            if action == "register":
                lease = form.get("lease")
                return ns.register(
                    name,
                    str(form.get("uri", "")),
                    replace=bool(form.get("replace")),
                    lease=None if lease in (None, "") else float(lease),
                    meta=str(form.get("meta", "")),
                )
            if action == "remove":
                ns.remove(name)
            elif action == "mkgroup":
                ns.create_group(name)
            elif action == "rmgroup":
                ns.delete_group(name)
            elif action == "meta":
                ns.set_meta(name, str(form.get("meta", "")))
            else:
                return ns.entry(name)
            return {}

        result: dict[str, Any] = await self._ns(change)
        return result


def _reserved(name: str) -> bool:
    return name == RESERVED or name.startswith(RESERVED + ".")
