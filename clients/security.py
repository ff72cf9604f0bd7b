"""CurveZMQ security: keys from a passphrase or from certificate files, applied to sockets.

Every connection of a secured deployment is a CurveZMQ connection (encrypted, and both ends
prove their keys); who may connect is decided by pyzmq's own ZAP authenticator, never by code of
ours on the wire.

Invariants:
- A passphrase always gives the same key pair, on every machine and in every language: scrypt
  with the parameters and salt below, whose 32 bytes are the Curve25519 secret key as they are
  (SPEC.md, "Security", has a test vector).
- With a passphrase, every party holds that one key pair and accepts only it. With key files, the
  servers (`es` and `ns`) share one pair and accept the client keys of an allow-list and their
  own; each client has its own pair and accepts only the servers' key (on its inbox).
- One ZAP authenticator per context, started with the first secured server socket of that
  context and stopped with the last; each secured socket names its own ZAP domain, so
  different sockets of one process can accept different keys.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

__all__ = [
    "HANDSHAKES",
    "HANDSHAKE_EVENTS",
    "KDF_N",
    "KDF_P",
    "KDF_R",
    "KDF_SALT",
    "HandshakeWatch",
    "Keys",
    "as_client",
    "as_server",
    "choose",
    "derive_secret",
    "generate",
    "keys_from",
    "release",
    "server_keys",
    "warn_if_exposed",
]

log = logging.getLogger("clients.security")

KDF_SALT = b"zmq-event-service/curve/v1"
KDF_N = 2**14
KDF_R = 8
KDF_P = 1


def derive_secret(passphrase: str) -> bytes:
    """The 32-byte Curve25519 secret key for a passphrase (scrypt, documented in SPEC.md)."""
    return hashlib.scrypt(
        passphrase.encode(), salt=KDF_SALT, n=KDF_N, r=KDF_R, p=KDF_P, dklen=32, maxmem=64 << 20
    )


@functools.lru_cache(maxsize=8)  # scrypt is slow on purpose: derive once per process
def _pair(passphrase: str) -> tuple[bytes, bytes]:
    secret = z85.encode(derive_secret(passphrase))
    return zmq.curve_public(secret), secret


@dataclass(frozen=True)
class Keys:
    """What one party needs: its own key pair, the key of the servers it connects to, and the
    keys it accepts on the sockets it binds. Keys are Z85 text, as ZeroMQ writes them."""

    public: bytes
    secret: bytes = field(repr=False)  # never in a log line or a traceback
    server: bytes = b""
    allowed: frozenset[bytes] = frozenset()

    @classmethod
    def from_passphrase(cls, passphrase: str) -> Keys:
        """The key pair every holder of `passphrase` derives (scrypt), trusted by all of them."""
        if not passphrase:
            raise ValueError("the passphrase is empty")
        public, secret = _pair(passphrase)
        return cls(public, secret, public, frozenset({public}))

    @classmethod
    def for_client(cls, key_file: str | Path, server_key_file: str | Path) -> Keys:
        """A client's own secret certificate and the servers' public one."""
        public, secret = _load(key_file, secret=True)
        server, _ = _load(server_key_file, secret=False)
        assert secret is not None
        return cls(public, secret, server, frozenset({server}))

    @classmethod
    def for_server(cls, directory: str | Path) -> Keys:
        """A server's keys from a directory made by `es keygen`: `server.key_secret`, and the
        allow-list `clients/*.key`."""
        root = Path(directory)
        public, secret = _load(root / "server.key_secret", secret=True)
        assert secret is not None
        allowed = {public}
        for cert in sorted((root / "clients").glob("*.key")):
            allowed.add(_load(cert, secret=False)[0])
        return cls(public, secret, public, frozenset(allowed))


def _load(path: str | Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the key file {path}: {exc}") from None
    if secret and secret_key is None:
        raise ValueError(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret_key


def keys_from(
    ident: str | None = None,
    key_file: str | Path | None = None,
    server_key_file: str | Path | None = None,
) -> Keys | None:
    """A client's Keys from what the program or the command line gave; None: no security."""
    if ident and (key_file or server_key_file):
        raise ValueError("give a passphrase or key files, not both")
    if ident:
        return Keys.from_passphrase(ident)
    if key_file or server_key_file:
        if not (key_file and server_key_file):
            raise ValueError("key files need both the client's secret key and the server's key")
        return Keys.for_client(key_file, server_key_file)
    return None


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


def choose(ident: str | None, keys: Keys | None) -> Keys | None:
    """The keys a client was given as `ident=` (a passphrase) or `keys=`; None: no security."""
    if ident is not None and keys is not None:
        raise ValueError("give ident= or keys=, not both")
    return Keys.from_passphrase(ident) if ident is not None else keys


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


def as_client(sock: zmq.Socket[Any], keys: Keys | None, server: bytes | None = None) -> None:
    """Make `sock` (before it connects) a CurveZMQ client of `server` (default: keys.server)."""
    if keys is None:
        return
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret
    sock.curve_serverkey = server or keys.server


# --- accepting connections: one ZAP authenticator per context ------------------------------------


class _Allowed:
    """A ZAP credentials provider: the keys one domain accepts; refusals are logged, at most
    once a second with a count, so a flood of bad handshakes cannot flood the log."""

    def __init__(self, domain: str, keys: frozenset[bytes]) -> None:
        self.domain = domain
        self.keys = keys
        self._refused = 0
        self._logged_at = 0.0

    def callback(self, domain: str, key: bytes) -> bool:
        if key in self.keys:
            return True
        self._refused += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            log.warning(
                "refused %d connection(s) on %s: key %s is not allowed",
                self._refused,
                self.domain,
                key.decode(errors="replace"),
            )
            self._refused, self._logged_at = 0, now
        return False


_lock = threading.Lock()
_authenticators: dict[int, tuple[ThreadAuthenticator, set[str]]] = {}  # only daemons make one


def as_server(sock: zmq.Socket[Any], keys: Keys | None, domain: str) -> None:
    """Make `sock` (before it binds) a CurveZMQ server that accepts only `keys.allowed`, under
    ZAP domain `domain` (unique in the process). Call `release(context, domain)` when closing."""
    if keys is None:
        return
    context = sock.context
    with _lock:
        entry = _authenticators.get(id(context))
        if entry is None:
            from zmq.auth.thread import ThreadAuthenticator  # here: clients never need it

            auth = ThreadAuthenticator(context, log=logging.getLogger("clients.security.zap"))
            auth.start()
            entry = _authenticators[id(context)] = (auth, set())
        auth, domains = entry
        auth.configure_curve_callback(domain, _Allowed(domain, keys.allowed))
        domains.add(domain)
    sock.zap_domain = domain.encode()
    sock.curve_server = True
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret


def release(context: zmq.Context[Any], domain: str) -> None:
    """Forget `domain`; stop the context's authenticator with its last domain."""
    with _lock:
        entry = _authenticators.get(id(context))
        if entry is None or domain not in entry[1]:
            return
        auth, domains = entry
        domains.discard(domain)
        auth.credentials_providers.pop(domain, None)
        if not domains:
            del _authenticators[id(context)]
            auth.stop()


HANDSHAKES: dict[int, bool | None] = {
    int(zmq.EVENT_HANDSHAKE_SUCCEEDED): True,
    int(zmq.EVENT_HANDSHAKE_FAILED_AUTH): False,  # refused: the peer's ZAP said no
    int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL): False,  # refused: security on one side only
    int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL): None,  # a wrong key, or a peer dying mid-handshake
}
"""What a socket monitor's handshake event means: succeeded, refused, or failed without a reason.
Clients, the event server's delivery sockets and the daemons' watch all read them from here."""

HANDSHAKE_EVENTS = 0
for _event in HANDSHAKES:
    HANDSHAKE_EVENTS |= _event


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
