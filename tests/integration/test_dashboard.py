"""`es dashboard` against a real name server and event server, all on loopback ports chosen by
the system, read over real HTTP (server-sent events read line by line, with timeouts: a client
that buffers a whole response would hang on them).

- /healthz, /readyz and /metrics at the defaults: base units, `_total` counters, subscribers by
  policy, no per-subscriber or per-subject labels unless asked (--labels), `es_up 0` and 503 from
  /readyz when the event server does not answer.
- The health page's API: both servers reachable, `:Pyro.EventService` registered and pointing
  at the event server the dashboard talks to.
- A subscriber appears in the live statistics stream; a test event published from the page
  reaches a live tail (and says how many subscribers it reached); a tail that cannot keep up
  shows a gap row, never a silent loss; the activity stream shows subscribers joining.
- Names: register, set meta, remove, groups; the reserved `:Pyro` names are protected; a POST
  from another site (Origin) or to another host name (Host) is refused.
- --read-only refuses every change (and the page is told); --no-ui serves only the probes.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from clients import Publisher, Subscriber
from tests.integration.conftest import Daemon, es_command, spawn, spawn_es, spawn_ns, wait_until

WAIT = 60.0


def spawn_dashboard(*args: str) -> Daemon:
    return spawn(es_command("dashboard", "-p", "0", *args), "dashboard")


class Stack:
    def __init__(self, ns: Daemon, es: Daemon, board: Daemon) -> None:
        self.ns, self.es, self.board = ns, es, board


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    ns = spawn_ns()
    es = spawn_es("--ns", ns.endpoint, naming=True)
    board = spawn_dashboard("--ns", _hostport(ns))
    try:
        yield Stack(ns, es, board)
    finally:
        for daemon in (board, es, ns):
            assert daemon.stop() == 0, daemon.log()
            daemon.log_path.unlink(missing_ok=True)


def _hostport(daemon: Daemon) -> str:
    return urlsplit(daemon.endpoint).netloc


def request(
    board: Daemon, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """(status, JSON body or None, raw text) of one request."""
    where = urlsplit(board.endpoint)
    conn = http.client.HTTPConnection(where.hostname, where.port, timeout=WAIT)
    try:
        data = None if body is None else json.dumps(body)
        sent = {"content-type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=sent)
        reply = conn.getresponse()
        text = reply.read().decode()
    finally:
        conn.close()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    return reply.status, parsed, text


class Stream:
    """Server-sent events read line by line, each read bounded by a timeout."""

    def __init__(self, board: Daemon, path: str) -> None:
        where = urlsplit(board.endpoint)
        self.conn = http.client.HTTPConnection(where.hostname, where.port, timeout=WAIT)
        self.conn.request("GET", path, headers={"accept": "text/event-stream"})
        self.reply = self.conn.getresponse()
        self.status = self.reply.status

    def next(self, kind: str) -> dict[str, Any]:
        """The data of the next event of `kind` (pings and others skipped)."""
        event, data = None, []
        while True:
            line = self.reply.fp.readline().decode()
            if not line:
                raise AssertionError("the stream ended")
            line = line.rstrip("\r\n")
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                data.append(line.split(":", 1)[1].strip())
            elif line == "":
                if event == kind and data:
                    parsed: dict[str, Any] = json.loads("\n".join(data))
                    return parsed
                event, data = None, []

    def until(self, kind: str, wanted: Any, deadline: float = WAIT) -> dict[str, Any]:
        until = time.monotonic() + deadline
        while time.monotonic() < until:
            data = self.next(kind)
            if wanted(data):
                return data
        raise AssertionError(f"no {kind} event as wanted in {deadline:.0f} s")

    def close(self) -> None:
        self.conn.close()


def subject() -> str:
    return f"board.{uuid.uuid4().hex[:8]}"


def metrics(board: Daemon) -> dict[str, float]:
    _, _, text = request(board, "GET", "/metrics")
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_probes_and_metrics_at_the_defaults(stack: Stack) -> None:
    assert request(stack.board, "GET", "/healthz")[:2] == (200, {"ok": True})
    wait_until(lambda: request(stack.board, "GET", "/readyz")[0] == 200, WAIT, "ready")
    with Publisher(stack.es.endpoint) as pub:
        pub.publish(subject(), "counted", confirm=True)
    wait_until(lambda: metrics(stack.board).get("es_events_published_total", 0) >= 1, WAIT, "n")
    seen = metrics(stack.board)
    assert seen["es_up"] == 1 and seen["es_uptime_seconds"] > 0
    assert 'es_subscribers{policy="drop"}' in seen  # the dashboard's own activity subscriber
    assert not any(name.startswith(("es_subscriber_", "es_subject_")) for name in seen)


def test_the_health_page_sees_both_servers_and_the_name(stack: Stack) -> None:
    status, health, _ = request(stack.board, "GET", "/api/health")
    assert status == 200
    assert health["es"]["up"] and health["es"]["endpoint"] == stack.es.endpoint
    assert health["ns"]["up"] and health["es"]["rtt"] > 0
    assert health["name"]["registered"] and health["name"]["here"]
    assert health["name"]["lease_left"] > 0 and health["security"] == "none"


def test_a_subscriber_appears_in_the_live_stream_and_activity(stack: Stack) -> None:
    live, activity = Stream(stack.board, "/api/live"), Stream(stack.board, "/api/activity")
    try:
        with Subscriber(stack.es.endpoint) as sub:
            sub.subscribe(subject())
            listed = live.until("live", lambda d: any(s["id"] == sub.id for s in d["subscribers"]))
            assert listed["up"] and listed["server"]["subscribers"] >= 2
            joined = activity.until(
                "row", lambda r: r.get("subject") == "$es.subscriber.joined" and sub.id in r["text"]
            )
            assert joined["json"]["id"] == sub.id
    finally:
        live.close()
        activity.close()


def test_a_test_event_from_the_page_reaches_a_tail_and_says_how_many(stack: Stack) -> None:
    topic = subject()
    tail = Stream(stack.board, f"/api/tail?pattern={topic}")
    try:
        assert tail.status == 200
        with Subscriber(stack.es.endpoint) as sub:
            sub.subscribe(topic)
            form = {
                "subject": topic,
                "body": '{"valve": "open"}',
                "format": "json",
                "confirm": True,
            }
            status, answer, _ = request(stack.board, "POST", "/api/publish", form)
            assert (status, answer) == (200, {"receivers": 2})  # the tail, and this one
            row = tail.next("row")
            assert row["kind"] == "event" and row["subject"] == topic
            assert row["json"] == {"valve": "open"} and row["format"] == "msgpack"
            event = sub.next(WAIT)
            assert event is not None and event.msg == {"valve": "open"}
    finally:
        tail.close()
    bad = request(stack.board, "POST", "/api/publish", {"subject": "", "body": "x"})
    assert bad[0] == 409 and bad[1]["error"] == "BAD_SUBJECT"
    assert request(stack.board, "GET", "/api/tail?pattern=(a)\\1")[1]["error"] == "BAD_PATTERN"


def test_a_tail_that_cannot_keep_up_shows_a_gap_row(stack: Stack) -> None:
    topic = subject()
    tail = Stream(stack.board, f"/api/tail?subject={topic}&shown=4096")
    try:
        with Publisher(stack.es.endpoint) as pub:
            for n in range(3000):  # ~12 MB of rows: more than the sockets on the way hold
                pub.publish(topic, {"n": n, "pad": "x" * 4000})
            pub.flush()
        rows: list[dict[str, Any]] = []
        tail.until("row", lambda r: rows.append(r) or r["kind"] == "gap")
        gap = rows[-1]
        assert gap["lost"] is None or gap["lost"] > 0
    finally:
        tail.close()


def test_names_change_from_the_page_but_reserved_ones_do_not(stack: Stack) -> None:
    board = stack.board
    name = f":Default.board{uuid.uuid4().hex[:6]}"
    form = {"action": "register", "name": name, "uri": "tcp://127.0.0.1:5555", "meta": "m"}
    assert request(board, "POST", "/api/names", form)[0] == 200
    listed = request(board, "GET", "/api/names")[1]
    entry = next(n for n in listed["names"] if n["name"] == name)
    assert entry["uri"] == "tcp://127.0.0.1:5555" and entry["meta"] == "m"
    assert (
        request(board, "POST", "/api/names", {"action": "meta", "name": name, "meta": "n"})[0]
        == 200
    )
    resolved = request(board, "POST", "/api/names", {"action": "resolve", "name": name})[1]
    assert resolved["meta"] == "n"
    assert request(board, "POST", "/api/names", {"action": "remove", "name": name})[0] == 200
    listed = request(board, "GET", "/api/names")[1]
    assert name not in {n["name"] for n in listed["names"]}
    for group_action in ("mkgroup", "rmgroup"):
        assert (
            request(board, "POST", "/api/names", {"action": group_action, "name": ":Lab"})[0] == 200
        )
    status, body, _ = request(
        board, "POST", "/api/names", {"action": "remove", "name": ":Pyro.EventService"}
    )
    assert (status, body["error"]) == (403, "PROTECTED")
    evil = {"action": "remove", "name": name}
    refused = request(board, "POST", "/api/names", evil, {"origin": "http://evil.example"})
    assert refused[0] == 403 and "another site" in refused[1]["message"]
    rebound = request(board, "POST", "/api/names", evil, {"host": "evil.example"})
    assert rebound[0] == 403 and "Host" in rebound[1]["message"]


def test_read_only_refuses_changes_and_no_ui_serves_only_the_probes(stack: Stack) -> None:
    ns = _hostport(stack.ns)
    quiet = spawn_dashboard("--ns", ns, "--read-only", "--labels", "subscriber,subject")
    probes = spawn_dashboard("--ns", ns, "--no-ui", "--es", "tcp://127.0.0.1:1")
    try:
        assert request(quiet, "GET", "/api/config")[1]["read_only"] is True
        status, body, _ = request(quiet, "POST", "/api/publish", {"subject": "x", "body": "y"})
        assert status == 403 and "read-only" in body["message"]
        wait_until(lambda: "es_subscriber_queue_depth" in str(metrics(quiet)), WAIT, "labels")
        assert request(probes, "GET", "/")[0] == 404
        assert request(probes, "GET", "/api/health")[0] == 404
        wait_until(lambda: request(probes, "GET", "/readyz")[0] == 503, WAIT, "not ready")
        assert metrics(probes) == {"es_up": 0.0}  # nobody there: only that
        probes.proc.terminate()  # SIGTERM, as systemd and container runtimes stop it
        assert probes.proc.wait(WAIT) == 0
        assert quiet.stop() == 0  # SIGINT
    finally:
        for daemon in (quiet, probes):
            daemon.stop()
            daemon.log_path.unlink(missing_ok=True)
