"""Durable storage with real processes: the event server killed under traffic and started again on
the same sqlite file delivers to its subscribers without them subscribing again, tells them of the
gap, keeps retained events, and forgets subscribers whose clients are gone."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from clients import Publisher, Subscriber
from clients.keeper import Status
from tests.integration.conftest import Daemon, es_command, ns_command, wait_until
from tests.integration.helpers import WAIT, publishing, reading, run

Start = Callable[..., Daemon]
FAST = {"heartbeat": 0.3, "liveness": 1.5}


def test_subscribers_come_back_with_the_server_without_subscribing_again(
    start_es: Start, tmp_path: Path
) -> None:
    storage = f"sqlite:{tmp_path / 'es.db'}"
    first = start_es("--storage", storage)
    topic = f"durable.{uuid.uuid4().hex[:8]}"
    with (
        Subscriber(first.endpoint, name="durable", **FAST) as sub,
        Publisher(first.endpoint, timeout=2 * WAIT, **FAST) as pub,
    ):
        sub.subscribe(topic)
        sub.subscribe_match(rf"^{topic}\.more$")
        pub.publish(f"{topic}.status", "kept", retain=True, confirm=True)
        with reading(sub) as got, publishing(pub, topic):
            wait_until(lambda: len(got) >= 200, WAIT, "events before the kill")
            first.kill()
            killed = time.monotonic()
            second = start_es("--storage", storage, "-p", str(first.port))
            wait_until(lambda: any(e.resumed for e in list(got)), WAIT, "an event marked resumed")
            back = time.monotonic() - killed
            index = next(i for i, e in enumerate(got) if e.resumed)
            wait_until(lambda: len(got) >= index + 200, WAIT, "a steady stream after it")
        assert sub.recoveries == 0  # the server knew it: nothing was replayed
        # its keeper says so at its next heartbeat (the kill may have come before its first one)
        wait_until(lambda: sub.status is Status.CONNECTED, WAIT, "the keeper to see the server")
        stats = second.stats()
        (entry,) = stats["subscribers"]  # once, not twice
        assert entry["id"] == sub.id and entry["name"] == "durable"
        assert entry["subjects"] == [topic.lower()] and entry["patterns"] == [rf"^{topic}\.more$"]
        assert stats["server"]["retained"] == 1
    events = list(got)
    before = [e.msg for e in events[:index]]
    assert before == list(range(index))  # nothing lost before the kill, in order
    after = [e.msg for e in events[index:]]
    assert after == list(range(after[0], after[0] + len(after)))  # in order again after it
    print(f"\nreceiving again {back:.1f} s after kill -9, {after[0] - index} events lost")


def test_a_restored_subscriber_whose_client_is_gone_is_forgotten(
    start_es: Start, tmp_path: Path
) -> None:
    storage = f"sqlite:{tmp_path / 'es.db'}"
    first = start_es("--storage", storage)
    with Subscriber(first.endpoint) as sub:
        sub.subscribe("anything")
        gone = sub.id
        first.kill()  # the client closes while the server is dead: it cannot unsubscribe
    second = start_es("--storage", storage, "-p", str(first.port), "--liveness", "2")
    assert [s["id"] for s in second.stats()["subscribers"]] == [gone]
    assert "restored 1 subscriber(s)" in second.log()
    wait_until(lambda: not second.stats()["subscribers"], WAIT, "the dead one to be removed")
    third = start_es("--storage", storage)  # and it is gone from storage too
    assert third.stats()["subscribers"] == []
    assert "restored" not in third.log()


@pytest.mark.parametrize("command", [es_command, ns_command], ids=["es", "ns"])
def test_a_daemon_refuses_a_foreign_storage_file_and_leaves_it_untouched(
    tmp_path: Path, command: Callable[..., list[str]]
) -> None:
    # Before, a foreign file was switched to WAL mode, the daemon said "listening", then died
    # with a traceback.
    path = tmp_path / "theirs.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    db.commit()
    db.close()
    before = path.read_bytes()
    done = run([*command("serve", "-n", "127.0.0.1", "-p", "0"), "--storage", f"sqlite:{path}"])
    assert done.returncode == 2, done.stderr
    assert "not this daemon's storage (it holds tables invoices)" in done.stderr
    assert "Traceback" not in done.stderr and "listening" not in done.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["theirs.db"]
