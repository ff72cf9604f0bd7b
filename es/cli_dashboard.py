"""`es dashboard`: web pages, live streams and Prometheus metrics for operators (es.dashboard),
from a process of its own that is an ordinary client of `es` and `ns`. Adds itself to the `es`
app when es.cli imports this module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from clients.names import EVENT_SERVICE
from es.cli_app import EsUri, app, fail
from es.daemon.lifecycle import ExitCode, setup_logging
from es.daemon.options import Ident, KeyFile, NsAddress, ServerKeyFile, client_keys

DEFAULT_PORT = 7770


@app.command()
def dashboard(
    es: EsUri = None,
    ns: NsAddress = None,
    host: Annotated[
        str, typer.Option("-n", "--host", help="Address to serve the pages on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("-p", "--port", help=f"Port, 0 for any free one [{DEFAULT_PORT}].")
    ] = DEFAULT_PORT,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="Show everything, change nothing.")
    ] = False,
    no_ui: Annotated[
        bool, typer.Option("--no-ui", help="Only /metrics, /healthz and /readyz.")
    ] = False,
    labels: Annotated[
        str,
        typer.Option(
            "--labels",
            metavar="LIST",
            help="Per-subscriber and per-subject metrics: 'subscriber', 'subject' or both.",
        ),
    ] = "",
    interval: Annotated[
        float, typer.Option("--interval", min=0.1, help="Seconds between polls of STATS.")
    ] = 1.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds to wait for a server.")
    ] = 5.0,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
    log_level: Annotated[
        str, typer.Option("--log-level", envvar="ES_LOG_LEVEL", help="DEBUG, INFO, WARNING...")
    ] = "INFO",
) -> None:
    """Serve the dashboard (health, names, subscribers, subjects, counters, live tail, test
    publish, activity) and /metrics. Prints one JSON ready line on stdout."""
    try:
        from es.dashboard.metrics import LABELS
        from es.dashboard.run import run
        from es.dashboard.source import Source
    except ImportError as exc:
        raise fail(
            f"the dashboard needs its extra: pip install 'zmq-event-service[dashboard]' ({exc})",
            ExitCode.USAGE,
        ) from None
    wanted = frozenset(filter(None, (part.strip() for part in labels.split(","))))
    if not wanted <= LABELS:
        raise fail(f"--labels takes {', '.join(sorted(LABELS))}", ExitCode.USAGE)
    keys = client_keys(ident, key, server_key, "es")
    security = "none" if keys is None else "CurveZMQ (" + ("passphrase" if ident else "keys") + ")"
    setup_logging("es-dashboard", log_level)
    if es is None and ns is not None:  # the event server found through that name server
        es = f"PYRONAME://{ns.removeprefix('tcp://')}/{EVENT_SERVICE}"
    source = Source(es, ns, keys, security, timeout=timeout, interval=interval)
    code = run(source, host, port, read_only=read_only, ui=not no_ui, labels=wanted)
    raise typer.Exit(code)
