"""The name server's configuration: one frozen object, validated when built.

Built as the event server's is (es.daemon.config): `from_env(env, **explicit)`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from clients.naming import NS_PORT
from es.daemon.config import ConfigError, given, make
from es.daemon.storage import storage_path

__all__ = ["NsConfig", "NsConfigError", "from_env"]


class NsConfigError(ConfigError):
    """A setting is unknown or out of range."""


@dataclass(frozen=True, slots=True)
class NsConfig:
    """The name server's settings, checked when made."""

    host: str = "127.0.0.1"
    port: int = NS_PORT
    # CurveZMQ security: a passphrase (Pyro's -i), or a directory made by `es keygen`.
    ident: str | None = None
    keys_dir: str | None = None
    # Pyro's name server forgot everything on restart; sqlite:PATH remembers.
    storage: str = "memory"
    # None: the per-user default file; "": write none.
    uri_file: str | None = None
    # Answer UDP broadcasts asking where the name server is (Pyro's NameServerLocator).
    discovery: bool = True
    # Shortest and longest lease a registrant may ask for: short leases cost renewals.
    min_lease: float = 1.0
    max_lease: float = 3600.0
    # Each name costs a little memory and a line in every listing.
    max_names: int = 10_000
    # How often expired leases are swept (lookups ignore them at once anyway).
    sweep_interval: float = 1.0

    def __post_init__(self) -> None:
        _check(bool(self.host), "host must not be empty")
        _check(not (self.ident and self.keys_dir), "give ident or keys_dir, not both")
        _check(0 <= self.port <= 65535, "port must be from 0 to 65535")
        try:
            storage_path(self.storage)
        except ValueError as exc:
            raise NsConfigError(str(exc)) from None
        for name in ("min_lease", "max_lease", "sweep_interval"):
            value = getattr(self, name)
            _check(math.isfinite(value) and value > 0, f"{name} must be a positive number")
        _check(self.min_lease <= self.max_lease, "min_lease must not exceed max_lease")
        _check(self.max_names > 0, "max_names must be positive")

    def as_dict(self) -> dict[str, Any]:
        """The settings as a dict, with the passphrase hidden."""
        data = dataclasses.asdict(self)
        data["ident"] = None if self.ident is None else "(set)"
        return data


def from_env(env: Mapping[str, str], **explicit: Any) -> NsConfig:
    """A config from explicit values (None = not given) over defaults (the pattern of
    es.daemon.config). NS_* variables are read by the CLI (typer's envvar) and arrive here as
    explicit values; the name server honours no older variables, so `env` adds nothing."""
    known = {f.name for f in dataclasses.fields(NsConfig)}
    return make(NsConfig, given(explicit, known, NsConfigError), NsConfigError)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise NsConfigError(message)
