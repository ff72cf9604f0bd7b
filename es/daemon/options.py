"""Command-line options shared by the `es` and `ns` commands (typer: never loaded by `clients`)."""

from __future__ import annotations

from typing import Annotated

import typer

from clients.security import Keys, keys_from

__all__ = ["Ident", "KeyFile", "KeysDir", "ServerKeyFile", "client_keys"]

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
