"""History and replay (SPEC 7.11) with real processes: a subscription asks for the last N events,
those since a time, or those from a seq of the history's stream, on subjects and on patterns;
a new subscriber rebuilds its state from the history while events keep coming and goes on live
with no gap and no duplicate; the history outlives kill -9 with sqlite storage; a subscriber
that asked for history gets what was published while the server it knew was away."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from clients import Publisher, Subscriber
from tests.integration.conftest import Daemon, es_command, wait_until
from tests.integration.helpers import WAIT, run, take

Start = Callable[..., Daemon]
RULE = r"orders\..*=1d,100000"


def _topic() -> str:
    return f"orders.{uuid.uuid4().hex[:8]}"


def test_the_last_n_since_a_time_and_from_a_seq_on_subjects_and_patterns(start_es: Start) -> None:
    es = start_es("--history", RULE)
    eu, us = _topic(), _topic()
    with Publisher(es.endpoint) as pub:
        for i in range(10):
            pub.publish(eu, f"eu{i}", confirm=True)
            pub.publish(us, f"us{i}", confirm=True)
        middle = time.time()
        for i in range(10, 13):
            pub.publish(eu, f"eu{i}", confirm=True)
    with Subscriber(es.endpoint) as sub:
        sub.subscribe(eu, history={"last": 3})
        assert sub.replayed == 3
        last = take(sub, 3)
    assert [e.msg for e in last] == ["eu10", "eu11", "eu12"]
    assert all(e.replayed for e in last) and [e.seq for e in last] == [1, 2, 3]
    with Subscriber(es.endpoint) as sub:
        sub.subscribe_match(rf"({eu}|{us})$", history={"since": middle})
        since = take(sub, 3)
    assert [e.msg for e in since] == ["eu10", "eu11", "eu12"]
    start = last[0].history
    assert start is not None
    with Subscriber(es.endpoint) as sub:
        sub.subscribe_match(r"orders\.", history={"from": start - 3, "stream": sub_stream(es)})
        got = take(sub, 6)
        assert sub.next(timeout=0.3) is None  # and nothing else
    assert [e.msg for e in got] == ["us8", "eu9", "us9", "eu10", "eu11", "eu12"]
    assert [e.history for e in got] == list(range(start - 3, start + 3))


def sub_stream(es: Daemon) -> int:
    """The history's stream, as STATS shows it."""
    return int(es.stats()["server"]["history_stream"])


def test_a_new_subscriber_rebuilds_from_history_and_goes_on_live_with_no_gap(
    start_es: Start,
) -> None:
    """Publishing goes on at a few thousand events a second while a subscriber asks for the
    whole history: it ends with every event once, in order, the history first."""
    es = start_es("--history", RULE)
    topic = _topic()
    total, joined_at = 6000, 2000
    published = threading.Event()
    halfway = threading.Event()

    def publish() -> None:
        with Publisher(es.endpoint) as pub:
            for i in range(total):
                pub.publish(topic, i)
                if i == joined_at:
                    pub.flush()
                    halfway.set()
                if i % 500 == 0:
                    time.sleep(0.05)  # a few thousand a second, bounded
            pub.flush()
        published.set()

    thread = threading.Thread(target=publish)
    thread.start()
    try:
        assert halfway.wait(WAIT)
        with Subscriber(es.endpoint, queue_size=100) as sub:
            sub.subscribe(topic, history={"from": 1})
            replayed = sub.replayed
            got = take(sub, total)
            assert sub.next(timeout=0.5) is None  # no duplicate
            assert sub.lost == 0
    finally:
        thread.join(WAIT)
    assert published.is_set()
    assert [e.msg for e in got] == list(range(total))
    assert replayed > joined_at
    assert all(e.replayed for e in got[:replayed]) and not any(e.replayed for e in got[replayed:])
    seqs = [e.history for e in got]
    assert seqs == sorted(seqs) and len(set(seqs)) == total


def test_the_history_outlives_kill_9_with_sqlite(start_es: Start, tmp_path: Path) -> None:
    spec = f"sqlite:{tmp_path / 'es.db'}"
    first = start_es("--storage", spec, "--history", RULE)
    topic = _topic()
    with Publisher(first.endpoint) as pub:
        for i in range(2000):
            pub.publish(topic, i, confirm=i % 100 == 99)
    stream = sub_stream(first)
    first.kill()
    again = start_es("--storage", spec, "--history", RULE)  # another port
    assert sub_stream(again) == stream
    with Subscriber(again.endpoint) as sub:
        sub.subscribe(topic, history={"from": 1, "stream": stream})
        got = take(sub, 2000)
    assert [e.msg for e in got] == list(range(2000))
    with Publisher(again.endpoint) as pub:  # its seqs go on
        pub.publish(topic, "next", confirm=True)
    assert again.stats()["server"]["history_events"] == 2001


def test_a_subscriber_that_asked_for_history_gets_what_came_while_its_server_was_away(
    start_es: Start,
) -> None:
    """kill -9 of a server with memory storage, started again on its port: events published
    there before the subscriber finds it again reach it all the same, from the new history."""
    first = start_es("--history", RULE)
    topic = _topic()
    with Subscriber(first.endpoint) as sub:
        sub.subscribe(topic, history={"last": 0})
        with Publisher(first.endpoint) as pub:
            pub.publish(topic, "before", confirm=True)
        assert [e.msg for e in take(sub, 1)] == ["before"]
        old = sub.history_stream
        first.kill()
        again = start_es("-p", str(first.port), "--history", RULE)
        with Publisher(again.endpoint) as pub:
            for i in range(5):  # most likely before the subscriber is back: kept by the history
                pub.publish(topic, i, confirm=True)
        got = take(sub, 5)
        assert sub.next(timeout=0.5) is None
        assert sub.history_stream not in (None, old)
    assert [e.msg for e in got] == list(range(5))


def test_es_sub_prints_the_history_it_asked_for(start_es: Start) -> None:
    es = start_es("--history", RULE)
    topic = _topic()
    with Publisher(es.endpoint) as pub:
        for i in range(3):
            pub.publish(topic, i, confirm=True)
    out = run(
        es_command("sub", topic, "--es", es.endpoint, "--history", "last=2", "--json", "-c", "2")
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert [(_json(line)["msg"], _json(line)["replayed"]) for line in lines] == [
        (1, True),
        (2, True),
    ]
    text = run(es_command("sub", topic, "--es", es.endpoint, "--history", "last=1", "-c", "1"))
    assert f"[#1] {topic} (history 3, replayed): 2" in text.stdout
    bad = run(es_command("sub", topic, "--es", es.endpoint, "--history", "first=2"))
    assert bad.returncode != 0 and "give last=N" in bad.stderr
    wait_until(lambda: not es.stats()["subscribers"], WAIT, "the printing subscriber gone")


def _json(line: str) -> dict[str, object]:
    import json

    return dict(json.loads(line))
