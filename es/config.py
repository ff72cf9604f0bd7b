"""The event server's configuration: one frozen object, built once, validated at build time.

Invariants:
- `ServerConfig` and `Limits` are immutable; nothing reads the environment after `from_env`.
- Every value is checked in `validate`; a config that exists is a config that works.
- Precedence: explicit value (CLI) > ES_* variable > Pyro's PYRO_ES_* variable > default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from clients.wire import PUB_BYTES_ACCEPTED, PUB_ITEMS_ACCEPTED, Policy
from es.cluster.frames import MAX_PAYLOAD as MAX_BACKBONE_PAYLOAD
from es.daemon.config import ConfigError, given, make
from es.daemon.storage import storage_path
from es.history import MAX_RULES, RuleError, parse_rule

__all__ = [
    "DEFAULT_PORT",
    "FSYNC",
    "ConfigError",
    "Limits",
    "Policy",
    "QueuePolicy",
    "ServerConfig",
    "from_env",
]

FSYNC = ("group", "every", "os")
"""When durable subscribers' events reach the disk (ServerConfig.fsync)."""

DEFAULT_PORT = 7766
"""Pyro's event server port, kept so that old habits still work."""

# A node's name travels in every event on the backbone and names its NATS subjects: one token.
_NODE_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NODE_NAME_BAD = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """What happens when a subscriber's queue is full, how many events it holds (0: no
    bound), and how long one event may hold publishers back in block mode."""

    policy: Policy
    queue_size: int
    max_stall: float

    @property
    def blocks(self) -> bool:
        """Whether a full queue holds publishers back (block mode)."""
        return self.policy is Policy.BLOCK


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one client may ask for. Each one caps memory or CPU an attacker could burn."""

    # Long enough for dotted hierarchies, short enough that a stats listing stays small.
    max_subject_bytes: int = 256
    # RE2 compile time and memory grow with the pattern; 1 KiB leaves room for real alternations.
    max_pattern_bytes: int = 1024
    # Pyro published to "a sequence of subjects"; a hundred covers fan-in topics, not abuse.
    max_subjects_per_item: int = 100
    # One PUB may batch this many events (the publisher side batches at most this).
    max_items_per_publish: int = 1000
    # NATS's default max payload; larger data belongs in a file server.
    max_message_bytes: int = 1 << 20
    # All payloads of one batched publish together: bounds what one request can make us hold.
    max_publish_bytes: int = 16 << 20
    # Subjects plus patterns of one subscriber.
    max_subscriptions: int = 10_000
    # Each subscriber costs a DEALER socket and a TCP connection.
    max_subscribers: int = 10_000
    # Largest queue a subscriber may ask for; 0 means no cap (unbounded queues allowed).
    max_queue_size: int = 100_000
    # Longest a block-mode subscriber may ask the server to wait for one event.
    max_stall_limit: float = 60.0
    # Retained events kept (one per subject), and their payloads' total size: each costs memory.
    max_retained: int = 10_000
    max_retained_bytes: int = 64 << 20
    # Units of work a second from one connection (a burst of as many), 0 = no limit: a request
    # costs 1 plus its work (es.ratelimit.bill). A publisher in a tight loop through the Python
    # client stays well below: events are billed a thirty-second of a unit.
    max_request_rate: float = 20_000.0
    # A random 128-bit id in hex is 32 bytes; leave room for readable prefixes.
    max_sid_bytes: int = 128
    max_endpoint_bytes: int = 256
    # Events one durable subscriber's log may hold, not yet acknowledged (SPEC 7.10): their
    # number, their bytes (payloads and headers), their age in seconds (0: no limit).
    max_durable_events: int = 100_000
    max_durable_bytes: int = 64 << 20
    max_durable_age: float = 7 * 86_400.0
    # Durable subscribers, present or away.
    max_durables: int = 1000
    # Queue groups, with members or (durable ones) without.
    max_groups: int = 1000


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Everything the `es` daemon needs to start. Build with `from_env` or directly."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Register as :Pyro.EventService in the name server, as Pyro's event server did (-N: don't).
    use_naming: bool = True
    # Where the name server is; None: found by URI file, then broadcast (see clients.naming).
    ns_address: str | None = None
    # Seconds the registration outlives this server if it dies; renewed every third of that.
    ns_lease: float = 10.0
    # CurveZMQ security: a passphrase (Pyro's -i), or a directory made by `es keygen`.
    ident: str | None = None
    keys_dir: str | None = None
    # "memory" forgets subscribers and retained events on restart; "sqlite:PATH" keeps them.
    storage: str = "memory"
    # With sqlite storage, when durable subscribers' events reach the disk: "group" (one commit
    # and fsync per turn of the loop, before anything of it is sent or confirmed), "every" (a
    # commit and fsync per publish), "os" (one commit per turn, flushed by the OS: safe against
    # a killed server, not against a crashed machine).
    fsync: str = "group"
    # History rules (SPEC 7.11), `PATTERN=LIMITS` each (es.history.parse_rule): events on
    # subjects they match are kept, within their bounds, for subscriptions that ask for them.
    history: tuple[str, ...] = ()
    # Pyro's default behaviour: the publisher waits, so nothing is lost.
    policy: Policy = Policy.BLOCK
    # Pyro's "moderately sized" queue; ZeroMQ's own default high-water mark is the same.
    queue_size: int = 1000
    # How long one event may hold up publishers for one full block-mode subscriber.
    max_stall: float = 5.0
    # A subscriber silent this long (no heartbeat or other request), or whose inbox this server
    # cannot reach for this long, is removed: a dead subscriber stops costing anything.
    liveness: float = 10.0
    # A subscriber whose queue stays full this long is removed and told so; 0 = never.
    evict_stalled: float = 60.0
    # How long graceful shutdown waits for queued events to leave.
    drain_timeout: float = 5.0
    # Subjects whose recipient sets are remembered between publishes.
    cache_size: int = 10_000
    # A cluster (SPEC 15): the NATS servers of its backbone, comma-separated (nats://HOST:PORT),
    # and this node's name among the others (None: the host's name and this server's port).
    cluster: str | None = None
    node_name: str | None = None
    limits: Limits = field(default_factory=Limits)

    def __post_init__(self) -> None:
        validate(self)
        object.__setattr__(self, "policy", Policy(self.policy))  # given as text from outside

    @property
    def cluster_servers(self) -> list[str]:
        """The NATS servers of the backbone (empty: not in a cluster)."""
        return [url.strip() for url in (self.cluster or "").split(",") if url.strip()]

    @property
    def node(self) -> str:
        """This node's name in the cluster."""
        if self.node_name:
            return self.node_name
        host = _NODE_NAME_BAD.sub("-", socket.gethostname())[:48] or "es"
        return f"{host}-{self.port or os.getpid()}"

    @property
    def queue_policy(self) -> QueuePolicy:
        """The queue policy of a subscriber that asks for nothing else."""
        return QueuePolicy(self.policy, self.queue_size, self.max_stall)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for printing (`es config`); the passphrase is never shown."""
        data = dataclasses.asdict(self)
        data["ident"] = None if self.ident is None else "(set)"
        return data


def validate(config: ServerConfig) -> None:
    """Raise ConfigError naming the first setting that does not make sense."""
    lim = config.limits
    _check(bool(config.host), "host must not be empty")
    _check(not (config.ident and config.keys_dir), "give ident or keys_dir, not both")
    try:
        storage_path(config.storage)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _check(0 <= config.port <= 65535, "port must be from 0 to 65535")
    _check(config.policy in ("block", "drop"), "policy must be 'block' or 'drop'")
    _check(config.queue_size >= 0, "queue_size must be >= 0 (0 = unbounded)")
    if lim.max_queue_size:
        _check(config.queue_size != 0, "queue_size 0 (unbounded) needs max_queue_size 0")
        _check(config.queue_size <= lim.max_queue_size, "queue_size exceeds max_queue_size")
    _check(_seconds(config.max_stall), "max_stall must be a finite number of seconds >= 0")
    _check(config.max_stall <= lim.max_stall_limit, "max_stall exceeds max_stall_limit")
    _check(_seconds(config.drain_timeout), "drain_timeout must be a finite number >= 0")
    _check(_seconds(config.liveness) and config.liveness >= 1, "liveness must be >= 1 second")
    _check(_seconds(config.evict_stalled), "evict_stalled must be a finite number >= 0")
    _check(_seconds(config.ns_lease) and config.ns_lease >= 1, "ns_lease must be >= 1 second")
    _check(config.cache_size >= 0, "cache_size must be >= 0")
    _check(config.fsync in FSYNC, f"fsync must be one of {', '.join(FSYNC)}")
    if config.cluster is not None:
        urls = config.cluster_servers
        _check(bool(urls), "cluster needs at least one NATS server URL")
        _check(all(u.startswith("nats://") for u in urls), "cluster URLs are nats://HOST:PORT")
        _check(
            lim.max_message_bytes <= MAX_BACKBONE_PAYLOAD,
            f"in a cluster, max_message_bytes must be <= {MAX_BACKBONE_PAYLOAD}",
        )
    if config.node_name is not None:
        _check(
            bool(_NODE_NAME.fullmatch(config.node_name)),
            "node_name must be 1 to 64 letters, digits, '-' or '_'",
        )
    _check(len(config.history) <= MAX_RULES, f"at most {MAX_RULES} history rules")
    for rule in config.history:
        try:
            parse_rule(rule, lim.max_pattern_bytes)
        except RuleError as exc:
            raise ConfigError(str(exc)) from None
    for f in dataclasses.fields(lim):
        value = getattr(lim, f.name)
        _check(value >= 0 and math.isfinite(value), f"{f.name} must be >= 0")
    # What a client may gather into one PUB without asking (SPEC.md): a server must take it.
    items, size = PUB_ITEMS_ACCEPTED, PUB_BYTES_ACCEPTED
    _check(lim.max_items_per_publish >= items, f"max_items_per_publish must be >= {items}")
    _check(lim.max_publish_bytes >= size, f"max_publish_bytes must be >= {size}")


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


def _seconds(value: float) -> bool:
    return math.isfinite(value) and value >= 0


def _pyro_env(env: Mapping[str, str]) -> dict[str, Any]:
    """Pyro 3's two event server settings, under their own names."""
    found: dict[str, Any] = {}
    if "PYRO_ES_QUEUESIZE" in env:
        found["queue_size"] = _int(env["PYRO_ES_QUEUESIZE"], "PYRO_ES_QUEUESIZE")
    if "PYRO_ES_BLOCKQUEUE" in env:
        flag = env["PYRO_ES_BLOCKQUEUE"].strip()
        if flag not in ("0", "1"):
            raise ConfigError("PYRO_ES_BLOCKQUEUE must be 1 (block) or 0 (drop)")
        found["policy"] = "block" if flag == "1" else "drop"
    return found


def _int(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, not {text!r}") from None


def from_env(env: Mapping[str, str], **explicit: Any) -> ServerConfig:
    """A config from explicit values (None = not given) over Pyro's variables over defaults
    (the pattern of es.daemon.config).

    ES_* variables are read by the CLI (typer's envvar) and arrive here as explicit values.
    """
    limit_names = {f.name for f in dataclasses.fields(Limits)}
    known = {f.name for f in dataclasses.fields(ServerConfig)} | limit_names
    values = {**_pyro_env(env), **given(explicit, known, ConfigError)}
    limits = make(Limits, {k: v for k, v in values.items() if k in limit_names}, ConfigError)
    server = {k: v for k, v in values.items() if k not in limit_names}
    return make(ServerConfig, {**server, "limits": limits}, ConfigError)
