"""A cluster on one machine: three nats-servers in a NATS cluster on loopback, three `es` nodes
(a, b, c), each connected to its own nats-server, at the default settings.

- A publish on one node reaches exact and pattern subscribers on another once, spelled as sent;
  10,000 events on several subjects arrive in the order published.
- Drop accounting across nodes: what a drop-mode subscriber reads plus what it is told it lost
  is what another node published, and what its own node counted as dropped.
- A stall on one node holds other nodes' events there only up to half the link's bound, then
  they go on without waiting: none lost to the bound, the stalled subscriber's losses exact.
- Durable subscribers and queue groups take other nodes' events on their own node.
- Retained events reach new subscriptions on every node (through JetStream), and expire there.
- Meta-events travel the backbone, each naming the node it happened on.
- A SUB's answer means every other node knows: a publish on another node right after it is not
  missed (the interest barrier), 50 times over.
- A node listens on the backbone only for what its subscribers want: with none, its NATS
  connection gets (almost) nothing of a 10,000-event run.
- A node stopped until NATS cuts it off tells its subscribers: their next event says resumed.
- A node that cannot reach NATS at start says so and exits with code 5.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from clients import Event, Publisher, Subscriber
from es.cluster.natsd import MAX_PENDING, NatsServer, start_cluster
from tests.integration.conftest import Daemon, es_command, spawn_es, wait_until
from tests.integration.helpers import (
    Telling,
    check_told,
    lost_in,
    paused,
    read_all,
    take,
    warm_up,
)

pytestmark = pytest.mark.skipif(
    __import__("es.cluster.natsd", fromlist=["binary"]).binary() is None,
    reason="nats-server is not installed in this venv (make test installs it)",
)


class Cluster:
    def __init__(self, nats: list[NatsServer], nodes: dict[str, Daemon]) -> None:
        self.nats = nats
        self.nodes = nodes

    def __getitem__(self, name: str) -> Daemon:
        return self.nodes[name]


def cluster_stats(node: Daemon) -> dict[str, Any]:
    stats: dict[str, Any] = node.stats()["server"]["cluster"]
    return stats


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    nats = start_cluster(3)
    nodes: dict[str, Daemon] = {}
    try:
        for name, server in zip("abc", nats, strict=True):
            nodes[name] = spawn_es("--cluster", server.url, "--node-name", name)
        for node in nodes.values():  # each knows the two others (their heartbeats)
            wait_until(lambda n=node: len(cluster_stats(n)["peers"]) == 2, what="peers")
        yield Cluster(nats, nodes)
    finally:
        for node in nodes.values():
            node.stop()
            node.log_path.unlink(missing_ok=True)
        for server in nats:
            server.stop()


def test_a_publish_on_one_node_reaches_exact_and_pattern_subscribers_on_another_once(
    cluster: Cluster,
) -> None:
    with Subscriber(cluster["b"].endpoint) as sub, Publisher(cluster["a"].endpoint) as pub:
        sub.subscribe("Quotes.IBM")
        sub.subscribe_match(r"quotes\..*")  # overlaps the exact one: still once
        pub.publish("QUOTES.ibm", 1)
        pub.publish("quotes.SAP", 2)
        got = take(sub, 2)
        assert [(e.subject, e.msg) for e in got] == [("QUOTES.ibm", 1), ("quotes.SAP", 2)]
        pub.publish("quotes.end", 3)
        assert [e.msg for e in take(sub, 1)] == [3]  # nothing more came between
    stats = cluster_stats(cluster["b"])
    assert stats["duplicates"] >= 1 and stats["bad"] == 0 and stats["connected"]


def test_durable_subscribers_and_queue_groups_take_other_nodes_events_on_their_own_node(
    cluster: Cluster,
) -> None:
    b = cluster["b"].endpoint
    with (
        Subscriber(b, durable="ledger") as durable,
        Subscriber(b, group="workers") as one,
        Subscriber(b, group="workers") as two,
        Publisher(cluster["a"].endpoint) as pub,
    ):
        durable.subscribe("work.items")
        one.subscribe("work.items")
        two.subscribe("work.items")
        for n in range(100):
            pub.publish("work.items", n)
        assert [e.msg for e in take(durable, 100)] == list(range(100))
        shared: list[int] = []
        deadline = time.monotonic() + 60
        while len(shared) < 100 and time.monotonic() < deadline:
            for member in (one, two):
                event = member.next(timeout=0.05)
                if event is not None:
                    shared.append(event.msg)
        assert sorted(shared) == list(range(100))  # each to one member, once, none lost


def test_retained_events_reach_new_subscriptions_on_every_node_and_expire_there(
    cluster: Cluster,
) -> None:
    with Publisher(cluster["a"].endpoint) as pub:
        pub.publish("state.boiler", {"on": True}, retain=True, confirm=True)
        pub.publish("state.lamp", "short-lived", retain=True, ttl=2.0, confirm=True)
    for name in "bc":  # through the cluster's JetStream stream, to every node
        wait_until(lambda n=name: _retained(cluster[n]) >= 2, what=f"retained on {name}")
    with Subscriber(cluster["c"].endpoint) as sub:
        sub.subscribe_match(r"state\.")
        kept = {e.subject: (e.msg, e.retained) for e in take(sub, 2)}
    assert kept == {"state.boiler": ({"on": True}, True), "state.lamp": ("short-lived", True)}
    with Publisher(cluster["b"].endpoint) as pub:  # replaced from another node
        pub.publish("state.boiler", {"on": False}, retain=True, confirm=True)
    wait_until(lambda: _retained(cluster["c"]) == 1, what="the lamp's to expire on c")
    with Subscriber(cluster["c"].endpoint) as sub:
        sub.subscribe("state.boiler")
        (event,) = take(sub, 1)
        assert (event.msg, event.retained) == ({"on": False}, True)
    assert cluster_stats(cluster["c"])["jetstream"]


def _retained(node: Daemon) -> int:
    count: int = node.stats()["server"]["retained"]
    return count


def test_meta_events_travel_the_backbone_naming_their_node(cluster: Cluster) -> None:
    with Subscriber(cluster["b"].endpoint) as watcher:  # it hears of itself first, on node b
        watcher.subscribe_match(r"^\$es\.(subscriber\.joined|service\.)")
        with Subscriber(cluster["a"].endpoint, name="meta-svc") as joining:
            joining.subscribe("meta.x")
            seen = {e.subject: e.msg for e in take(watcher, 3) if e.msg["node"] == "a"}
            assert seen["$es.subscriber.joined"]["node"] == "a"
            assert seen["$es.service.available"] == {
                "name": "meta-svc",
                "id": joining.id,
                "node": "a",
            }
        gone = take(watcher, 1)[0]  # it unsubscribed on closing
        assert (gone.subject, gone.msg["name"], gone.msg["node"]) == (
            "$es.service.gone",
            "meta-svc",
            "a",
        )


def test_ten_thousand_events_on_several_subjects_arrive_in_order(cluster: Cluster) -> None:
    subjects = ["order.a", "order.b", "Order.C", "order.d.x"]
    with Subscriber(cluster["c"].endpoint) as sub, Publisher(cluster["a"].endpoint) as pub:
        sub.subscribe(subjects[:2])
        sub.subscribe_match(r"order\.(c|d)")
        for n in range(10_000):
            pub.publish(subjects[n % 4], n)
        got = take(sub, 10_000)
    assert [e.msg for e in got] == list(range(10_000))
    assert [e.subject for e in got[:4]] == subjects


def test_a_publish_right_after_subscribe_returns_on_another_node_is_not_missed(
    cluster: Cluster,
) -> None:
    with Publisher(cluster["a"].endpoint) as pub:
        for n in range(50):
            with Subscriber(cluster["c"].endpoint) as sub:
                # New backbone subjects each time, enough that node c takes a while to listen
                # on all of them: the last is the one published on.
                sub.subscribe([f"barrier.{n}.{k}" for k in range(100)])
                pub.publish(f"barrier.{n}.99", n)
                assert [e.msg for e in take(sub, 1)] == [n], f"round {n}"


def test_drop_accounting_across_nodes_received_plus_lost_is_what_was_published(
    cluster: Cluster,
) -> None:
    with (
        Telling(cluster["b"].endpoint, policy="drop", queue_size=10) as sub,
        Publisher(cluster["a"].endpoint) as pub,
    ):
        sub.subscribe("drops")
        warm_up(pub, "drops", sub)
        before = cluster_stats(cluster["b"])["received"]
        for n in range(5_000):  # it reads nothing meanwhile
            pub.publish("drops", n)
        pub.flush()
        arrived = before + 5_000
        wait_until(lambda: cluster_stats(cluster["b"])["received"] >= arrived, what="all at b")
        read_all(sub, 5_000)
        check_told(cluster["b"], sub, 5_000)  # and equal to node b's own count of drops
        assert lost_in(sub.timeline) > 0 and not any(
            e.resumed for e in sub.timeline if isinstance(e, Event)
        )


def test_a_stall_holds_other_nodes_events_only_so_far_then_losses_are_exact(
    cluster: Cluster,
) -> None:
    """A block-mode subscriber on node b that reads nothing stalls b for up to its max_stall.
    Other nodes' events wait at b until half the link's bound (50,000), then go on without
    waiting: b loses none of more than the link's bound (no overflow, no `resumed`), its other
    subscriber gets every one in order, and the stalled one is told exactly what it lost."""
    count, b = 120_000, cluster["b"]  # past the link's bound of 100,000 events
    before = cluster_stats(b)
    with (
        Telling(b.endpoint, policy="block", max_stall=30.0) as slow,  # a queue of 1000
        Subscriber(b.endpoint, policy="drop", queue_size=100_000) as fast,
        Publisher(cluster["a"].endpoint) as pub,
    ):
        for sub in (slow, fast):
            sub.subscribe("hurry")
        warm_up(pub, "hurry", slow, fast)
        got: list[Event] = []

        def read() -> None:
            until = time.monotonic() + 180.0
            while len(got) < count and time.monotonic() < until:
                if (event := fast.next(1.0)) is not None:
                    got.append(event)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for n in range(count):  # the slow one reads nothing meanwhile
            pub.publish("hurry", n)
        pub.flush()
        _wait_still(got)  # all of it at b: taken, or waiting for the stall
        after = cluster_stats(b)
        assert (after["overflow"], after["gaps"]) == (before["overflow"], before["gaps"])
        read_all(slow, count)
        check_told(b, slow, count)  # and equal to node b's own count of its drops
        assert lost_in(slow.timeline) > 0
        assert not any(e.resumed for e in slow.timeline if isinstance(e, Event))
        reader.join(180)
    assert [e.msg for e in got] == list(range(count))
    assert not any(e.lost or e.resumed for e in got)


def _wait_still(events: list[Event], still: float = 2.0) -> None:
    """Return once `events` has not grown for `still` seconds (within a minute)."""
    until, seen, since = time.monotonic() + 60.0, -1, time.monotonic()
    while time.monotonic() < until:
        if len(events) != seen:
            seen, since = len(events), time.monotonic()
        elif time.monotonic() - since >= still:
            return
        threading.Event().wait(0.1)
    raise AssertionError(f"still receiving after a minute ({len(events)} events)")


def _delivered_to(server: NatsServer, client_name: str) -> int:
    """Messages the nats-server sent to the named client connection."""
    with urllib.request.urlopen(f"{server.monitor}/connz", timeout=5) as reply:
        connections = json.load(reply)["connections"]
    return sum(c["out_msgs"] for c in connections if c.get("name") == client_name)


def _pending(server: NatsServer, client_name: str) -> int:
    """Bytes the nats-server holds for the named client, not yet written to it."""
    with urllib.request.urlopen(f"{server.monitor}/connz", timeout=5) as reply:
        found = [c for c in json.load(reply)["connections"] if c.get("name") == client_name]
    return sum(c.get("pending_bytes", 0) for c in found)


def test_a_node_without_subscribers_gets_almost_nothing(cluster: Cluster) -> None:
    before = _delivered_to(cluster.nats[2], "es node c")
    with Subscriber(cluster["b"].endpoint) as sub, Publisher(cluster["a"].endpoint) as pub:
        sub.subscribe("quiet")
        for n in range(10_000):
            pub.publish("quiet", n)
        assert len(take(sub, 10_000)) == 10_000
    after = _delivered_to(cluster.nats[2], "es node c")
    assert after - before < 100, after - before  # heartbeats and barriers, no events


def test_a_node_stopped_until_nats_cuts_it_off_tells_its_subscribers(cluster: Cluster) -> None:
    with Subscriber(cluster["c"].endpoint) as sub, Publisher(cluster["a"].endpoint) as pub:
        sub.subscribe("stopped")
        pub.publish("stopped", "before")
        assert [e.msg for e in take(sub, 1)] == ["before"]
        gaps = cluster_stats(cluster["c"])["gaps"]
        big, sent = b"x" * 100_000, 0
        full = MAX_PENDING - (4 << 20)  # NATS holds at most MAX_PENDING for one that does not read
        with paused(cluster["c"]):
            while _pending(cluster.nats[2], "es node c") < full and sent < 4_000:
                for _ in range(100):
                    pub.publish("stopped", big)
                sent += 100
                pub.flush()
            for _ in range(100):  # over what NATS holds for it: it drops them, and cuts it off
                pub.publish("stopped", big)
            sent += 100
            pub.flush()
        wait_until(lambda: cluster_stats(cluster["c"])["gaps"] > gaps, what="a gap on node c")
        wait_until(lambda: cluster_stats(cluster["c"])["connected"], what="node c back")
        pub.publish("stopped", "after")
        got = _until(sub, "after")
        assert any(e.resumed for e in got), "the loss was not told"
        assert len(got) < sent + 2  # some were lost: NATS cut node c off
    assert wait_until(lambda: len(cluster_stats(cluster["c"])["peers"]) == 2, what="peers")


def _until(sub: Subscriber, last: object) -> list[Event]:
    """Events until the one whose message is `last` (each waited for up to 30 s)."""
    got: list[Event] = []
    while not got or got[-1].msg != last:
        event = sub.next(timeout=30.0)
        assert event is not None, f"no {last!r} after {len(got)} events"
        got.append(event)
    return got


def test_a_node_that_cannot_reach_nats_says_so_and_exits_5(cluster: Cluster) -> None:
    nowhere = cluster.nats[0].monitor.replace("http://", "nats://")  # not a NATS port
    command = es_command("serve", "-p", "0", "-N", "--cluster", nowhere, "--node-name", "x")
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 5, done.stderr
    assert "cannot connect to NATS" in done.stderr or "no NATS server" in done.stderr
