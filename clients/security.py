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
- What only the daemons use (their keys from -i or --keys, `es keygen`'s files, the watch on
  failed handshakes) is in es.daemon.security; everything here serves clients too.
- One ZAP authenticator per context, started with the first secured server socket of that
  context and stopped with the last; each secured socket names its own ZAP domain, so
  different sockets of one process can accept different keys.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import zmq
import zmq.auth
from zmq.utils import z85

if TYPE_CHECKING:
    from zmq.auth.thread import ThreadAuthenticator

__all__ = [
    "HANDSHAKES",
    "HANDSHAKE_EVENTS",
    "KDF_N",
    "KDF_P",
    "KDF_R",
    "KDF_SALT",
    "Keys",
    "as_client",
    "as_server",
    "choose",
    "derive_secret",
    "keys_from",
    "release",
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


def choose(ident: str | None, keys: Keys | None) -> Keys | None:
    """The keys a client was given as `ident=` (a passphrase) or `keys=`; None: no security."""
    if ident is not None and keys is not None:
        raise ValueError("give ident= or keys=, not both")
    return Keys.from_passphrase(ident) if ident is not None else keys


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
