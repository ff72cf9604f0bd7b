"""Every example runs, against a real event server, and prints what it promises."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import Daemon, read_line

EXAMPLES = Path(__file__).parents[2] / "examples"


def example(
    name: str, es: Daemon, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """An example run to its end against `es`, with `stdin` as its input."""
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ES_URI": es.endpoint},
    )


def run_example(name: str, es: Daemon, *args: str) -> str:
    result = example(name, es, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quickstart(es: Daemon) -> None:
    lines = run_example("quickstart.py", es).splitlines()
    assert [line.split()[0] for line in lines[:3]] == [
        "stockquotes",
        "stockquote.sun",
        "stockquote.sap",
    ]
    assert lines[-1] == "received 3 events"


def test_raw_client_uses_only_pyzmq_and_msgpack(es: Daemon) -> None:
    source = (EXAMPLES / "raw_client.py").read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "os", "secrets", "sys", "typing", "msgpack", "zmq"}
    lines = run_example("raw_client.py", es).splitlines()
    assert lines[0].startswith("subscribed")
    assert [line.split()[0] for line in lines[1:4]] == ["RAW.QUOTES", "raw.news.sun", "raw.quotes"]
    assert lines[-1] == "received 3 events; subscriptions left: 0"


def test_stockquotes_exact_subject_and_pattern(es: Daemon) -> None:
    lines = run_example("stockquotes.py", es, "--rounds", "4").splitlines()
    assert lines[-3:] == [
        "published 16 quotes",
        "exact subscriber received 4: SUN 4",  # stockquote.sun, in lower case: any case matches
        "pattern subscriber received 8: SAP 4, SUN 4",  # ^STOCKQUOTE\.S.*$: not IBM or MSFT
    ]
    assert all(line.split()[0] in ("exact", "pattern") for line in lines[:-3])


def test_countingcars_switch_direction_from_the_handler_and_abort(es: Daemon) -> None:
    lines = run_example("countingcars.py", es, "--counters", "3", "--cars", "2").splitlines()
    assert lines[-3:] == [f"counter {n} finished: True" for n in (1, 2, 3)]
    for n in (1, 2, 3):
        counted = [line for line in lines if line.startswith(f"counter {n}: 2 cars heading")]
        assert sorted(line.split()[-1] for line in counted) == ["east", "north", "south", "west"]


def test_messagebus_automatic_and_manual_subscribers(es: Daemon) -> None:
    lines = run_example("messagebus.py", es, "--messages", "12").splitlines()
    assert lines[-2:] == [
        "automatic subscriber received 12 in order: True",
        "manual subscriber received 12 in order: True",
    ]


def test_chatbox_goes_on_after_the_announcer_stopped(es: Daemon) -> None:
    lines = run_example("chatbox.py", es).splitlines()
    assert lines[0] == "announced lobby"
    assert lines[1] == "the announcer has stopped; channels found: lobby"
    heard = sorted(line for line in lines if line.startswith("[lobby]"))
    assert heard == [
        "[lobby] alice hears bob: hi alice",
        "[lobby] alice hears bob: the event server carries it all",
        "[lobby] bob hears alice: hi bob",
        "[lobby] bob hears alice: the announcer is gone, and we still talk",
    ]
    assert lines[-1] == "4 lines heard"


def test_stresstest_every_subscriber_gets_every_event_in_order(es: Daemon) -> None:
    """As the README runs it: ten seconds of publishers as fast as they go. Before publishers
    were held back by what subscribers consumed, runs this long failed three times in four."""
    lines = run_example("stresstest.py", es, "--seconds", "10").splitlines()
    assert lines[-1] == "every subscriber received every event, in order: True"
    published = int(lines[0].split()[3])
    assert published > 0 and lines[1].startswith(f"4 subscribers received {4 * published} ")


def test_allinone_starts_its_own_servers_and_uses_its_own_loop(es: Daemon) -> None:
    lines = run_example("allinone.py", es).splitlines()  # the fixture's server is not used
    assert lines[0].startswith("name server at tcp://127.0.0.1:")
    assert lines[1:6] == [f"received allinone.news: news item {n}" for n in range(5)]
    assert lines[-1] == "5 events through servers running in this program"


def test_service_availability_from_arrival_to_departure(es: Daemon) -> None:
    lines = run_example("service_availability.py", es, "--reports", "2", "--interval", "0.2")
    assert lines.splitlines() == [
        "available: boiler",
        "report from boiler: {'report': 1, 'temperature': 61}",
        "report from boiler: {'report': 2, 'temperature': 62}",
        "gone: boiler (unsubscribed)",
        "2 reports while it was available",
    ]


def test_chatbox_joins_the_channel_asked_for(es: Daemon) -> None:
    # Before, `chat NAME` joined the first channel found, whichever it was.
    assert run_example("chatbox.py", es, "announce", "garden").strip() == "announced garden"
    joined = example("chatbox.py", es, "chat", "carol", "garden", stdin="hello\n")
    assert joined.returncode == 0, joined.stderr
    assert joined.stdout.startswith("in garden as carol")
    nowhere = example("chatbox.py", es, "chat", "carol", "attic", stdin="")
    assert nowhere.returncode == 1 and "no channel 'attic' announced" in nowhere.stderr


def test_the_long_running_parts_say_what_they_do(es: Daemon) -> None:
    # Before, `stockquotes.py feed` and `service_availability.py service` printed nothing.
    service = run_example("service_availability.py", es, "service", "--reports", "2")
    assert service.splitlines() == [
        "service 'boiler' available (its subscription announced it); reporting on "
        "boiler.report every 0.5 s",
        "report 1 sent",
        "report 2 sent",
        "service 'boiler' leaving",
    ]
    feed = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "stockquotes.py"), "feed"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ES_URI": es.endpoint},
    )
    try:
        assert feed.stdout is not None
        first = read_line(feed.stdout, time.monotonic() + 60)
        assert first is not None and first.startswith("feeding 4 symbols on STOCKQUOTE.<SYMBOL>")
        round_line = read_line(feed.stdout, time.monotonic() + 60)
        assert round_line is not None and round_line.startswith("published 4: ")
    finally:
        feed.send_signal(signal.SIGINT)  # as Ctrl-C: the feed runs until stopped
        feed.wait(60)
        for stream in (feed.stdout, feed.stderr):
            if stream is not None:
                stream.close()
