"""Hostile input at volume: 100,000 random and mutated frame sets to each live daemon, then an
ordinary publish/subscribe round that must still deliver every event, in order, while the
daemons' memory stays flat. The frames are reproducible (a fixed seed). And a flood of valid
publishes, which must not keep another client waiting until it is all handled."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import zmq

from clients import Publisher, Subscriber
from clients.naming import NameServer
from clients.wire import PubItem, Publish, encode
from tests.integration.conftest import Daemon, wait_until
from tests.integration.helpers import WAIT, paused, rss_bytes

VECTORS = json.loads((Path(__file__).parents[2] / "clients/wire/vectors.json").read_text())
FRAME_SETS = 100_000
SOCKETS = 4  # several connections, as several hostile clients would be
Start = Callable[..., Daemon]


def seeds(kinds: set[str]) -> list[list[bytes]]:
    """Every frame set of the vectors for these kinds: valid, invalid and refused."""
    found = []
    for section in ("valid", "invalid", "refused"):
        for vector in VECTORS[section]:
            if vector["kind"] in kinds and vector["frames"]:
                found.append([bytes.fromhex(f) for f in vector["frames"]])
    return found


def mutate(rng: random.Random, frames: list[bytes]) -> list[bytes]:
    frames = list(frames)
    match rng.randrange(7):
        case 0:  # garbage
            return [rng.randbytes(rng.randrange(64)) for _ in range(rng.randrange(1, 4))]
        case 1:  # flip bytes
            head = bytearray(frames[0])
            for _ in range(rng.randrange(1, 4)):
                if head:
                    head[rng.randrange(len(head))] = rng.randrange(256)
            frames[0] = bytes(head)
        case 2:  # cut the header short
            frames[0] = frames[0][: rng.randrange(len(frames[0]) + 1)]
        case 3:  # extra bytes after the header
            frames[0] += rng.randbytes(rng.randrange(1, 8))
        case 4:  # a frame too many
            frames.append(rng.randbytes(rng.randrange(16)))
        case 5:  # a frame too few
            frames = frames[:-1] or [b""]
        case _:  # sent as it is
            pass
    return frames


def frame_sets(kinds: set[str], count: int, seed: int) -> Iterator[list[bytes]]:
    rng = random.Random(seed)
    pool = seeds(kinds)
    for _ in range(count):
        yield mutate(rng, rng.choice(pool))


def flood(endpoint: str, messages: Iterator[list[bytes]]) -> int:
    """Send every message over a few DEALERs without reading replies (the server drops replies
    to a client that does not read them)."""
    ctx = zmq.Context.instance()
    socks: list[zmq.Socket[bytes]] = []
    sent = 0
    try:
        for _ in range(SOCKETS):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(WAIT * 1000))
            sock.setsockopt(zmq.RCVHWM, 100)
            sock.connect(endpoint)
            socks.append(sock)
        for i, frames in enumerate(messages):
            socks[i % SOCKETS].send_multipart(frames)
            sent += 1
    finally:
        for sock in socks:
            sock.close()
    return sent


def test_the_event_server_survives_100k_hostile_frame_sets(start_es: Start) -> None:
    es = start_es("--liveness", "2")  # subscribers made by lucky mutations go soon
    kinds = {"request"}
    assert flood(es.endpoint, frame_sets(kinds, FRAME_SETS // 5, seed=1)) == FRAME_SETS // 5
    warm = rss_bytes(es.proc.pid)
    sent: list[int] = []
    flooder = threading.Thread(
        target=lambda: sent.append(flood(es.endpoint, frame_sets(kinds, FRAME_SETS, seed=2)))
    )
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint) as pub:
        sub.subscribe("during.the.flood")
        flooder.start()
        worst = 0.0
        for i in range(200):  # an ordinary client is served while the flood goes on
            started = time.monotonic()
            assert pub.publish("during.the.flood", i, confirm=True, timeout=WAIT) == 1
            worst = max(worst, time.monotonic() - started)
        still_flooding = flooder.is_alive()
        flooder.join(WAIT * 5)
        pub.publish_many([("during.the.flood", i) for i in range(200, 1200)])
        events = [sub.next(WAIT) for _ in range(1200)]
    after = rss_bytes(es.proc.pid)
    print(
        f"\nes: slowest confirmed publish {worst * 1000:.0f} ms during a flood "
        f"(still flooding after 200: {still_flooding}); RSS {warm >> 20}->{after >> 20} MiB"
    )
    assert sent == [FRAME_SETS]
    assert [e.msg for e in events if e is not None] == list(range(1200))
    assert all(e is not None and e.lost == 0 for e in events)
    assert after - warm < 64 * 2**20


def test_a_flood_of_valid_publishes_does_not_starve_another_client(start_es: Start) -> None:
    """Fair processing: while the server is paused, four connections queue 400,000 valid events
    for it, and then an ordinary client asks for a confirmed publish. When the server resumes, the
    ordinary client is answered while the flood is still being handled, not after all of it."""
    es = start_es()
    batch = tuple(PubItem(("flood.for.nobody",), 0, b"x") for _ in range(20))
    flood_events = SOCKETS * 5000 * len(batch)
    ctx = zmq.Context.instance()
    socks = [ctx.socket(zmq.DEALER) for _ in range(SOCKETS)]
    answered: list[int | None] = []
    try:
        for sock in socks:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 0)  # queue all of it on our side while the server sleeps
            sock.connect(es.endpoint)
        with Subscriber(es.endpoint) as sub, Publisher(es.endpoint, timeout=WAIT) as pub:
            sub.subscribe("not.the.flood")
            assert pub.publish("not.the.flood", "warm-up", confirm=True) == 1
            before = es.stats()["server"]["events_published"]
            ordinary = threading.Thread(
                target=lambda: answered.append(pub.publish("not.the.flood", "me", confirm=True))
            )
            with paused(es):
                for i in range(flood_events // len(batch)):
                    socks[i % SOCKETS].send_multipart(encode(Publish(0, False, batch)))
                ordinary.start()
                wait_until(lambda: pub._control._lock.locked(), WAIT, "the request to be sent")
            ordinary.join(WAIT)
            handled = es.stats()["server"]["events_published"] - before
            done = lambda: es.stats()["server"]["events_published"] - before > flood_events  # noqa: E731
            wait_until(done, WAIT * 2, "the flood to be handled")
            events = [sub.next(WAIT) for _ in range(2)]
    finally:
        for sock in socks:
            sock.close()
    print(f"\nthe ordinary client was answered after {handled:,} of {flood_events:,} flood events")
    assert answered == [1]
    assert [e.msg for e in events if e is not None] == ["warm-up", "me"]
    assert handled < flood_events


def test_the_name_server_survives_100k_hostile_frame_sets(start_ns: Start) -> None:
    ns = start_ns()
    kinds = {"ns-request", "request"}
    assert flood(ns.endpoint, frame_sets(kinds, FRAME_SETS // 5, seed=3)) == FRAME_SETS // 5
    warm = rss_bytes(ns.proc.pid)
    assert flood(ns.endpoint, frame_sets(kinds, FRAME_SETS, seed=4)) == FRAME_SETS
    with NameServer(ns.endpoint, timeout=WAIT) as proxy:
        proxy.register(":Default.after-the-flood", "tcp://127.0.0.1:1", replace=True)
        assert proxy.lookup(":Default.after-the-flood") == "tcp://127.0.0.1:1"
        assert proxy.lookup(":Pyro.NameServer") == ns.endpoint
    after = rss_bytes(ns.proc.pid)
    print(f"\nns: RSS {warm >> 20} -> {after >> 20} MiB over {FRAME_SETS} frame sets")
    assert after - warm < 64 * 2**20
