"""Key handling without sockets: derivation, choosing, files, and what is never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import zmq

from clients.security import Keys, keys_from
from es.daemon.security import generate, handshake_failure, warn_if_exposed


def test_a_daemon_beyond_loopback_without_security_warns(caplog: pytest.LogCaptureFixture) -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        warn_if_exposed(host, None, "event server")
    warn_if_exposed("0.0.0.0", Keys.from_passphrase("x"), "event server")
    assert "without security" not in caplog.text
    warn_if_exposed("0.0.0.0", None, "event server")
    assert "event server listens on 0.0.0.0 without security" in caplog.text
    assert "forge or replay events" in caplog.text
    caplog.clear()
    warn_if_exposed("0.0.0.0", None, "name server")
    assert "register, replace or remove names" in caplog.text and "event" not in caplog.text


def test_keys_never_show_the_secret() -> None:
    keys = Keys.from_passphrase("a passphrase")
    assert keys.secret.decode() not in repr(keys) and keys.public.decode() in repr(keys)


def test_key_files_from_generate_load_as_client_and_server(tmp_path: Path) -> None:
    written = generate(tmp_path / "keys", ["alice"])
    assert {p.name for p in written} == {
        "server.key",
        "server.key_secret",
        "alice.key",
        "alice.key_secret",
    }
    server = Keys.for_server(tmp_path / "keys")
    alice = keys_from(
        None, tmp_path / "keys/clients/alice.key_secret", tmp_path / "keys/server.key"
    )
    assert alice is not None and alice.server == server.public
    assert server.allowed == {server.public, alice.public}  # its own key, and the allow-list
    assert alice.allowed == {server.public}  # alice's inbox takes only the server
    with pytest.raises(FileExistsError):
        generate(tmp_path / "keys", [])


def test_bad_combinations_are_refused(tmp_path: Path) -> None:
    assert keys_from() is None
    with pytest.raises(ValueError, match="not both"):
        keys_from("x", tmp_path / "a", tmp_path / "b")
    with pytest.raises(ValueError, match="server's key"):
        keys_from(None, tmp_path / "a")
    with pytest.raises(ValueError, match="cannot read"):
        keys_from(None, tmp_path / "missing", tmp_path / "missing")
    with pytest.raises(ValueError, match="empty"):
        Keys.from_passphrase("")


def test_failed_handshakes_are_named_for_what_they_most_likely_were() -> None:
    protocol = int(zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    crypto = int(zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
    assert handshake_failure(protocol, crypto).startswith("wrong key")
    mismatch = int(zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
    assert handshake_failure(protocol, mismatch) == "security on one side only"
    garbage = int(zmq.PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND)
    assert handshake_failure(protocol, garbage).startswith("not a ZeroMQ handshake")
    dropped = handshake_failure(int(zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL), 110)
    assert dropped.startswith("broken off") and "key" not in dropped


def test_generate_adds_clients_to_a_directory_that_has_its_server_key(tmp_path: Path) -> None:
    # Before, a second `es keygen DIR NAME` refused: the server key existed already.
    generate(tmp_path / "keys", ["alice"])
    server_before = (tmp_path / "keys/server.key_secret").read_bytes()
    added = generate(tmp_path / "keys", ["carol"])
    assert {p.name for p in added} == {"carol.key", "carol.key_secret"}
    assert (tmp_path / "keys/server.key_secret").read_bytes() == server_before
    assert len(Keys.for_server(tmp_path / "keys").allowed) == 3  # server, alice and carol
    with pytest.raises(FileExistsError, match=r"alice\.key exists"):
        generate(tmp_path / "keys", ["alice"])  # never overwritten
    with pytest.raises(FileExistsError, match="name clients to add"):
        generate(tmp_path / "keys", [])
