"""Faults with real processes: killed subscribers, killed and restarted event servers, stalled
subscribers. The timings printed here (with -s) are the figures the README quotes."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import pytest

from clients import Publisher, RequestTimeout, Subscriber, admin
from clients.keeper import Status
from clients.wire import public_id
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import (
    BIG,
    WAIT,
    accounted,
    publishing,
    reading,
    relay,
    rss_bytes,
    slow_and_fast,
    subscriber_process,
    subscriber_stats,
    warm_up,
)

Start = Callable[..., Daemon]
FAST = {"heartbeat": 0.3, "liveness": 1.5}  # clients that notice a dead server quickly


def subject() -> str:
    return f"fault.{uuid.uuid4().hex[:8]}"


def test_a_killed_subscriber_is_removed_and_blocked_publishers_resume(start_es: Start) -> None:
    es = start_es("--liveness", "3", "--max-stall", "0.5")
    topic = subject()
    with subscriber_process(topic, "--es", es.endpoint, "--queue-size", "1") as victim:
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


def survive(
    restart: Callable[[Daemon], Daemon], first: Daemon, sub: Subscriber, pub: Publisher
) -> float:
    """Kill -9 `first` while `pub` publishes steadily to `sub`, bring a server back with
    `restart`, and return how long after the kill the subscriber was receiving again. Every event
    the subscriber got is checked: in order, and each gap is either counted by the server or marked
    as the gap of the recovery."""
    topic = subject()
    sub.subscribe(topic)
    with reading(sub) as got, publishing(pub, topic) as load:
        wait_until(lambda: len(got) >= 500, WAIT, "events before the kill")
        first.kill()
        killed = time.monotonic()
        second = restart(first)
        resumed_at = lambda: accounted(list(got))  # noqa: E731
        index = wait_until(resumed_at, WAIT, "events after the restart, marked as resumed")
        back = time.monotonic() - killed
        wait_until(lambda: len(got) >= index + 500, WAIT, "a steady stream after the restart")
    events = list(got)
    assert accounted(events) == index
    assert [e.msg for e in events[:index]] == list(range(index))  # nothing lost before the kill
    # the keeper says so at its next heartbeat (the kill may have come before its first one)
    wait_until(lambda: sub.status is Status.CONNECTED, WAIT, "the keeper to see the server")
    assert pub.es_uri == sub.es_uri == second.endpoint
    # The publisher's timeout is longer than the test: a send stuck on the dead server was moved
    # to the new one when the keeper replaced the connection, and the program never saw an error.
    assert load.failures == 0
    print(
        f"\n{len(events)} events, {events[index].msg - events[index - 1].msg - 1} lost in the "
        f"restart; receiving again {back:.1f} s after kill -9 ({load.failures} refused sends)"
    )
    return back


def test_clients_resume_after_the_event_server_is_killed_and_restarted_on_its_port(
    start_es: Start,
) -> None:
    first = start_es()
    with (
        Subscriber(first.endpoint, **FAST) as sub,
        Publisher(first.endpoint, timeout=2 * WAIT, **FAST) as pub,
    ):
        survive(lambda dead: start_es("-p", str(dead.port)), first, sub, pub)
        assert sub.recoveries >= 1


def test_clients_follow_the_event_server_to_another_port_through_the_name_server(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = start_ns()
    first = start_es("--ns", ns.endpoint, "--ns-lease", "2", naming=True)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    statuses: list[Status] = []
    with (
        Subscriber(on_status=statuses.append, **FAST) as sub,
        Publisher(timeout=2 * WAIT, **FAST) as pub,
    ):
        assert sub.es_uri == pub.es_uri == first.endpoint

        def elsewhere(dead: Daemon) -> Daemon:
            second = start_es("--ns", ns.endpoint, naming=True)  # another free port
            assert second.endpoint != dead.endpoint
            return second

        survive(elsewhere, first, sub, pub)
    assert Status.DOWN in statuses and statuses[-1] is Status.CLOSED


@pytest.mark.parametrize("where", ["its port", "another port"])
def test_at_the_defaults_clients_follow_a_killed_server(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # The siblings of the two tests above with the settings users get: the README quotes them.
    ns = start_ns()
    first = start_es("--ns", ns.endpoint, naming=True)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    with Subscriber() as sub, Publisher(timeout=2 * WAIT) as pub:

        def restart(dead: Daemon) -> Daemon:
            port = ("-p", str(dead.port)) if where == "its port" else ()
            return start_es("--ns", ns.endpoint, *port, naming=True)

        back = survive(restart, first, sub, pub)
    assert back < WAIT


def test_clients_and_the_event_server_ride_out_a_name_server_restart(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name server is killed and comes back with memory storage, having forgotten everything,
    and while it is away the event server dies too and comes back on another port. Clients that
    found the event server by name go on working without the name server, and then find the new
    event server through the new name server, with no code of the program's."""
    ns = start_ns()
    first = start_es("--ns", ns.endpoint, "--ns-lease", "1.5", naming=True)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    topic = subject()
    with Subscriber(**FAST) as sub, Publisher(timeout=2 * WAIT, **FAST) as pub:
        sub.subscribe(topic)
        ns.kill()
        wait_until(lambda: "cannot renew" in first.log(), WAIT, "a lease renewal to fail")
        assert pub.publish(topic, "no name server", confirm=True) == 1  # nobody needs it now
        assert (event := sub.next(WAIT)) is not None and event.msg == "no name server"
        assert first.proc.poll() is None  # the event server does not give up for lack of one
        first.kill()  # now the clients must find a server, and nothing can tell them where
        wait_until(lambda: sub.status is Status.DOWN, WAIT, "the subscriber to notice")
        again = start_ns("-p", str(ns.port))
        second = start_es("--ns", again.endpoint, naming=True)
        wait_until(lambda: sub.es_uri == second.endpoint and sub.recoveries >= 1, WAIT, "sub")
        wait_until(lambda: pub.es_uri == second.endpoint, WAIT, "the publisher to follow")
        assert pub.publish(topic, "found again", confirm=True) == 1
        event = sub.next(WAIT)
        assert event is not None and event.msg == "found again" and event.resumed


def test_a_stalled_subscriber_is_evicted_told_so_and_others_keep_their_stream(
    start_es: Start,
) -> None:
    es = start_es("--max-stall", "0.2", "--evict-stalled", "2")
    with slow_and_fast(es, {"heartbeat": 0.3}) as cast:
        stuck, fast, pub, topic = cast.slow, cast.fast, cast.pub, cast.subject
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


# The stall tests are about the publisher's liveness, not the subscribers': with a busy test
# process on a loaded machine, a subscriber's heartbeats can be late by more than the default
# 10 s, and its removal as silent would end the test early (seen with both cores overloaded,
# before and after batching).
LENIENT = ("--liveness", "60")


def stalled(es: Daemon, sid: str) -> bool:
    """Whether a publish waits for `sid`. A server whose backlog has filled behind the stall
    reads nothing, STATS included: no answer in a few seconds says so too."""
    try:
        body = admin.stats(es.endpoint, timeout=3.0)
    except RequestTimeout:
        return True
    return any(s["id"] == public_id(sid) and s["stalls"] > 0 for s in body["subscribers"])


def held_by_a_stall(es: Daemon, count: int) -> tuple[list[Status], list[object], list[object]]:
    """Block mode, a subscriber that stops reading for several times its publisher's liveness
    time while `count` big events go out, then reads again. Returns the publisher's statuses and
    what each subscriber received."""
    statuses: list[Status] = []
    publisher = {"heartbeat": 0.2, "liveness": 1.0, "on_status": statuses.append}
    with slow_and_fast(es, {"max_stall": WAIT}, pub=publisher) as cast:
        slow, fast, pub, topic = cast.slow, cast.fast, cast.pub, cast.subject
        with reading(fast) as fast_got:
            for i in range(count):
                pub.publish(topic, [i, BIG])
            wait_until(lambda: stalled(es, slow.sid), WAIT, "the stall")
            threading.Event().wait(3.0)  # the stimulus: stuck for three liveness times
            with reading(slow) as slow_got:
                pub.flush(WAIT)
                wait_until(lambda: len(fast_got) >= count, WAIT, "the fast subscriber")
                wait_until(lambda: len(slow_got) >= count, WAIT, "the slow subscriber")
    return statuses, [e.msg[0] for e in fast_got], [e.msg[0] for e in slow_got]


def test_a_stall_longer_than_the_liveness_time_is_not_taken_for_a_dead_server(
    start_es: Start,
) -> None:
    """Publishers check the server with HEARTBEAT, which it answers even while a publish waits
    for a stalled subscriber (PING would wait its turn behind the stall)."""
    es = start_es(*LENIENT)
    statuses, fast, slow = held_by_a_stall(es, 100)  # the server's backlog has room for them
    assert Status.DOWN not in statuses
    assert fast == slow == list(range(100))


def test_nothing_queued_is_lost_when_a_long_stall_looks_like_a_dead_server(
    start_es: Start,
) -> None:
    """So many events that the server's backlog fills and it stops reading: then even heartbeats
    go unanswered, the publisher thinks the server dead and reconnects, but it keeps the
    connection that holds its queued events (the address did not change), so none is lost."""
    es = start_es(*LENIENT)
    statuses, fast, slow = held_by_a_stall(es, 600)
    assert fast == slow == list(range(600))
    print(f"\npublisher statuses during a long stall: {[str(s) for s in statuses]}")


def test_a_stalled_drop_mode_subscriber_does_not_grow_the_servers_memory(
    start_es: Start,
) -> None:
    es = start_es("--evict-stalled", "0")  # never evicted: it stays stalled throughout
    topic = subject()
    with (
        Subscriber(es.endpoint, policy="drop", queue_size=1) as stuck,
        # block mode with a short queue: what the server holds for the fast one is small, so the
        # RSS measured is what the stalled one costs
        Subscriber(es.endpoint, queue_size=100) as fast,
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
                if i % 100 == 99:  # so that what waits to be read by a busy server stays small:
                    pub.flush(WAIT)  # the RSS measured is what the stalled subscriber costs
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


def test_a_graceful_stop_says_goodbye_and_subscribers_move_on_at_once(
    start_es: Start, start_ns: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before, subscribers noticed a stopped server only when their heartbeats went unanswered
    # (about 7 s at the defaults). With heartbeats this slow, only the BYE can explain it.
    ns = start_ns()
    first = start_es("--ns", ns.endpoint, naming=True)
    monkeypatch.setenv("NS_ADDRESS", ns.endpoint)
    slow = {"heartbeat": 30.0, "liveness": 300.0}
    statuses: list[Status] = []
    topic = subject()
    with Subscriber(on_status=statuses.append, **slow) as sub:
        sub.subscribe(topic)
        with reading(sub) as got:  # as a program does: the BYE comes in among the events
            assert first.stop() == 0
            wait_until(lambda: Status.DOWN in statuses, WAIT, "the subscriber to see the BYE")
            second = start_es("--ns", ns.endpoint, naming=True)  # another free port
            wait_until(lambda: sub.es_uri == second.endpoint, WAIT, "the subscriber to move")
            wait_until(lambda: sub.recoveries == 1, WAIT, "it to subscribe there")
            with Publisher(second.endpoint) as pub:
                assert pub.publish(topic, "on the new server", confirm=True) == 1
            wait_until(lambda: got, WAIT, "the event from the new server")
        assert [e.msg for e in got] == ["on the new server"]
    assert statuses[-1] is Status.CLOSED
