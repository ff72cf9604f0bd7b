"""The `ns` command: run the name server, and Pyro's `pyro-nsc` commands against one.

Exit codes: 0 done, 1 an error (one line on stderr), 2 bad usage or configuration,
3 the address could not be bound, 130 stopped by a second interrupt.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from clients.errors import EsError
from clients.naming import NameServer, uri_file_path
from clients.security import Keys
from es.daemon.lifecycle import ExitCode, command_logging, setup_logging, terminate_like_interrupt
from es.daemon.options import (
    Ident,
    KeyFile,
    KeysDir,
    NsAddress,
    ServerKeyFile,
    client_keys,
    options_of,
)
from naming import __version__
from naming.config import NsConfig, NsConfigError, from_env
from naming.server import NameServerDaemon

app = typer.Typer(
    help="The name server (ns serve) and commands to inspect and change its names.",
    no_args_is_help=True,
    add_completion=True,  # ns --install-completion: bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no [brackets] eaten as markup
)

T = TypeVar("T")

Host = Annotated[
    str | None, typer.Option("-n", "--host", envvar="NS_HOST", help="Address to bind [127.0.0.1].")
]
Port = Annotated[
    int | None,
    typer.Option(
        "-p", "--port", envvar="NS_PORT", help="Port (TCP and UDP discovery), 0 = any [9090]."
    ),
]
Storage = Annotated[
    str | None,
    typer.Option("--storage", envvar="NS_STORAGE", help="memory or sqlite:PATH [memory]."),
]
UriFile = Annotated[
    str | None,
    typer.Option(
        "--uri-file", envvar="NS_URI_FILE", help="Where to write the endpoint ('' for nowhere)."
    ),
]
Discovery = Annotated[
    bool | None, typer.Option("--discovery/--no-discovery", help="Answer UDP broadcasts [on].")
]


def _fail(message: str, code: int = ExitCode.ERROR) -> typer.Exit:
    typer.echo(f"ns: {message}", err=True)
    return typer.Exit(code)


def _config(**values: Any) -> NsConfig:
    try:
        return from_env(os.environ, **values)
    except NsConfigError as exc:
        raise _fail(f"bad configuration: {exc}", ExitCode.USAGE) from None


@app.command()
def serve(
    host: Host = None,
    port: Port = None,
    ident: Ident = None,
    keys_dir: KeysDir = None,
    storage: Storage = None,
    uri_file: UriFile = None,
    discovery: Discovery = None,
    log_level: Annotated[
        str,
        typer.Option("--log-level", envvar="NS_LOG_LEVEL", help="DEBUG, INFO, WARNING or ERROR."),
    ] = "INFO",
) -> None:
    """Run the name server in the foreground. Prints one JSON ready line on stdout."""
    options = dict(locals())
    options.pop("log_level")
    config = _config(**options)
    setup_logging("ns", log_level)

    def announce(endpoint: str) -> None:
        line = {
            "ready": "ns",
            "endpoint": endpoint,
            "discovery": daemon.discovery,
            "uri_file": None if daemon.uri_file is None else str(daemon.uri_file),
            "pid": os.getpid(),
            "version": __version__,
        }
        print(json.dumps(line), flush=True)

    daemon = NameServerDaemon(config, on_ready=announce)
    daemon.install_signal_handlers()
    raise typer.Exit(daemon.serve())


@app.command()
@options_of(serve)
def config(**options: Any) -> None:
    """Print the configuration `ns serve` would run with, as JSON (uri_file: where it would
    write its address, as found from --uri-file, $NS_URI_FILE or the default)."""
    cfg = _config(**options)
    shown = cfg.as_dict()
    path = uri_file_path(cfg.uri_file)
    shown["uri_file"] = None if path is None else str(path)
    typer.echo(json.dumps(shown, indent=2))


def _with_ns(ns: str | None, keys: Keys | None, action: Callable[[NameServer], T]) -> T:
    try:
        with NameServer(ns, keys=keys) as server:
            return action(server)
    except (EsError, ValueError) as exc:
        raise _fail(str(exc)) from None


AsJson = Annotated[bool, typer.Option("--json", help="Print the reply as JSON.")]


@app.command()
def ping(
    ns: NsAddress = None,
    as_json: AsJson = False,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Check that the name server answers."""
    body = _with_ns(
        ns,
        client_keys(ident, key, server_key, "ns"),
        lambda s: {**s.ping(), "endpoint": s.endpoint},
    )
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    typer.echo(f"{body['server']} {body['version']} at {body['endpoint']}")


def _print_listing(body: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    if not body["groups"] and not body["names"]:
        typer.echo("nothing listed", err=True)
    for group in body["groups"]:
        typer.echo(f"{group}  (group)")
    for name, uri in sorted(body["names"].items()):
        typer.echo(f"{name}  {uri}")
    if body.get("truncated"):
        typer.echo("(list truncated)")


@app.command("list")
def list_(
    group: Annotated[
        str | None, typer.Argument(metavar="GROUP", help="Group to list [the root ':'].")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Names starting with this.")
    ] = None,
    regex: Annotated[
        str | None, typer.Option("--regex", help="Names an RE2 expression matches.")
    ] = None,
    ns: NsAddress = None,
    as_json: AsJson = False,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """List the names and groups in a group, or by prefix or regular expression."""
    if sum(x is not None for x in (group, prefix, regex)) > 1:
        raise _fail("give one of GROUP, --prefix or --regex", ExitCode.USAGE)
    _print_listing(
        _with_ns(
            ns,
            client_keys(ident, key, server_key, "ns"),
            lambda s: s.list(group, prefix=prefix, regex=regex),
        ),
        as_json,
    )


@app.command()
def listall(
    ns: NsAddress = None,
    as_json: AsJson = False,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """List every name and group."""
    keys = client_keys(ident, key, server_key, "ns")
    _print_listing(_with_ns(ns, keys, lambda s: s.listall()), as_json)


@app.command("resolve", help="Print the URI registered for NAME (Pyro's word for lookup).")
@app.command()
def lookup(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Print the URI registered for NAME."""
    typer.echo(_with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.lookup(name)))


@app.command()
def register(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    uri: Annotated[str, typer.Argument(metavar="URI", help="Where it is: tcp://HOST:PORT.")],
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite an existing name.")] = False,
    lease: Annotated[
        float | None, typer.Option("--lease", help="Seconds until it expires unless renewed.")
    ] = None,
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Register NAME for URI (permanent unless --lease)."""
    body = _with_ns(
        ns,
        client_keys(ident, key, server_key, "ns"),
        lambda s: s.register(name, uri, replace=replace, lease=lease),
    )
    typer.echo(
        f"registered {body['name']}" + (f" (token {body['token']})" if "token" in body else "")
    )


@app.command()
def renew(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    token: Annotated[
        str, typer.Argument(metavar="TOKEN", help="The token `ns register --lease` printed.")
    ],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Extend the lease of NAME by its lease time (only with its registration's token)."""
    body = _with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.renew(name, token))
    left = float(body["expires"]) - time.time()
    typer.echo(f"renewed {body.get('name', name)}: expires in {left:.0f} s")


@app.command()
def remove(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Remove NAME."""
    _with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.remove(name))


@app.command()
def creategroup(
    group: Annotated[str, typer.Argument(metavar="GROUP", help="A group, absolute (:Group).")],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Create GROUP (its parent group must exist)."""
    _with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.create_group(group))


@app.command()
def deletegroup(
    group: Annotated[str, typer.Argument(metavar="GROUP", help="A group, absolute (:Group).")],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Delete GROUP (it must be empty)."""
    _with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.delete_group(group))


@app.command()
def showmeta(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Print the metadata of NAME."""
    typer.echo(_with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.get_meta(name)))


@app.command()
def setmeta(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="A name, absolute (:Group.Name) or in :Default.")
    ],
    meta: Annotated[str, typer.Argument(metavar="META", help="A text to attach to the name.")],
    ns: NsAddress = None,
    ident: Ident = None,
    key: KeyFile = None,
    server_key: ServerKeyFile = None,
) -> None:
    """Set the metadata of NAME to META (a string)."""
    _with_ns(ns, client_keys(ident, key, server_key, "ns"), lambda s: s.set_meta(name, meta))


def main() -> None:
    """The `ns` command."""
    terminate_like_interrupt()
    command_logging("ns")
    app()
