"""Durable subscribers (SPEC 7.10) with real processes: a subscriber killed and started again
under its durable name gets everything published meanwhile, then live events, with no gap and
no duplicate; the server killed with -9 under a confirmed publish stream loses no confirmed
event; a durable subscriber away past its limits is refused to publishers or told its losses."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from clients import Event, Publisher, Subscriber
from clients.errors import EsError, StoreFull
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import WAIT, subscriber_process, take

Start = Callable[..., Daemon]
FAST = {"heartbeat": 0.3, "liveness": 1.5}


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_a_killed_durable_subscriber_gets_what_it_missed_then_live_events(
    start_es: Start, tmp_path: Path, storage: str
) -> None:
    spec = "memory" if storage == "memory" else f"sqlite:{tmp_path / 'es.db'}"
    es = start_es("--storage", spec)
    topic = f"orders.{uuid.uuid4().hex[:8]}"
    durable = f"billing-{uuid.uuid4().hex[:6]}"
    with subscriber_process(topic, "--es", es.endpoint, "--durable", durable) as first:
        first.kill()  # gone without a word: the server still thinks it is there
        first.wait(WAIT)
    with Publisher(es.endpoint) as pub:
        for i in range(10_000):
            pub.publish(topic, i)
        pub.flush()
        stored = es.stats()["subscribers"][0]
        assert stored["depth"] == 10_000  # everything waits for it (in flight or in its log)
        with Subscriber(es.endpoint, durable=durable) as sub:
            sub.subscribe(topic)
            missed = take(sub, 10_000)
            for i in range(10_000, 10_100):
                pub.publish(topic, i)
            live = take(sub, 100)
            assert sub.next(timeout=0.5) is None  # nothing more: no duplicate
            assert sub.lost == 0
    got = [e.msg for e in missed + live]
    assert got == list(range(10_100))
    assert all(e.lost == 0 for e in missed + live)


def test_a_durable_subscriber_away_past_its_limit_refuses_publishers_in_block_mode(
    start_es: Start,
) -> None:
    es = start_es("--max-durable-events", "100")
    topic = f"audit.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint, durable="audit", queue_size=10) as sub:
        sub.subscribe(topic)
        with Publisher(es.endpoint) as pub:
            for i in range(100):
                pub.publish(topic, i, confirm=True)
            with pytest.raises(StoreFull):
                pub.publish(topic, 100, confirm=True)
            got = take(sub, 100)  # reading makes room
            assert [e.msg for e in got] == list(range(100))
            wait_until(lambda: _accepted(pub, topic), WAIT, "room in the log again")


def _accepted(pub: Publisher, topic: str) -> bool:
    try:
        pub.publish(topic, "again", confirm=True)
    except StoreFull:
        return False
    return True


def test_a_durable_subscriber_away_past_its_limit_in_drop_mode_is_told_its_losses(
    start_es: Start,
) -> None:
    es = start_es("--max-durable-events", "100")
    topic = f"metrics.{uuid.uuid4().hex[:8]}"
    with Publisher(es.endpoint) as pub:
        with subscriber_process(
            topic,
            "--es",
            es.endpoint,
            "--durable",
            "metrics",
            "--policy",
            "drop",
            "--queue-size",
            "10",
        ) as first:
            first.kill()
            first.wait(WAIT)
        for i in range(300):
            pub.publish(topic, i, confirm=True)
        with Subscriber(es.endpoint, durable="metrics", policy="drop", queue_size=10) as sub:
            sub.subscribe(topic)
            got = take(sub, 100)
            assert sub.next(timeout=0.5) is None
    # The first events went out to the killed one and came back from the log; the oldest
    # spilled ones were dropped to keep it at 100 events, and it was told how many.
    msgs = [e.msg for e in got]
    assert msgs == sorted(msgs) and msgs[-1] == 299
    assert sub.lost == 300 - len(msgs) == sum(e.lost for e in got)


@pytest.mark.parametrize(
    ("clients", "kills"), [(FAST, 3), ({}, 1)], ids=["fast-heartbeats", "defaults"]
)  # the clients' settings: heartbeats, liveness, and the publisher's timeout with them
def test_the_server_killed_under_a_confirmed_stream_loses_no_confirmed_event(
    start_es: Start, tmp_path: Path, clients: dict[str, float], kills: int
) -> None:
    storage = f"sqlite:{tmp_path / 'es.db'}"
    es = start_es("--storage", storage)
    topic = f"payments.{uuid.uuid4().hex[:8]}"
    confirmed: list[int] = []
    stop = threading.Event()
    with Subscriber(es.endpoint, durable="ledger", **clients) as sub:
        sub.subscribe(topic)
        with Publisher(es.endpoint, timeout=2.0 if clients else 10.0, **clients) as pub:

            def publish() -> None:
                i = 0
                deadline = time.monotonic() + 4 * WAIT
                while not stop.is_set() and time.monotonic() < deadline and i < 100_000:
                    try:
                        pub.publish(topic, i, confirm=True)
                    except EsError:
                        pass  # not confirmed: it may or may not arrive
                    else:
                        confirmed.append(i)
                    i += 1

            thread = threading.Thread(target=publish, daemon=True)
            thread.start()
            got: list[Event] = []
            for kill in range(kills):
                wait_until(lambda n=kill: len(confirmed) >= 500 * (n + 1), WAIT, "confirmations")
                es.kill()
                es = start_es("--storage", storage, "-p", str(es.port))
            wait_until(lambda: len(confirmed) >= 500 * (kills + 1), WAIT, "after the kills")
            stop.set()
            thread.join(WAIT)
            last = confirmed[-1]
            while not got or got[-1].msg < last:
                more = take(sub, 1)
                assert more, f"stuck after {got[-1].msg if got else None}, waiting for {last}"
                got += more
    msgs = [e.msg for e in got]
    assert msgs == sorted(set(msgs))  # in order, each once
    assert set(confirmed) <= set(msgs)


def test_a_new_program_taking_a_durable_name_gets_what_follows_its_acknowledged_events(
    start_es: Start,
) -> None:
    es = start_es()
    topic = f"invoices.{uuid.uuid4().hex[:8]}"
    with Publisher(es.endpoint) as pub:
        with Subscriber(es.endpoint, durable="invoices") as first:
            first.subscribe(topic)
            for i in range(100):
                pub.publish(topic, i)
            assert [e.msg for e in take(first, 100)] == list(range(100))
            assert first.next(timeout=0.5) is None  # its inbox ran dry: it acknowledges
            wait_until(lambda: es.stats()["subscribers"][0]["acked"] == 100, WAIT, "its ACK")
        for i in range(100, 200):  # while no one holds the name
            pub.publish(topic, i)
        with Subscriber(es.endpoint, durable="invoices") as second:
            second.subscribe(topic)
            got = take(second, 100)
            assert second.next(timeout=0.5) is None
    assert [e.msg for e in got] == list(range(100, 200))
    assert second.lost == 0  # its stream began before it: what came first was consumed, not lost


@pytest.mark.parametrize(
    ("liveness", "heartbeat"), [("1", 2.5), (None, 12.0)], ids=["short-liveness", "defaults"]
)
def test_a_durable_subscriber_the_server_gave_up_on_comes_back_having_lost_nothing(
    start_es: Start, liveness: str | None, heartbeat: float
) -> None:
    # It heartbeats less often than the server's liveness: the server gives up on it between
    # two heartbeats, keeps its events, and the next heartbeat brings it back.
    es = start_es(*(["--liveness", liveness] if liveness else []))
    topic = f"slowbeat.{uuid.uuid4().hex[:8]}"
    with (
        Subscriber(
            es.endpoint, durable="slowbeat", heartbeat=heartbeat, liveness=3 * heartbeat
        ) as sub,
        Publisher(es.endpoint) as pub,
    ):
        sub.subscribe(topic)
        wait_until(lambda: es.stats()["server"]["durables_away"] == 1, WAIT, "it to be away")
        for i in range(50):
            pub.publish(topic, i, confirm=True)
        got = take(sub, 50)
    assert [e.msg for e in got] == list(range(50))
    assert sub.recoveries >= 1  # it subscribed again
    assert not any(e.resumed for e in got) and sub.lost == 0  # and was told nothing was lost


def test_the_server_gives_back_the_space_of_acknowledged_events(
    start_es: Start, tmp_path: Path
) -> None:
    """Storage is compacted: once a durable subscriber consumed 20 MB of events, the file's
    pages go back to the file system, a bounded step every half second."""
    import sqlite3

    path = tmp_path / "es.db"
    es = start_es("--storage", f"sqlite:{path}")
    topic = f"bulk.{uuid.uuid4().hex[:8]}"

    def pages() -> int:
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            return int(db.execute("PRAGMA page_count").fetchone()[0])
        finally:
            db.close()

    with Subscriber(es.endpoint, durable="bulk", queue_size=100) as sub:
        sub.subscribe(topic)
        sub.close()  # away: everything is stored
    with Publisher(es.endpoint) as pub:
        for _ in range(5000):
            pub.publish(topic, b"x" * 4000)
        pub.flush()
    full = pages()
    assert full > 4000
    with Subscriber(es.endpoint, durable="bulk", queue_size=100) as sub:
        sub.subscribe(topic)
        assert len(take(sub, 5000)) == 5000
    wait_until(lambda: pages() < full // 4, WAIT, "the file compacted")
