"""The JavaScript client against the real daemons, and against the Python client: JS -> Python,
Python -> JS, JS -> JS, patterns, case-insensitivity, several subjects, name lookup, security on
and off. Messages made in one language must decode to the same values in the other. Also the JS
client's own tests (`node --test`: the spec's vectors and key derivation)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from clients import Publisher, Subscriber, admin
from tests.integration.conftest import Daemon, es_command, wait_until
from tests.integration.helpers import WAIT, run

JS = Path(__file__).parents[2] / "clients" / "js"
AGENT = JS / "interop" / "agent.mjs"
SECRET = "polyglot passphrase"
Start = Callable[..., Daemon]

# One of each kind, nested too. No integral floats: JavaScript cannot tell 2.0 from 2.
VALUES: list[Any] = [
    "plain",
    "ünïcødé ✓",
    0,
    -1,
    2**40,
    1.5,
    -0.25,
    True,
    None,
    b"\x00\xffbytes",
    [1, "two", 3.5, [4, [5]]],
    {"name": "SUN", "price": 22.44, "tags": ["a", "b"], "raw": b"\x01", "nested": {"x": None}},
]


def node() -> str:
    found = shutil.which("node")
    assert found, "node is needed for the JavaScript client's tests"
    assert (JS / "node_modules").is_dir(), "run `make test`: it installs the JS dependencies"
    return found


def to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bytes": value.hex()}
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, **extra}


def js_publish(*args: str, extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    result = subprocess.run(
        [node(), str(AGENT), "pub", *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env=env(**(extra_env or {})),
    )
    assert result.stdout, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return answer


class JsSubscriber:
    """`node agent.mjs sub ...` as a process: ready once its subscriptions are made (or another
    of the agent's commands, ready once it says so)."""

    def __init__(
        self, *args: str, extra_env: dict[str, str] | None = None, command: str = "sub"
    ) -> None:
        self.proc = subprocess.Popen(
            [node(), str(AGENT), command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env(**(extra_env or {})),
        )
        # A thread reads the lines: several can arrive in one read, and a selector on the pipe
        # would not see the ones already in the file object's buffer.
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready = self.line()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for text in self.proc.stdout:
            self._lines.put(text)
        self._lines.put("")  # the end

    def line(self) -> dict[str, Any]:
        try:
            text = self._lines.get(timeout=WAIT)
        except queue.Empty:
            raise AssertionError("timed out waiting for the JS subscriber") from None
        assert text, (
            f"the JS subscriber ended: {self.proc.stderr.read() if self.proc.stderr else ''}"
        )
        parsed: dict[str, Any] = json.loads(text)
        return parsed

    def say(self, line: str) -> dict[str, Any]:
        """Send the agent one line of stdin; its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.line()

    def events(self, count: int) -> list[dict[str, Any]]:
        return [self.line() for _ in range(count)]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(WAIT)
        self._reader.join(WAIT)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def js_subscriber() -> Iterator[Callable[..., JsSubscriber]]:
    started: list[JsSubscriber] = []

    def start(
        *args: str, extra_env: dict[str, str] | None = None, command: str = "sub"
    ) -> JsSubscriber:
        sub = JsSubscriber(*args, extra_env=extra_env, command=command)
        started.append(sub)
        return sub

    yield start
    for sub in started:
        sub.close()


def subject() -> str:
    return f"Poly.{uuid.uuid4().hex[:8]}"


def test_the_js_client_passes_its_own_tests() -> None:
    result = subprocess.run(
        [node(), "--test", "test/"], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "# fail 0" in result.stdout


@pytest.mark.parametrize("ident", [None, SECRET])
def test_js_publisher_to_python_subscriber(start_es: Start, ident: str | None) -> None:
    es = start_es(*(("-i", ident) if ident else ()))
    topic = subject()
    with Subscriber(es.endpoint, ident=ident) as sub:
        sub.subscribe(topic.upper())  # case-insensitive
        sub.subscribe_match(rf"^{topic.lower()}\.more$")
        values = [json.dumps(to_json(v)) for v in VALUES]
        flags = ["--ident", ident] if ident else []
        sent = js_publish(
            "--es", es.endpoint, *flags, "--confirm", f"{topic},{topic}.more", *values
        )
        assert sent["receivers"] == [1] * len(VALUES)
        got = [sub.next(WAIT) for _ in range(2 * len(VALUES))]
    assert all(e is not None for e in got)
    pairs = [(e.subject, e.msg) for e in got if e is not None]
    expected = [(s, v) for v in VALUES for s in (topic, f"{topic}.more")]
    assert pairs == [(s, list(v) if isinstance(v, tuple) else v) for s, v in expected]


@pytest.mark.parametrize("ident", [None, SECRET])
def test_python_publisher_to_js_subscriber(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber], ident: str | None
) -> None:
    es = start_es(*(("-i", ident) if ident else ()))
    topic = subject()
    flags = ["--ident", ident] if ident else []
    sub = js_subscriber("--es", es.endpoint, *flags, "--match", rf"^{topic.upper()}\.M", topic)
    with Publisher(es.endpoint, ident=ident) as pub:
        for value in VALUES:
            assert pub.publish([topic.lower(), f"{topic}.more"], value, confirm=True) == 1
    events = sub.events(2 * len(VALUES))
    assert [(e["subject"], from_json(e["msg"])) for e in events] == [
        (s, v) for v in VALUES for s in (topic.lower(), f"{topic}.more")
    ]
    assert [e["seq"] for e in events] == list(range(1, 2 * len(VALUES) + 1))
    assert all(e["lost"] == 0 for e in events)


def test_a_drop_mode_js_subscriber_is_told_every_loss_once(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    """A queue of ten and a burst far larger: the JS client acknowledges on its inbox, reads the
    LOST notice at the end of the burst, and what it got plus what it was told is everything."""
    es = start_es()
    topic, count = subject(), 3000
    args = ["--es", es.endpoint, "--policy", "drop", "--queue", "10", "--count", str(count)]
    sub = js_subscriber(*args, topic)
    with Publisher(es.endpoint) as pub:
        for i in range(count):
            pub.publish(topic, i)
    lines: list[dict[str, Any]] = []
    while sum(line.get("gap", 0) + line.get("lost", 0) + ("seq" in line) for line in lines) < count:
        lines.append(sub.line())
    expected, told = 1, 0
    for line in lines:  # each loss told once: on the event after it, or by a notice before it
        if "gap" in line:
            told += line["gap"]
            continue
        assert line["seq"] - expected == line["lost"] + told, (line, expected, told)
        expected, told = line["seq"] + 1, 0
    assert [line["msg"] for line in lines if "seq" in line] == sorted(
        line["msg"] for line in lines if "seq" in line
    )
    dropped = es.stats()["server"]["events_dropped"]  # it alone was subscribed (it may have left)
    assert dropped == sum(line.get("gap", 0) + line.get("lost", 0) for line in lines)


def test_js_to_js_through_the_name_server(
    start_es: Start, start_ns: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    ns = start_ns("-i", SECRET)
    es = start_es("-i", SECRET, "--ns", ns.endpoint, naming=True)
    found = {"NS_ADDRESS": ns.endpoint}
    topic = subject()
    sub = js_subscriber("--ident", SECRET, topic, extra_env=found)  # no --es: looked up by name
    assert sub.ready["esUri"] == es.endpoint
    values = [json.dumps(to_json(v)) for v in VALUES]
    sent = js_publish("--ident", SECRET, "--confirm", topic, *values, extra_env=found)
    assert sent["esUri"] == es.endpoint and sent["receivers"] == [1] * len(VALUES)
    assert [from_json(e["msg"]) for e in sub.events(len(VALUES))] == VALUES


def test_a_js_client_without_the_passphrase_is_refused(start_es: Start) -> None:
    es = start_es("-i", SECRET)
    for flags in ([], ["--ident", "wrong"]):
        answer = js_publish("--es", es.endpoint, *flags, "--confirm", "x", '"hello"')
        assert answer["error"] == "AUTH_FAILED", answer


def test_js_event_emitter_and_unsubscribe(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    es = start_es()
    topic = subject()
    sub = js_subscriber("--es", es.endpoint, "--emitter", "--leave-after-first", topic)
    with Publisher(es.endpoint) as pub:
        assert pub.publish(topic, "first", confirm=True) == 1
        first = sub.line()
        assert (first["subject"], first["msg"], first["seq"]) == (topic, "first", 1)
        assert sub.line() == {"left": 0}  # unsubscribed from inside the handler
        assert pub.publish(topic, "nobody", confirm=True) == 0


def test_a_js_subscriber_resumes_after_the_event_server_restarts(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    """kill -9 the server, start it again on its port: the JS subscriber notices, subscribes
    again by itself, says so with a gap of unknown size, and receives again."""
    first = start_es()
    topic = subject()
    sub = js_subscriber("--es", first.endpoint, "--emitter", "--fast", topic)
    with Publisher(first.endpoint) as pub:
        assert pub.publish(topic, "before", confirm=True) == 1
    assert sub.line()["msg"] == "before"
    first.kill()
    again = start_es("-p", str(first.port))
    with Publisher(again.endpoint) as pub:
        wait_until(lambda: pub.publish(topic, "after", confirm=True) == 1, WAIT, "resubscription")
    assert sub.line() == {"gap": None}  # events may have been lost meanwhile: count unknown
    event = sub.line()
    assert event["msg"] == "after" and event["resumed"] is True


def test_retained_events_across_languages(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    es = start_es()
    topic = subject()
    sent = js_publish("--es", es.endpoint, "--confirm", "--retain", f"{topic}.js", '"from js"')
    assert sent["receivers"] == [0]
    with Publisher(es.endpoint) as pub:
        pub.publish(f"{topic}.py", "from python", retain=True, confirm=True)
        with Subscriber(es.endpoint) as py:
            py.subscribe(f"{topic}.js")
            event = py.next(WAIT)
        assert event is not None and event.msg == "from js" and event.retained
    js = js_subscriber("--es", es.endpoint, f"{topic}.py")
    (got,) = js.events(1)
    assert (got["msg"], got["retained"]) == ("from python", True)


def test_a_js_subscriber_moves_on_when_the_server_says_goodbye(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    """A graceful stop sends BYE: with heartbeats far too slow to notice, the JS subscriber is
    down at once, and back with the server restarted on its port."""
    first = start_es()
    topic = subject()
    sub = js_subscriber("--es", first.endpoint, "--emitter", "--slow", "--status", topic)
    assert first.stop() == 0
    assert sub.line() == {"status": "down"}
    again = start_es("-p", str(first.port))
    assert sub.line() == {"status": "connected"}
    with Publisher(again.endpoint) as pub:
        wait_until(lambda: pub.publish(topic, "after", confirm=True) == 1, WAIT, "resubscription")
    assert sub.line() == {"gap": None}
    assert sub.line()["msg"] == "after"


def test_js_publisher_connect_rejects_a_wrong_passphrase_and_an_unreachable_server(
    start_es: Start,
) -> None:
    # Before, connect() resolved in both cases, and a publisher left unclosed after an
    # AuthFailed kept Node running. Nothing is published here: connect alone must say so.
    es = start_es("-i", SECRET)
    answer = js_publish("--es", es.endpoint, "--ident", "wrong", "x")
    assert answer["error"] == "AUTH_FAILED", answer
    with socket.socket() as taken:  # a loopback port nobody listens on
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
    answer = js_publish("--es", f"tcp://127.0.0.1:{port}", "x")
    assert answer["error"] == "RequestTimeout", answer


def test_js_close_does_not_throw_again_the_auth_failure_a_publish_threw(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber], tmp_path: Path
) -> None:
    """The server comes back without this client's key on its allow-list: the publish after
    that says AuthFailed, and close() (with an earlier publish not flushed) does not say it
    again. Before, close() threw the same AuthFailed a second time."""
    made = run(es_command("keygen", str(tmp_path / "keys"), "alice"))
    assert made.returncode == 0, made.stderr
    keys = tmp_path / "keys"
    first = start_es("--keys", str(keys))
    files = f"{keys / 'clients' / 'alice.key_secret'},{keys / 'server.key'}"
    agent = js_subscriber("--es", first.endpoint, "--keys", files, command="steps")
    assert agent.ready == {"ready": first.endpoint}
    assert agent.say('pub Poly.unflushed "before"') == {"receivers": None}
    first.kill()
    (keys / "clients" / "alice.key").unlink()  # revoked
    start_es("--keys", str(keys), "-p", str(first.port))
    refused = agent.say('confirm Poly.refused "after"')
    assert (refused["error"], refused["at"]) == ("AUTH_FAILED", "confirm"), refused
    assert agent.say("close") == {"closed": True}


def test_quick_js_publishes_arrive_in_order_in_fewer_pub_messages(start_es: Start) -> None:
    """One `await pub.publish()` after the other: the JS publisher gathers them (the first alone,
    the rest by the tick, at most 256 to a PUB), and every event arrives, in order, once. With
    more than MARK_EVERY events some PUBs ask for an answer, which the server gives."""
    es = start_es()
    topic, count = subject(), 3000
    with Subscriber(es.endpoint, queue_size=count) as sub:  # room for all: nothing holds back
        sub.subscribe(topic)
        result = subprocess.run(
            [node(), str(AGENT), "burst", "--es", es.endpoint, topic, str(count)],
            capture_output=True,
            text=True,
            timeout=WAIT,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        answer = json.loads(result.stdout.splitlines()[-1])
        assert answer["published"] == count and answer["batches"] > 0, answer
        got = [sub.next(WAIT) for _ in range(count)]
    assert [e.msg for e in got if e is not None] == list(range(count))
    assert all(e is not None and e.lost == 0 for e in got)
    server = admin.stats(es.endpoint)["server"]
    assert server["events_published"] == count
    assert server["publish_requests"] < count // 10, server


def test_a_js_subscriber_replays_history_then_goes_on_live(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    """SPEC 7.11 from JavaScript: the last events the history keeps, flagged replayed, then a
    live one, each with its seq in the history."""
    es = start_es("--history", r"poly\..*=1000")
    topic = subject()
    with Publisher(es.endpoint) as pub:
        for i in range(5):
            pub.publish(topic, i, confirm=True)
        sub = js_subscriber("--es", es.endpoint, "--history", '{"last": 3}', topic)
        pub.publish(topic, "live", confirm=True)
    events = sub.events(4)
    assert [(e["msg"], e["replayed"]) for e in events] == [
        (2, True),
        (3, True),
        (4, True),
        ("live", False),
    ]
    assert [e["history"] for e in events] == [3, 4, 5, 6]


def test_js_and_python_members_of_one_group_share_its_events(
    start_es: Start, js_subscriber: Callable[..., JsSubscriber]
) -> None:
    """SPEC 7.12 across languages: a JS member and a Python member, each event to one of them,
    and every event to one."""
    es = start_es()
    topic = subject()
    js = js_subscriber("--es", es.endpoint, "--group", "mixed", "--queue", "5", topic)
    with Subscriber(es.endpoint, group="mixed", queue_size=5) as py:
        py.subscribe(topic)
        with Publisher(es.endpoint) as pub:
            for i in range(20):
                assert pub.publish(topic, i, confirm=True) == 1  # the group, once
        py_got: list[Any] = []
        js_got: list[Any] = []
        deadline = time.monotonic() + WAIT
        while len(py_got) + len(js_got) < 20 and time.monotonic() < deadline:
            event = py.next(timeout=0.1)
            if event is not None:
                py_got.append(event.msg)
            try:
                js_got.append(json.loads(js._lines.get(timeout=0.1))["msg"])
            except queue.Empty:
                continue
    assert sorted(py_got + js_got) == list(range(20))
    assert py_got and js_got
