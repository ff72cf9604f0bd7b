"""The `es` command line, run as a user would: subprocesses, real daemons."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable

import msgpack
import pytest
import zmq

from clients import Publisher, Subscriber, admin
from clients.wire import Ok, Subscribe, decode_reply, encode
from tests.integration.conftest import (
    Daemon,
    es_command,
    ns_command,
    read_line,
    spawn_es,
    wait_until,
)
from tests.integration.helpers import WAIT, run, subscriber_process

RUN_TIMEOUT = 60.0


def es_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        es_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_the_commands() -> None:
    result = es_cli("--help")
    assert result.returncode == 0
    for command in ("serve", "pub", "sub", "stats", "config", "ping", "keygen", "subjects"):
        assert command in result.stdout


def test_config_prints_the_effective_configuration_with_pyro_variables() -> None:
    result = es_cli(
        "config", "-p", "7000", env={"PYRO_ES_QUEUESIZE": "42", "PYRO_ES_BLOCKQUEUE": "0"}
    )
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert (config["port"], config["queue_size"], config["policy"]) == (7000, 42, "drop")


def test_config_refuses_bad_values_with_one_line() -> None:
    result = es_cli("config", "--policy", "sometimes")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("es: bad configuration")


def test_pub_and_sub(es: Daemon) -> None:
    subject = f"cli.{uuid.uuid4().hex[:8]}"
    sub = subprocess.Popen(
        es_command(
            "sub", subject, "--match", f"^{subject}\\.x", "--es", es.endpoint, "--count", "2"
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sub.stderr is not None
        line = read_line(sub.stderr, deadline=_deadline())
        assert line is not None and "subscribed" in line
        assert es_cli("pub", subject, "hello", "--es", es.endpoint).returncode == 0
        confirmed = es_cli(
            "pub", f"{subject}.x", '{"n": 1}', "--json", "--confirm", "--es", es.endpoint
        )
        assert confirmed.stdout.strip() == "delivered to 1 subscriber(s)", confirmed.stderr
        out, _ = sub.communicate(timeout=RUN_TIMEOUT)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait(RUN_TIMEOUT)
    assert sub.returncode == 0
    assert out.splitlines() == [f"[#1] {subject}: hello", f"[#2] {subject}.x: {{'n': 1}}"]


def test_sub_json_output_and_wait_limit(es: Daemon) -> None:
    subject = f"cli.{uuid.uuid4().hex[:8]}"
    with Publisher(es.endpoint) as pub:
        sub = subprocess.Popen(
            es_command(
                "sub", subject, "--es", es.endpoint, "--json", "--wait", "30", "--count", "1"
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert sub.stderr is not None
        assert read_line(sub.stderr, deadline=_deadline()) is not None
        pub.publish(subject, [1, "two"])
        out, _ = sub.communicate(timeout=RUN_TIMEOUT)
    event = json.loads(out)
    assert (event["subject"], event["msg"], event["seq"], event["lost"]) == (
        subject,
        [1, "two"],
        1,
        0,
    )


def test_stats_and_ping(es: Daemon) -> None:
    with Subscriber(es.endpoint) as sub:
        sub.subscribe("cli.stats.subject")
        table = es_cli("stats", "--es", es.endpoint)
        raw = es_cli("stats", "--es", es.endpoint, "--json")
    assert (
        table.returncode == 0
        and "cli.stats.subject" in table.stdout
        and sub.id in table.stdout
        and " events published in " in table.stdout  # events, and the requests that carried them
        and sub.sid not in table.stdout + raw.stdout  # the sid is its secret
    )
    assert any(s["id"] == sub.id for s in json.loads(raw.stdout)["subscribers"])
    ping = es_cli("ping", "--es", es.endpoint)
    assert ping.returncode == 0 and ping.stdout.startswith("es ")


def test_stats_shows_the_history_and_the_queue_groups(start_es: Callable[..., Daemon]) -> None:
    es = start_es("--history", r"cli\.=100")
    with Subscriber(es.endpoint, group="cli-workers") as member:
        member.subscribe("cli.jobs")
        with Publisher(es.endpoint) as pub:
            pub.publish("cli.jobs", 1, confirm=True)
        table = es_cli("stats", "--es", es.endpoint).stdout
    assert "history " in table and ": 1 events" in table
    assert "cli-workers" in table and "(member of cli-workers)" in table


def test_es_uri_environment_variable(es: Daemon) -> None:
    assert es_cli("ping", env={"ES_URI": es.endpoint}).returncode == 0


def test_client_commands_fail_with_one_line_when_no_server_answers() -> None:
    result = es_cli("ping", "--es", "tcp://127.0.0.1:9", "--timeout", "0.5")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "no reply" in result.stderr


def test_serve_on_a_taken_port_exits_with_code_3(es: Daemon) -> None:
    port = es.endpoint.rsplit(":", 1)[1]
    result = es_cli("serve", "-n", "127.0.0.1", "-p", port)
    assert result.returncode == 3 and "cannot bind" in result.stderr


def test_sigint_drains_and_exits_0(start_es: Callable[..., Daemon]) -> None:
    daemon = start_es()
    assert daemon.stop() == 0
    log = daemon.log()
    assert "draining" in log and "stopped" in log


def test_sigterm_also_stops_cleanly(start_es: Callable[..., Daemon]) -> None:
    daemon = start_es()
    daemon.proc.send_signal(signal.SIGTERM)
    assert daemon.proc.wait(RUN_TIMEOUT) == 0


def test_a_second_interrupt_stops_at_once_with_code_130() -> None:
    """Events queued for a subscriber nobody listens for keep the drain waiting (up to its
    timeout); a second Ctrl-C cuts it short."""
    daemon = spawn_es("--drain-timeout", "120")
    ghost: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    ghost.setsockopt(zmq.LINGER, 0)
    ghost.setsockopt(zmq.RCVTIMEO, 30_000)
    try:
        ghost.connect(daemon.endpoint)
        # port 9 (discard) has no listener here: the server can never deliver these events
        ghost.send_multipart(encode(Subscribe(1, "ghost", "tcp://127.0.0.1:9", ("ghost",))))
        assert isinstance(decode_reply(ghost.recv_multipart()), Ok)
        with Publisher(daemon.endpoint) as pub:
            for i in range(5):
                pub.publish("ghost", i)
        daemon.interrupt()
        wait_until(lambda: "draining" in daemon.log(), RUN_TIMEOUT, "the drain to start")
        assert daemon.proc.poll() is None  # still waiting for queued events to leave
        daemon.interrupt()
        assert daemon.proc.wait(RUN_TIMEOUT) == 130
    finally:
        ghost.close()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
        daemon.proc.wait(RUN_TIMEOUT)
        if daemon.proc.stdout is not None:
            daemon.proc.stdout.close()


def test_python_dash_m_es_works() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "es", "--help"], capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    assert result.returncode == 0


def _deadline() -> float:
    import time

    return time.monotonic() + RUN_TIMEOUT


def test_introspection_commands(es: Daemon) -> None:
    topic = f"cli.intro.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint) as exact, Subscriber(es.endpoint) as pattern:
        exact.subscribe(topic)
        pattern.subscribe_match(r"^CLI\.INTRO\.")
        with Publisher(es.endpoint) as pub:
            for _ in range(3):
                pub.publish(topic.upper(), "x")
        seen = es_cli("subjects", "--es", es.endpoint, "--match", r"^cli\.intro\.")
        counted = es_cli("numsub", topic, "cli.intro.other", "nobody.here", "--es", es.endpoint)
        one = es_cli("subscribers", "--es", es.endpoint, "--id", exact.id[:7], "--json")
        none = es_cli("subscribers", "--es", es.endpoint, "--id", "f" * 16)
    assert seen.returncode == 0 and seen.stdout.split()[0] == "3"
    assert topic.upper() in seen.stdout
    assert [line.split()[0] for line in counted.stdout.splitlines()] == ["2", "1", "0"]
    (entry,) = json.loads(one.stdout)["subscribers"]
    assert one.returncode == 0 and entry["id"] == exact.id and entry["subjects"] == [topic]
    assert none.returncode == 1 and "no subscriber has an id starting" in none.stderr
    assert {"behind", "stalled_for", "depth", "dropped"} <= set(entry)


def test_es_sub_leaves_on_sigterm_as_on_ctrl_c(es: Daemon) -> None:
    # Before, SIGTERM (from `timeout`, systemd, a container runtime) killed it without a word:
    # the server kept it until its liveness ran out, holding block-mode publishers back.
    topic = f"cli.term.{uuid.uuid4().hex[:8]}"
    with subscriber_process("--es", es.endpoint, topic) as proc:
        assert admin.numsub([topic], es.endpoint, timeout=WAIT) == [1]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(WAIT) == 0, proc.stderr.read() if proc.stderr else ""
        assert admin.numsub([topic], es.endpoint, timeout=WAIT) == [0]  # it unsubscribed


@pytest.mark.parametrize(
    "command",
    [
        ["ping"],
        ["stats"],
        ["subjects"],
        ["numsub", "x"],
        ["subscribers"],
        ["pub", "x", "y"],
        ["sub", "x"],
        ["bench", "--quick", "--only", "many"],
    ],
    ids=lambda c: c[0],
)
@pytest.mark.parametrize("address", ["foo", "tcp://127.0.0.1", "http://127.0.0.1:1"])
def test_every_command_says_in_one_line_that_an_address_is_not_one(
    command: list[str], address: str
) -> None:
    # Before, all but pub and sub ended in a traceback.
    done = run(es_command(*command, "--es", address))
    assert done.returncode in (1, 2), done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("es: ") and "tcp://HOST:PORT" in done.stderr


def test_es_ping_at_a_name_server_says_it_is_not_an_event_server(
    start_ns: Callable[..., Daemon],
) -> None:
    # Before, it printed "ns 0.1.0 answered" and exited 0.
    ns = start_ns()
    done = run(es_command("ping", "--es", ns.endpoint))
    assert done.returncode == 1
    assert done.stderr.strip() == "es: a name server answered, not an event server"


def test_es_sub_json_is_json_and_raw_is_the_payload(es: Daemon) -> None:
    # Before, --json printed bytes as Python's b'...' inside a string.
    topic = f"cli.forms.{uuid.uuid4().hex[:8]}"
    subs = [
        subprocess.Popen(
            es_command("sub", topic, "--es", es.endpoint, form, "--count", "2"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for form in ("--json", "--raw")
    ]
    for sub in subs:
        assert sub.stderr is not None
        ready = read_line(sub.stderr, deadline=_deadline())  # type: ignore[arg-type]
        assert ready is not None and b"subscribed" in ready  # type: ignore[operator]
    with Publisher(es.endpoint) as pub:
        pub.publish(topic, {"blob": b"\x00\xff", "n": 1}, confirm=True)
        pub.publish(topic, "plain", confirm=True)
    (json_out, _), (raw_out, _) = (sub.communicate(timeout=RUN_TIMEOUT) for sub in subs)
    lines = [json.loads(line) for line in json_out.splitlines()]
    assert [line["msg"] for line in lines] == [{"blob": {"$bytes": "00ff"}, "n": 1}, "plain"]
    assert raw_out.split(b"\n")[1] == msgpack.packb("plain")


def test_es_pub_retains_clears_reads_stdin_and_repeats(es: Daemon) -> None:
    topic = f"cli.pub.{uuid.uuid4().hex[:8]}"
    kept = es.stats()["server"]["retained"]
    retained = run(
        es_command("pub", topic, "latest", "--retain", "--ttl", "60", "--es", es.endpoint)
    )
    assert retained.returncode == 0, retained.stderr
    assert es.stats()["server"]["retained"] == kept + 1
    with Subscriber(es.endpoint) as sub:
        sub.subscribe(topic)
        first = sub.next(WAIT)
        assert first is not None and (first.msg, first.retained) == ("latest", True)
        piped = subprocess.run(
            es_command("pub", topic, "--es", es.endpoint),
            input="one\ntwo\nthree\n",
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
        )
        assert piped.returncode == 0, piped.stderr
        repeated = run(
            es_command("pub", topic, "again", "--count", "5", "--rate", "500", "--es", es.endpoint)
        )
        assert repeated.returncode == 0 and "published 5 in" in repeated.stderr
        got = [sub.next(WAIT) for _ in range(8)]
        assert [e.msg for e in got if e is not None] == ["one", "two", "three", *["again"] * 5]
    cleared = run(es_command("pub", topic, "--clear", "--es", es.endpoint))
    assert cleared.returncode == 0, cleared.stderr
    assert es.stats()["server"]["retained"] == kept


def test_query_commands_print_json_and_say_when_there_is_nothing(
    start_es: Callable[..., Daemon],
) -> None:
    es = start_es()  # its own: nothing published, nobody subscribed
    counted = run(es_command("numsub", "a.b", "c.d", "--json", "--es", es.endpoint))
    assert json.loads(counted.stdout) == {"a.b": 0, "c.d": 0}
    pinged = run(es_command("ping", "--json", "--es", es.endpoint))
    answer = json.loads(pinged.stdout)
    assert answer["server"] == "es" and answer["round_trip_ms"] > 0
    nothing = run(es_command("subjects", "--es", es.endpoint))
    assert nothing.returncode == 0 and "no subject published on yet" in nothing.stderr
    nobody = run(es_command("subscribers", "--es", es.endpoint))
    assert nobody.returncode == 0 and "no subscribers" in nobody.stderr


def test_library_warnings_in_a_command_carry_its_name() -> None:
    # Before, a client library's warning reached a command's stderr bare (Python's last resort).
    code = (
        "import logging; from es.daemon.lifecycle import command_logging; command_logging('es'); "
        "logging.getLogger('clients.subscriber').warning('the event server lost our subscriptions')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stderr == "es: the event server lost our subscriptions\n"


ES_COMMANDS = ["serve", "config", "pub", "sub", "stats", "subjects", "numsub", "subscribers"]
ES_COMMANDS += ["ping", "keygen", "up", "bench"]
NS_COMMANDS = ["serve", "config", "ping", "list", "listall", "lookup", "resolve", "register"]
NS_COMMANDS += ["renew", "remove", "creategroup", "deletegroup", "showmeta", "setmeta"]


@pytest.mark.parametrize(
    "command",
    [es_command(c, "--help") for c in ES_COMMANDS] + [ns_command(c, "--help") for c in NS_COMMANDS],
    ids=lambda c: " ".join(c[2:4]),
)
def test_help_reads_well(command: list[str]) -> None:
    # Before: <bool> after every flag, <str>, <int> and <float> after options, {SUBJECT} for
    # arguments, and text in brackets eaten as markup, leaving a stray " ." behind.
    done = run(command)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert not re.search(r"<(bool|str|int|float)>", text), text
    assert not re.search(r" \.(\s|$)", text), text
    usage = text.splitlines()[0]
    assert "{" not in usage, usage
    assert re.sub(r"\[[A-Z:.]+\]", "", usage) == re.sub(r"\[[^\]]*\]", "", usage)
    options = [line.split()[0] for line in text.splitlines() if line.strip().startswith("--")]
    assert options, text
