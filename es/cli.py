"""The `es` command: run the event server (serve, config, up, keygen, bench here; the commands
that talk to a running server are in es.cli_client).

Exit codes: 0 done, 1 an error (one line on stderr), 2 bad usage or configuration,
3 the server could not bind its address, 130 the server was stopped by a second interrupt.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

import es.cli_client
import es.cli_dashboard  # noqa: F401 - adds `es dashboard`
from es import __version__
from es.cli_app import app, ask, fail
from es.daemon.lifecycle import (
    ExitCode,
    command_logging,
    setup_logging,
    terminate_like_interrupt,
    tune_collector,
)
from es.daemon.options import Ident, KeysDir, NsAddress, options_of

if TYPE_CHECKING:  # the daemon's modules load only for the commands that run it
    from es.config import ServerConfig

# Server options, shared by `serve` and `config`. None means "not given": the configuration then
# falls back to Pyro's PYRO_ES_* variables, then to its defaults.
Host = Annotated[
    str | None, typer.Option("-n", "--host", envvar="ES_HOST", help="Address to bind [127.0.0.1].")
]
Port = Annotated[
    int | None,
    typer.Option("-p", "--port", envvar="ES_PORT", help="Port to bind, 0 for any free one [7766]."),
]
NoNaming = Annotated[
    bool, typer.Option("-N", "--no-naming", help="Do not register in a name server.")
]
Liveness = Annotated[
    float | None,
    typer.Option(
        "--liveness",
        envvar="ES_LIVENESS",
        help="Seconds before a silent or unreachable subscriber is removed [10].",
    ),
]
EvictStalled = Annotated[
    float | None,
    typer.Option(
        "--evict-stalled",
        envvar="ES_EVICT_STALLED",
        help="Seconds a full subscriber is kept, 0 = forever [60].",
    ),
]
NsLease = Annotated[
    float | None,
    typer.Option(
        "--ns-lease", envvar="ES_NS_LEASE", help="Seconds the name outlives a crash [10]."
    ),
]
QueueSize = Annotated[
    int | None,
    typer.Option(
        "--queue-size",
        envvar="ES_QUEUE_SIZE",
        help="Events queued per subscriber, 0=unbounded [1000].",
    ),
]
QueueMode = Annotated[  # text here; the configuration makes it a Policy, or says why not
    str | None,
    typer.Option(
        "--policy",
        envvar="ES_POLICY",
        metavar="[block|drop]",
        help="Full queue: 'block' publishers or 'drop' [block].",
    ),
]
MaxStall = Annotated[
    float | None,
    typer.Option(
        "--max-stall", envvar="ES_MAX_STALL", help="Seconds one event may block publishers [5]."
    ),
]
MaxQueue = Annotated[
    int | None,
    typer.Option(
        "--max-queue-size",
        envvar="ES_MAX_QUEUE_SIZE",
        help="Largest queue a subscriber may ask for, 0=no cap [100000].",
    ),
]
MaxMessage = Annotated[
    int | None,
    typer.Option(
        "--max-message-bytes", envvar="ES_MAX_MESSAGE_BYTES", help="Payload size [1 MiB]."
    ),
]
MaxSubjects = Annotated[
    int | None,
    typer.Option(
        "--max-subjects-per-event", envvar="ES_MAX_SUBJECTS", help="Subjects of one event [100]."
    ),
]
MaxSubscriptions = Annotated[
    int | None,
    typer.Option(
        "--max-subscriptions",
        envvar="ES_MAX_SUBSCRIPTIONS",
        help="Subjects plus patterns of one subscriber [10000].",
    ),
]
MaxPattern = Annotated[
    int | None,
    typer.Option(
        "--max-pattern-bytes", envvar="ES_MAX_PATTERN_BYTES", help="Pattern length [1024]."
    ),
]
MaxSubscribers = Annotated[
    int | None,
    typer.Option(
        "--max-subscribers", envvar="ES_MAX_SUBSCRIBERS", help="Subscribers of the server [10000]."
    ),
]
MaxRetained = Annotated[
    int | None,
    typer.Option(
        "--max-retained", envvar="ES_MAX_RETAINED", help="Subjects with a retained event [10000]."
    ),
]
MaxRetainedBytes = Annotated[
    int | None,
    typer.Option(
        "--max-retained-bytes",
        envvar="ES_MAX_RETAINED_BYTES",
        help="Total size of retained payloads [64 MiB].",
    ),
]
MaxRate = Annotated[
    float | None,
    typer.Option(
        "--max-request-rate",
        envvar="ES_MAX_REQUEST_RATE",
        help="Requests a second from one connection, 0 = no limit [20000].",
    ),
]
StorageSpec = Annotated[
    str | None,
    typer.Option(
        "--storage",
        envvar="ES_STORAGE",
        help="memory, or sqlite:PATH to keep subscribers and retained events [memory].",
    ),
]
Fsync = Annotated[
    str | None,
    typer.Option(
        "--fsync",
        envvar="ES_FSYNC",
        help="With sqlite: durable events on disk at each turn's commit (group), at each "
        "publish's (every), or when the OS writes them (os) [group].",
    ),
]
DurableEvents = Annotated[
    int | None,
    typer.Option(
        "--max-durable-events",
        envvar="ES_MAX_DURABLE_EVENTS",
        help="Events a durable subscriber's log may hold [100000].",
    ),
]
DurableBytes = Annotated[
    int | None,
    typer.Option(
        "--max-durable-bytes",
        envvar="ES_MAX_DURABLE_BYTES",
        help="Bytes a durable subscriber's log may hold [64 MiB].",
    ),
]
DurableAge = Annotated[
    float | None,
    typer.Option(
        "--max-durable-age",
        envvar="ES_MAX_DURABLE_AGE",
        help="Seconds a durable subscriber's event is kept, 0 = no limit [604800: 7 days].",
    ),
]
HistoryRules = Annotated[
    list[str] | None,
    typer.Option(
        "--history",
        help="Keep the events on subjects PATTERN matches for replay, within LIMITS: an age "
        "(1d), a count (100000), a size (64MiB), e.g. 'orders\\..*=1d,100000'. Repeat for more "
        "rules; the first that matches a subject keeps its events.",
        metavar="PATTERN=LIMITS",
    ),
]
Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        envvar="ES_CLUSTER",
        help="Be a node of a cluster whose backbone is these NATS servers (nats://HOST:PORT, "
        "comma-separated): events published on any node reach subscribers on every node.",
    ),
]
NodeName = Annotated[
    str | None,
    typer.Option(
        "--node-name",
        envvar="ES_NODE_NAME",
        help="This node's name in the cluster, unique among its nodes [host name-port].",
    ),
]
Drain = Annotated[
    float | None,
    typer.Option(
        "--drain-timeout",
        envvar="ES_DRAIN_TIMEOUT",
        help="Seconds shutdown waits for queued events [5].",
    ),
]


def _config(*, no_naming: bool, ns: str | None, **settings: Any) -> ServerConfig:
    """The server configuration from the options of `serve` and `config` (None = not given)."""
    from es.config import ConfigError, from_env

    if settings.get("history") is not None:
        settings["history"] = tuple(settings["history"])
    try:
        return from_env(os.environ, use_naming=not no_naming, ns_address=ns, **settings)
    except ConfigError as exc:
        raise fail(f"bad configuration: {exc}", ExitCode.USAGE) from None


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    no_naming: NoNaming = False,
    ns: NsAddress = None,
    ns_lease: NsLease = None,
    ident: Ident = None,
    keys_dir: KeysDir = None,
    storage: StorageSpec = None,
    fsync: Fsync = None,
    queue_size: QueueSize = None,
    policy: QueueMode = None,
    max_stall: MaxStall = None,
    max_queue_size: MaxQueue = None,
    max_message_bytes: MaxMessage = None,
    max_subjects_per_item: MaxSubjects = None,
    max_subscriptions: MaxSubscriptions = None,
    max_pattern_bytes: MaxPattern = None,
    max_subscribers: MaxSubscribers = None,
    max_request_rate: MaxRate = None,
    max_retained: MaxRetained = None,
    max_retained_bytes: MaxRetainedBytes = None,
    max_durable_events: DurableEvents = None,
    max_durable_bytes: DurableBytes = None,
    max_durable_age: DurableAge = None,
    history: HistoryRules = None,
    drain_timeout: Drain = None,
    cluster: Cluster = None,
    node_name: NodeName = None,
    liveness: Liveness = None,
    evict_stalled: EvictStalled = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", envvar="ES_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR."),
    ] = "INFO",
) -> None:
    """Run the event server in the foreground. Prints one JSON ready line on stdout."""
    options = dict(locals())
    options.pop("log_level")
    config = _config(**options)
    setup_logging("es", log_level)
    from es.server import EventServer

    server = EventServer(config, on_ready=_announce)
    server.install_signal_handlers()
    tune_collector()  # this process is the server's alone
    code = server.serve()
    if server.forced:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(ExitCode.FORCED)  # do not wait for sockets still lingering
    raise typer.Exit(code)


def _announce(endpoint: str) -> None:
    line = {"ready": "es", "endpoint": endpoint, "pid": os.getpid(), "version": __version__}
    print(json.dumps(line), flush=True)


@app.command()
@options_of(serve)
def config(**options: Any) -> None:
    """Print the configuration `es serve` would run with, as JSON."""
    cfg = _config(**options)
    typer.echo(json.dumps(cfg.as_dict(), indent=2))


@app.command()
def keygen(
    directory: Annotated[
        str, typer.Argument(metavar="DIRECTORY", help="Directory for the key files (created).")
    ],
    clients: Annotated[
        list[str] | None,
        typer.Argument(metavar="CLIENT", help="Names of clients to make key pairs for."),
    ] = None,
) -> None:
    """Make CurveZMQ key files: the daemons' pair and one pair per client (see SPEC.md, 14.2).

    Run the daemons with --keys DIRECTORY; give each client its clients/NAME.key_secret and
    server.key (--key, --server-key). Add a client later with `es keygen DIRECTORY NAME` (or
    by copying its .key file into DIRECTORY/clients/), then restart the daemons.
    """
    from es.daemon.security import generate

    try:
        written = generate(directory, clients or [])
    except (OSError, ValueError) as exc:
        raise fail(str(exc), ExitCode.USAGE) from None
    for path in written:
        typer.echo(str(path))


@app.command()
def up(
    port: Annotated[int, typer.Option("-p", "--port", help="Event server port.")] = 7766,
    ns_port: Annotated[int, typer.Option("--ns-port", help="Name server port.")] = 9090,
    host: Annotated[str, typer.Option("-n", "--host", help="Address both bind.")] = "127.0.0.1",
    ident: Ident = None,
    keys_dir: KeysDir = None,
    nodes: Annotated[
        int,
        typer.Option(
            "--nodes",
            help="Run this many event servers as the nodes of a cluster, on ports from --port "
            "up, over as many local nats-servers (the venv's) in a NATS cluster [1: no cluster].",
            min=1,
            max=16,
        ),
    ] = 1,
) -> None:
    """Run a name server and an event server together in the foreground (Ctrl-C stops both)."""
    from es.stack import run_stack

    # Both daemons read them from the environment, where `ps` does not show them.
    if ident:
        os.environ["ES_IDENT"] = ident
    if keys_dir:
        os.environ["ES_KEYS"] = keys_dir
    ns_args = ["-n", host, "-p", str(ns_port)]
    if nodes == 1:
        raise typer.Exit(run_stack(ns_args, ["-n", host, "-p", str(port)]))
    each = [["-p", str(port + n if port else 0), "--node-name", f"n{n + 1}"] for n in range(nodes)]
    raise typer.Exit(run_stack(ns_args, ["-n", host], each))


@app.command()
def bench(
    es: Annotated[
        str | None,
        typer.Option("--es", help="Measure this event server [default: start a private one]."),
    ] = None,
    only: Annotated[
        str | None,
        typer.Option(
            help="Workloads, comma-separated: throughput, latency, matching, many, slow, "
            "hostile, cli, durable, cluster (these two on private servers of their own) "
            "[default: all; hostile only when named if --es is given]."
        ),
    ] = None,
    quick: Annotated[
        bool, typer.Option(help="Tiny workloads: a smoke test, not a measure.")
    ] = False,
    results: Annotated[
        Path | None, typer.Option(help="Append the results here, one JSON line per row.")
    ] = None,
    summary: Annotated[
        Path | None, typer.Option(help="Append a markdown summary of the run here.")
    ] = None,
    profile: Annotated[
        Path | None,
        typer.Option(
            help="Sample the throughput runs' processes with py-spy into this folder "
            "(their figures are then slowed by the sampling).",
            metavar="DIR",
        ),
    ] = None,
    ident: Ident = None,
) -> None:
    """Measure throughput, latency, matching, many subscribers, a slow consumer, and ordinary
    clients' latency beside a hostile one.

    Plain pyzmq PUB/SUB on the same machine is measured beside it. Publishers and subscribers
    run on this machine; without --es, so do a private name server and event server."""
    import dataclasses

    from es.bench import WORKLOADS, BenchError, Settings, run_bench

    if ident:
        os.environ["ES_IDENT"] = ident  # the role processes read it, and `ps` does not show it
    if es is not None:  # found once, here: a bad address is a usage error, not a role's traceback
        from clients.naming import resolve_es_uri

        es = ask(ident, None, None, lambda keys: resolve_es_uri(es, keys=keys))
    settings = dataclasses.replace(Settings.quick() if quick else Settings(), profile=profile)
    if only is None:  # a hostile client is sent to someone else's server only when asked for
        names = [n for n in WORKLOADS if es is None or n != "hostile"]
    else:
        names = [n.strip() for n in only.split(",") if n.strip()]
    try:
        run_bench(names, settings, es, results, summary)
    except ValueError as exc:
        raise fail(str(exc), ExitCode.USAGE) from None
    except BenchError as exc:
        raise fail(str(exc)) from None


def main() -> None:
    """The `es` command."""
    terminate_like_interrupt()
    command_logging("es")
    app()
