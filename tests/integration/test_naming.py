"""The name server with real processes: names, leases, storage, discovery, and the event server
finding its way into it and clients finding the event server through it."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from clients import Publisher, Subscriber
from clients.errors import BadName, NameTaken, NotFound
from clients.naming import NameServer, NameServerNotFound, locate_ns, resolve_es_uri
from clients.wire import Err, decode_reply
from tests.integration.conftest import (
    Daemon,
    es_command,
    ns_command,
    read_line,
    spawn_es,
    wait_until,
)
from tests.integration.helpers import run

WAIT = 30.0
VECTORS = json.loads((Path(__file__).parents[2] / "clients/wire/vectors.json").read_text())

Start = Callable[..., Daemon]


@pytest.fixture
def ns(start_ns: Start) -> Daemon:
    return start_ns()


@pytest.fixture
def proxy(ns: Daemon) -> Iterator[NameServer]:
    with NameServer(ns.endpoint) as server:
        yield server


# --- the name server ---------------------------------------------------------------------------


def test_ready_line_and_uri_file(ns: Daemon, private_naming: Path) -> None:
    assert ns.ready["uri_file"] == str(private_naming)
    assert private_naming.read_text().strip() == ns.endpoint
    assert ns.ready["discovery"] == f"udp://127.255.255.255:{ns.port}"
    assert ns.stop() == 0
    assert not private_naming.exists()  # removed on the way out


def test_register_lookup_list_remove(proxy: NameServer, ns: Daemon) -> None:
    assert proxy.lookup(":Pyro.NameServer") == ns.endpoint
    proxy.create_group(":Stock")
    proxy.register(":Stock.Quotes", "tcp://127.0.0.1:1234", meta="every second")
    proxy.register("relative", "tcp://127.0.0.1:1235")  # lands in :Default
    assert proxy.resolve(":Default.relative") == "tcp://127.0.0.1:1235"
    assert proxy.list(":Stock")["names"] == {":Stock.Quotes": "tcp://127.0.0.1:1234"}
    assert ":Stock" in proxy.list()["groups"]
    assert set(proxy.list(prefix=":Stock.")["names"]) == {":Stock.Quotes"}
    assert set(proxy.list(regex=r":Stock\.Q")["names"]) == {":Stock.Quotes"}
    assert proxy.getMeta(":Stock.Quotes") == "every second"
    with pytest.raises(NameTaken):
        proxy.register(":Stock.Quotes", "tcp://127.0.0.1:9")
    proxy.remove(":Stock.Quotes")
    with pytest.raises(NotFound):
        proxy.lookup(":Stock.Quotes")
    proxy.delete_group(":Stock")
    with pytest.raises(BadName):
        proxy.register(":bad..name", "tcp://127.0.0.1:1")


def test_bad_requests_get_coded_errors(ns: Daemon) -> None:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
    sock.connect(ns.endpoint)
    try:
        vectors = [v for v in VECTORS["invalid"] + VECTORS["refused"] if v["kind"] == "ns-request"]
        vectors += [v for v in VECTORS["invalid"] if v["kind"] == "request" and v["frames"]]
        assert len(vectors) > 20
        for vector in vectors:
            sock.send_multipart([bytes.fromhex(f) for f in vector["frames"]])
            reply = decode_reply(sock.recv_multipart())
            assert isinstance(reply, Err), vector["name"]
            if vector["kind"] == "ns-request":
                assert (reply.code, reply.rid) == (vector["error"], vector["rid"]), vector["name"]
    finally:
        sock.close()
    with NameServer(ns.endpoint) as proxy:
        assert proxy.ping()["server"] == "ns"


def test_sqlite_registrations_survive_a_restart(start_ns: Start, tmp_path: Path) -> None:
    storage = f"sqlite:{tmp_path / 'names.db'}"
    first = start_ns("--storage", storage)
    with NameServer(first.endpoint) as proxy:
        proxy.create_group(":Stock")
        proxy.register(":Stock.Quotes", "tcp://127.0.0.1:1234")
    assert first.stop() == 0
    second = start_ns("--storage", storage)
    with NameServer(second.endpoint) as proxy:
        assert proxy.lookup(":Stock.Quotes") == "tcp://127.0.0.1:1234"
        assert proxy.lookup(":Pyro.NameServer") == second.endpoint  # updated to the new port


# --- finding the name server --------------------------------------------------------------------


def test_located_by_uri_file(ns: Daemon) -> None:
    assert locate_ns() == ns.endpoint


def test_located_by_loopback_broadcast(
    ns: Daemon, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NS_URI_FILE", str(tmp_path / "stale.uri"))
    (tmp_path / "stale.uri").write_text("tcp://127.0.0.1:9\n")  # nobody answers there
    monkeypatch.setenv("NS_PORT", str(ns.port))
    monkeypatch.setenv("NS_BROADCAST", "127.255.255.255")
    assert locate_ns() == ns.endpoint


def test_explicit_address_wins(ns: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NS_URI_FILE", "")
    monkeypatch.setenv("NS_ADDRESS", f"127.0.0.1:{ns.port}")
    assert locate_ns() == ns.endpoint


def test_nothing_found_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, ns: Daemon) -> None:
    monkeypatch.setenv("NS_URI_FILE", "")
    monkeypatch.setenv("NS_PORT", "9")  # the discard port: nothing answers
    with pytest.raises(NameServerNotFound, match="ns serve"):
        locate_ns(timeout=0.2, retries=1)


# --- the event server in the name server ----------------------------------------------------------


def es_with(ns: Daemon, *args: str) -> Daemon:
    return spawn_es("--ns", ns.endpoint, *args, naming=True)


def lookup(ns: Daemon, name: str = ":Pyro.EventService") -> str | None:
    with NameServer(ns.endpoint) as proxy:
        try:
            return proxy.lookup(name)
        except NotFound:
            return None


def test_es_registers_and_removes_its_name(ns: Daemon) -> None:
    es = es_with(ns)
    try:
        assert lookup(ns) == es.endpoint
        with NameServer(ns.endpoint) as proxy:
            assert "expires" in proxy.entry(":Pyro.EventService")  # leased, not permanent
    finally:
        assert es.stop() == 0
    assert lookup(ns) is None


def test_the_lease_of_a_killed_es_expires(ns: Daemon) -> None:
    es = es_with(ns, "--ns-lease", "2")
    assert lookup(ns) == es.endpoint
    es.kill()
    wait_until(lambda: lookup(ns) is None, WAIT, "the name to expire")
    es.log_path.unlink(missing_ok=True)


def test_a_live_holder_keeps_the_name_and_a_stale_one_is_replaced(ns: Daemon) -> None:
    first = es_with(ns, "--ns-lease", "60")
    try:
        second = run(es_command("serve", "-p", "0", "--ns", ns.endpoint))
        assert second.returncode == 4
        assert "held by a live event server" in second.stderr
        first.kill()  # dies holding a 60 s lease
        third = es_with(ns)
        try:
            assert lookup(ns) == third.endpoint
            assert "replacing the stale registration" in third.log()
        finally:
            third.stop()
    finally:
        if first.proc.poll() is None:
            first.stop()


def test_es_without_a_name_server_exits_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    result = run(
        es_command("serve", "-p", "0"),
        NS_URI_FILE="",
        NS_PORT="9",
        NS_BROADCAST="127.0.0.1",
    )
    assert result.returncode == 4
    assert "no name server found" in result.stderr and "-N" not in result.stdout


def test_es_registers_again_after_a_name_server_restart(start_ns: Start) -> None:
    first = start_ns()
    es = es_with(first, "--ns-lease", "1.5")
    try:
        assert lookup(first) == es.endpoint
        assert first.stop() == 0
        again = start_ns("-p", str(first.port))  # memory storage: it remembers nothing
        registered = lambda: lookup(again) == es.endpoint  # noqa: E731
        wait_until(registered, WAIT, "the event server to register again")
    finally:
        es.stop()


# --- clients finding the event server by name ----------------------------------------------------


def test_clients_find_the_event_server_by_name(ns: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    es = es_with(ns)
    try:
        monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
        subject = f"named.{uuid.uuid4().hex[:8]}"
        with Subscriber() as sub, Publisher() as pub:  # no address at all
            assert sub.es_uri == pub.es_uri == es.endpoint
            sub.subscribe(subject)
            pub.publish(subject, "found")
            event = sub.next(WAIT)
            assert event is not None and event.msg == "found"
        monkeypatch.delenv("NS_ADDRESS")
        monkeypatch.setenv("NS_URI_FILE", "")
        host_port = ns.endpoint.removeprefix("tcp://")
        assert resolve_es_uri(f"PYRONAME://{host_port}/:Pyro.EventService") == es.endpoint
        with pytest.raises(NotFound):
            resolve_es_uri(f"PYRONAME://{host_port}/:Pyro.Nothing")
    finally:
        es.stop()


def test_es_uri_can_name_the_event_server(ns: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    es = es_with(ns)
    try:
        monkeypatch.setenv("ES_URI", "PYRONAME://:Pyro.EventService")  # the name server by URI file
        with Publisher() as pub:
            assert pub.es_uri == es.endpoint
    finally:
        es.stop()


# --- the ns command line -------------------------------------------------------------------------


def test_ns_commands(ns: Daemon) -> None:
    def ns_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run(ns_command(*args, "--ns", ns.endpoint))

    assert ns_cli("ping").stdout.startswith("ns ")
    assert ns_cli("creategroup", ":Shop").returncode == 0
    assert ns_cli("register", ":Shop.Orders", "tcp://127.0.0.1:5555").returncode == 0
    leased = ns_cli("register", ":Shop.Cart", "tcp://127.0.0.1:5556", "--lease", "60")
    assert "token" in leased.stdout
    token = leased.stdout.split("token ")[1].rstrip(")\n")
    renewed = ns_cli("renew", ":Shop.Cart", token)
    assert renewed.returncode == 0 and renewed.stdout.startswith("renewed :Shop.Cart: expires in")
    stolen = ns_cli("renew", ":Shop.Cart", "0" * 32)
    assert stolen.returncode == 1 and stolen.stderr.startswith("ns: NOT_OWNER")
    assert ns_cli("setmeta", ":Shop.Orders", "orders, new and cancelled").returncode == 0
    assert ns_cli("showmeta", ":Shop.Orders").stdout.strip() == "orders, new and cancelled"
    assert ns_cli("lookup", ":Shop.Orders").stdout.strip() == "tcp://127.0.0.1:5555"
    assert ":Shop.Orders  tcp://127.0.0.1:5555" in ns_cli("list", ":Shop").stdout
    assert ":Shop  (group)" in ns_cli("listall").stdout
    listed = json.loads(ns_cli("list", ":Shop", "--json").stdout)
    assert listed["names"][":Shop.Orders"] == "tcp://127.0.0.1:5555"
    assert json.loads(ns_cli("ping", "--json").stdout)["server"] == "ns"
    assert ":Shop" in json.loads(ns_cli("listall", "--json").stdout)["groups"]
    failed = ns_cli("deletegroup", ":Shop")
    assert failed.returncode == 1 and failed.stderr.strip().startswith("ns: NOT_EMPTY")
    assert ns_cli("remove", ":Shop.Orders").returncode == 0
    assert ns_cli("remove", ":Shop.Cart").returncode == 0
    assert ns_cli("deletegroup", ":Shop").returncode == 0
    missing = ns_cli("lookup", ":Shop.Orders")
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1


def test_ns_config_and_bad_usage() -> None:
    shown = run(ns_command("config", "--storage", "sqlite:/tmp/x.db", "-p", "9999"))
    assert json.loads(shown.stdout)["storage"] == "sqlite:/tmp/x.db"
    bad = run(ns_command("config", "--storage", "redis"))
    assert bad.returncode == 2 and "storage" in bad.stderr
    secured = json.loads(run(ns_command("config", "-i", "secret")).stdout)
    assert secured["ident"] == "(set)"  # never the passphrase itself
    both = run(ns_command("config", "-i", "secret", "--keys", "/nowhere"))
    assert both.returncode == 2 and "not both" in both.stderr


def test_ns_on_a_taken_port_exits_3(ns: Daemon) -> None:
    assert run(ns_command("serve", "-n", "127.0.0.1", "-p", str(ns.port))).returncode == 3


# --- make run's supervisor -----------------------------------------------------------------------


@pytest.mark.parametrize("ident", [None, "stack passphrase"])
def test_es_up_runs_both_and_ctrl_c_stops_both(private_naming: Path, ident: str | None) -> None:
    secured = ("-i", ident) if ident else ()
    proc = subprocess.Popen(
        es_command("up", "-p", "0", "--ns-port", "0", *secured), stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = read_line(proc.stdout, time.monotonic() + WAIT)
        assert line is not None
        ready: dict[str, Any] = json.loads(line)
        assert ready["ready"] == "stack"
        # found through the URI file the stack's name server wrote (with security: both daemons
        # got the passphrase, or the event server could not have registered)
        with Publisher(ident=ident) as pub:
            assert pub.es_uri == ready["es"]
            assert pub.publish("anything", 1, confirm=True) == 0
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT) == 0
        assert not private_naming.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
        if proc.stdout is not None:
            proc.stdout.close()


def test_no_reply_from_a_name_server_is_called_that() -> None:
    # Before, it said "no reply from the event server" about the name server.
    with socket_nobody_answers() as address:
        done = run(ns_command("ping", "--ns", address))
    assert done.returncode == 1
    assert f"no reply from the name server at {address}" in done.stderr


@contextlib.contextmanager
def socket_nobody_answers() -> Iterator[str]:
    """A loopback port that accepts connections and never answers (a ROUTER that never reads)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    try:
        yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    finally:
        sock.close()


def test_ns_resolve_is_lookup_and_ns_config_shows_the_uri_file(
    ns: Daemon, private_naming: Path
) -> None:
    looked = run(ns_command("lookup", ":Pyro.NameServer", "--ns", ns.endpoint))
    resolved = run(ns_command("resolve", ":Pyro.NameServer", "--ns", ns.endpoint))
    assert resolved.returncode == 0 and resolved.stdout == looked.stdout
    assert ns.endpoint in resolved.stdout
    shown = json.loads(run(ns_command("config")).stdout)
    assert shown["uri_file"] == str(private_naming)  # before: null unless --uri-file was given
