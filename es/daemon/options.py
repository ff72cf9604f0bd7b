"""Command-line options shared by the `es` and `ns` commands (typer: never loaded by `clients`)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Annotated, Any

import typer

from clients.security import Keys, keys_from

__all__ = [
    "Ident",
    "KeyFile",
    "KeysDir",
    "NsAddress",
    "ServerKeyFile",
    "client_keys",
    "options_of",
]

Ident = Annotated[
    str | None,
    typer.Option(
        "-i",
        "--ident",
        envvar="ES_IDENT",
        metavar="PASSPHRASE",
        help="Passphrase: CurveZMQ on every connection (prefer $ES_IDENT: argv is visible).",
    ),
]
NsAddress = Annotated[
    str | None,
    typer.Option(
        "--ns",
        envvar="NS_ADDRESS",
        metavar="HOST:PORT",
        help="Name server HOST:PORT [found by URI file, then broadcast].",
    ),
]
KeysDir = Annotated[
    str | None,
    typer.Option(
        "--keys",
        envvar="ES_KEYS",
        metavar="DIRECTORY",
        help="Key directory made by `es keygen`: server key pair and allowed clients.",
    ),
]
KeyFile = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar="ES_KEY",
        metavar="FILE",
        help="This client's secret key file (NAME.key_secret).",
    ),
]
ServerKeyFile = Annotated[
    str | None,
    typer.Option(
        "--server-key", envvar="ES_SERVER_KEY", metavar="FILE", help="The servers' public key file."
    ),
]


def client_keys(
    ident: str | None, key: str | None, server_key: str | None, program: str
) -> Keys | None:
    """A client's keys from its options; a clear error and exit code 2 when they do not fit."""
    try:
        return keys_from(ident, key, server_key)
    except ValueError as exc:
        typer.echo(f"{program}: {exc}", err=True)
        raise typer.Exit(2) from None


def options_of(
    command: Callable[..., None], leave_out: Iterable[str] = ("log_level",)
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give the decorated function (taking `**options`) the options of `command` but those left
    out, so that a daemon's `config` lists the options of its `serve` without repeating them
    (typer reads the signature and the annotations)."""
    dropped = set(leave_out)

    def give(func: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        kept = [p for p in signature.parameters.values() if p.name not in dropped]
        setattr(func, "__signature__", signature.replace(parameters=kept))  # noqa: B010
        annotations: dict[str, Any] = command.__annotations__
        func.__annotations__ = {k: v for k, v in annotations.items() if k not in dropped}
        return func

    return give
