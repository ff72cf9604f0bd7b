"""The servers' side of CurveZMQ: a daemon's keys, key files for `es keygen`, what a failed
handshake was, and the warning for a daemon listening beyond loopback without security.

The client library keeps what every party needs (`clients.security`: Keys, the passphrase's
derivation, client and server sockets, the ZAP authenticator a subscriber's inbox uses too);
only the daemons and their commands use what is here.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import zmq
import zmq.auth
from zmq.utils.monitor import recv_monitor_message

from clients.security import Keys

__all__ = ["HandshakeWatch", "generate", "handshake_failure", "server_keys", "warn_if_exposed"]

log = logging.getLogger("es.daemon.security")


def server_keys(ident: str | None, keys_dir: str | Path | None) -> Keys | None:
    """A daemon's Keys from `-i` or `--keys DIR`; None: no security."""
    if ident and keys_dir:
        raise ValueError("give a passphrase (-i) or a key directory (--keys), not both")
    if ident:
        return Keys.from_passphrase(ident)
    return Keys.for_server(keys_dir) if keys_dir else None


_EXPOSED = {
    "event server": (
        "anyone who can reach it can publish and subscribe, read every event, and act for any "
        "subscriber whose id it learns; anyone who can reach a subscriber's inbox can forge or "
        "replay events into it"
    ),
    "name server": (
        "anyone who can reach it can register, replace or remove names, and so point clients "
        "at a server of their choosing"
    ),
}


def warn_if_exposed(host: str, keys: Keys | None, what: str) -> None:
    """Say so when a daemon (`what`: "event server" or "name server") without security listens
    where other hosts can reach it, and what that lets them do."""
    if keys is not None or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    log.warning(
        "%s listens on %s without security: %s; give -i PASSPHRASE or --keys DIR",
        what,
        host,
        _EXPOSED[what],
    )


def generate(directory: str | Path, clients: Iterable[str]) -> list[Path]:
    """Write a server key pair and one key pair per client name, laid out as `for_server` and
    `for_client` read them; return the files written. In a directory that has its server key
    already, add the clients' key pairs to it. Never overwrites a key."""
    root = Path(directory)
    names = list(clients)
    for name in names:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a usable client name: {name!r}")
        if (root / "clients" / f"{name}.key").exists():
            raise FileExistsError(f"{root / 'clients' / name}.key exists already")
    written: list[Path] = []
    if (root / "server.key_secret").exists():
        if not names:
            raise FileExistsError(
                f"{root / 'server.key_secret'} exists already (name clients to add their keys)"
            )
    else:
        (root / "clients").mkdir(parents=True, exist_ok=True)
        written += [Path(p) for p in zmq.auth.create_certificates(str(root), "server")]
    for name in names:
        written += [Path(p) for p in zmq.auth.create_certificates(str(root / "clients"), name)]
    for path in written:
        if path.name.endswith(".key_secret"):
            path.chmod(0o600)
    return written


_PROTOCOL_FAILURES = {
    int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC): "wrong key (another passphrase or server key)",
    int(zmq.PROTOCOL_ERROR_ZMTP_KEY_EXCHANGE): "wrong key (another passphrase or server key)",
    int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH): "security on one side only",
}


def handshake_failure(event: int, value: int) -> str:
    """What a failed handshake a socket monitor reported (`event`, and its `value`: a protocol
    error code or an errno) most likely was, in words for the log."""
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return _PROTOCOL_FAILURES.get(value, "not a ZeroMQ handshake (garbage or another protocol)")
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return "key not allowed"
    return "broken off (the peer went away or was too slow)"


class HandshakeWatch:
    """Logs the handshakes a bound socket failed: a peer with the wrong server key, or without
    security at all. (Keys refused by the allow-list are logged by the authenticator, with the
    key.) Counted, and logged at most once a second, so a flood cannot flood the log. Call
    `poll()` from the socket's own thread now and then."""

    def __init__(self, sock: zmq.Socket[Any], what: str) -> None:
        self._sock = sock
        self._what = what
        events = zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        self._monitor = sock.get_monitor_socket(events)
        self._counts: dict[str, int] = {}
        self._logged_at = 0.0

    def poll(self) -> None:
        """Count failed handshakes seen since the last call; log them at most once a second."""
        while self._monitor.poll(0):
            message = recv_monitor_message(self._monitor)
            kind = handshake_failure(int(message["event"]), int(message["value"]))
            self._counts[kind] = self._counts.get(kind, 0) + 1
        now = time.monotonic()
        if self._counts and now - self._logged_at >= 1.0:
            summary = ", ".join(f"{n} {kind}" for kind, n in sorted(self._counts.items()))
            log.warning("%s refused connections whose handshake failed: %s", self._what, summary)
            self._counts.clear()
            self._logged_at = now

    def close(self) -> None:
        """Stop watching the socket."""
        self._sock.disable_monitor()
        self._monitor.close(linger=0)
