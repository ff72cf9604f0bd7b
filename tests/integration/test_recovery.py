"""Faults with real processes: killed subscribers, killed and restarted event servers, stalled
subscribers. The timings printed here (with -s) are the figures the README quotes."""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable

import pytest

from clients import Publisher, Subscriber
from clients.errors import EsError
from clients.keeper import Status
from tests.integration.conftest import Daemon, es_command, read_line, wait_until
from tests.integration.helpers import (
    BIG,
    WAIT,
    reading,
    relay,
    rss_bytes,
    subscriber_stats,
    warm_up,
)

Start = Callable[..., Daemon]
FAST = {"heartbeat": 0.3, "liveness": 1.5}  # clients that notice a dead server quickly


def subject() -> str:
    return f"fault.{uuid.uuid4().hex[:8]}"


def confirmed(pub: Publisher, topic: str, message: object) -> int:
    """Receivers of a confirmed publish, 0 while the server cannot be reached."""
    try:
        return pub.publish(topic, message, confirm=True, timeout=2.0) or 0
    except EsError:
        return 0


def test_a_killed_subscriber_is_removed_and_blocked_publishers_resume(start_es: Start) -> None:
    es = start_es("--liveness", "3", "--max-stall", "0.5")
    topic = subject()
    victim = subprocess.Popen(
        es_command("sub", topic, "--es", es.endpoint, "--queue-size", "1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert victim.stderr is not None
        assert "subscribed" in (read_line(victim.stderr, time.monotonic() + WAIT) or "")
        with Subscriber(es.endpoint) as other, Publisher(es.endpoint) as pub, reading(other) as got:
            other.subscribe(topic)
            assert pub.publish(topic, -1, confirm=True) == 2
            for i in range(200):  # under load: the victim is reading when it dies
                pub.publish(topic, i)
            victim.kill()
            victim.wait(WAIT)
            killed = time.monotonic()
            i = 200
            while es.stats()["server"]["subscribers"] > 1:
                assert time.monotonic() - killed < WAIT, "the dead subscriber was never removed"
                pub.publish(topic, i, confirm=True, timeout=WAIT)
                i += 1
            removed = time.monotonic() - killed
            for j in range(i, i + 200):
                pub.publish(topic, j)
            pub.flush()
            wait_until(lambda: len(got) >= i + 201, WAIT, "the other subscriber's events")
        print(f"\ndead subscriber removed {removed:.1f} s after kill -9 (--liveness 3)")
        assert [e.msg for e in got] == list(range(-1, i + 200))
        assert all(e.lost == 0 for e in got)
        assert "removed" in es.log()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(WAIT)
        if victim.stderr is not None:
            victim.stderr.close()


def test_clients_resume_after_the_event_server_is_killed_and_restarted_on_its_port(
    start_es: Start,
) -> None:
    first = start_es()
    topic = subject()
    with Subscriber(first.endpoint, **FAST) as sub, Publisher(first.endpoint, **FAST) as pub:
        sub.subscribe(topic)
        assert pub.publish(topic, "before", confirm=True) == 1
        assert (event := sub.next(WAIT)) is not None and event.msg == "before"
        first.kill()
        killed = time.monotonic()
        start_es("-p", str(first.port))  # the same port: clients keep their address
        wait_until(lambda: sub.recoveries >= 1, WAIT, "the subscriptions to be restored")
        wait_until(lambda: confirmed(pub, topic, "after") == 1, WAIT, "delivery to work again")
        resumed = time.monotonic() - killed
        event = sub.next(WAIT)
        assert event is not None and event.msg == "after"
        assert event.resumed  # told that events may have been lost meanwhile
        assert sub.status is Status.CONNECTED
    print(f"\nsubscriber receiving again {resumed:.1f} s after kill -9 and restart")


def test_clients_follow_the_event_server_to_another_port_through_the_name_server(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = start_ns()
    first = start_es("--ns", ns.endpoint, "--ns-lease", "2", naming=True)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    topic = subject()
    statuses: list[Status] = []
    with Subscriber(on_status=statuses.append, **FAST) as sub, Publisher(**FAST) as pub:
        assert sub.es_uri == pub.es_uri == first.endpoint
        sub.subscribe(topic)
        first.kill()
        killed = time.monotonic()
        second = start_es("--ns", ns.endpoint, naming=True)  # another free port
        assert second.endpoint != first.endpoint
        wait_until(lambda: sub.es_uri == second.endpoint and sub.recoveries >= 1, WAIT, "sub")
        wait_until(lambda: pub.es_uri == second.endpoint, WAIT, "the publisher to follow")
        wait_until(lambda: confirmed(pub, topic, "moved") == 1, WAIT, "delivery to work again")
        moved = time.monotonic() - killed
        event = sub.next(WAIT)
        assert event is not None and event.msg == "moved" and event.resumed
    assert Status.DOWN in statuses and statuses[-1] is Status.CLOSED
    print(f"\nclients on the new port {moved:.1f} s after kill -9")


def test_a_stalled_subscriber_is_evicted_told_so_and_others_keep_their_stream(
    start_es: Start,
) -> None:
    es = start_es("--max-stall", "0.2", "--evict-stalled", "2")
    topic = subject()
    with (
        Subscriber(es.endpoint, queue_size=1, heartbeat=0.3) as stuck,
        Subscriber(es.endpoint, queue_size=100_000) as fast,
        Publisher(es.endpoint) as pub,
    ):
        stuck.subscribe(topic)
        fast.subscribe(topic)
        warm_up(pub, topic, stuck, fast)
        with reading(fast) as got:
            count = 0
            while es.stats()["server"]["evictions"] == 0:  # it comes back by itself at once
                assert count < 5000, "the stalled subscriber was never evicted"
                pub.publish(topic, [count, BIG], confirm=True, timeout=WAIT)
                count += 1
            wait_until(lambda: len(got) >= count, WAIT, "the fast subscriber's events")
            # told at its next heartbeat, it subscribes again by itself
            wait_until(lambda: stuck.recoveries >= 1, WAIT, "the stalled one to be told")
    assert [e.msg[0] for e in got[:count]] == list(range(count))
    assert "removed (stalled)" in es.log()


def test_a_stalled_drop_mode_subscriber_does_not_grow_the_servers_memory(
    start_es: Start,
) -> None:
    es = start_es("--evict-stalled", "0")  # never evicted: it stays stalled throughout
    topic = subject()
    with (
        Subscriber(es.endpoint, policy="drop", queue_size=1) as stuck,
        Subscriber(es.endpoint, policy="drop", queue_size=100_000) as fast,
        Publisher(es.endpoint) as pub,
    ):
        stuck.subscribe(topic)
        fast.subscribe(topic)
        warm_up(pub, topic, stuck, fast)
        with reading(fast) as got:
            for i in range(300):  # fill every buffer on the way to the stalled one
                pub.publish(topic, [i, BIG])
            pub.flush(WAIT)
            wait_until(lambda: len(got) >= 300, WAIT, "the first part")
            before = rss_bytes(es.proc.pid)
            for i in range(300, 2300):  # about 130 MB more for the stalled subscriber
                pub.publish(topic, [i, BIG])
            pub.flush(WAIT)
            wait_until(lambda: len(got) >= 2300, WAIT, "the fast subscriber's events")
            after = rss_bytes(es.proc.pid)
        stats = subscriber_stats(es, stuck.sid)
    mib = 2**20
    print(f"\nes RSS {before / mib:.0f} -> {after / mib:.0f} MiB, 130 MB to a stalled subscriber")
    assert [e.msg[0] for e in got] == list(range(2300))
    assert stats["dropped"] > 1000
    assert after - before < 64 * 2**20


def test_graceful_shutdown_delivers_what_is_queued(start_es: Start) -> None:
    """Events the server accepted before Ctrl-C still leave during the drain. The subscriber's
    advertised address has no listener until after Ctrl-C (a gateway coming up late), so the
    events can only be waiting in the server's queue: without the drain they would be lost."""
    es = start_es("--drain-timeout", "30")
    topic = subject()
    with Subscriber(es.endpoint, host="127.0.0.2", publish_host="127.0.0.3") as late:
        late.subscribe(topic)
        port = int(late.endpoint.rsplit(":", 1)[1])
        with Publisher(es.endpoint) as pub:
            for i in range(20):
                assert pub.publish(topic, i, confirm=True) == 1  # queued for it in the server
        es.interrupt()
        wait_until(lambda: "draining" in es.log(), WAIT, "the drain to start")
        with relay(("127.0.0.3", port), ("127.0.0.2", port)):
            received = []
            while len(received) < 20 and (event := late.next(WAIT)) is not None:
                received.append(event.msg)
            assert es.proc.wait(WAIT) == 0
    assert received == list(range(20))
