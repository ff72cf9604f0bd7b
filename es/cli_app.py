"""What every `es` command shares: the typer app, the options naming the event server, and
how a command asks it something and fails (one line on stderr, `es: ...`).

Kept apart so that the server's commands (es.cli) and the client commands (es.cli_client) each
stay small; both add their commands to `app`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from clients.errors import EsError
from es.daemon.lifecycle import ExitCode
from es.daemon.options import client_keys

if TYPE_CHECKING:
    from clients.security import Keys

__all__ = ["EsUri", "Timeout", "app", "ask", "fail"]

T = TypeVar("T")

app = typer.Typer(
    help="The event server (es serve) and commands to publish, subscribe and inspect.",
    no_args_is_help=True,
    add_completion=True,  # es --install-completion: bash, zsh, fish, PowerShell
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no [brackets] eaten as markup
)

EsUri = Annotated[
    str | None,
    typer.Option(
        "--es",
        envvar="ES_URI",
        metavar="URI",
        help="The event server: tcp://HOST:PORT or PYRONAME://NAME [:Pyro.EventService, found "
        "through the name server].",
    ),
]
Timeout = Annotated[
    float, typer.Option("--timeout", metavar="SECONDS", help="Seconds to wait for the server.")
]


def ask(
    ident: str | None, key: str | None, server_key: str | None, call: Callable[[Keys | None], T]
) -> T:
    """One request to the event server with the keys the options name; exit 1 on its error, 2 on
    an address that is not one (`--es foo`)."""
    keys = client_keys(ident, key, server_key, "es")
    try:
        return call(keys)
    except EsError as exc:
        raise fail(str(exc)) from None
    except ValueError as exc:  # the address given: the only thing here a user can get wrong
        raise fail(str(exc), ExitCode.USAGE) from None


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say what went wrong in one line, and the exit to raise."""
    typer.echo(f"es: {message}", err=True)
    return typer.Exit(code)
