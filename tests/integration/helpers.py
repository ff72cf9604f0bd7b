"""Helpers shared by the integration tests that load real daemons."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from clients import Event, Publisher, Subscriber
from clients.errors import EsError, NoQuorum
from clients.wire import public_id
from tests.integration.conftest import Daemon, es_command, read_line

WAIT = 60.0
BIG = b"x" * 65536  # large enough that a few hundred fill loopback socket buffers


def run(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """A command run to its end (with a deadline), with extra environment variables."""
    return subprocess.run(
        command, capture_output=True, text=True, timeout=2 * WAIT, env={**os.environ, **env}
    )


@contextlib.contextmanager
def subscriber_process(
    *args: str, stdout: IO[str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    """`es sub ARGS` as a process of its own (what it prints going to `stdout`, if given),
    yielded once it has subscribed; killed (by its PID) at the end if the test has not already
    killed it."""
    out = subprocess.DEVNULL if stdout is None else stdout
    proc = subprocess.Popen(es_command("sub", *args), stdout=out, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        assert "subscribed" in (read_line(proc.stderr, time.monotonic() + WAIT) or "")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(WAIT)
        if proc.stderr is not None:
            proc.stderr.close()


@contextlib.contextmanager
def paused(daemon: Daemon) -> Iterator[None]:
    """SIGSTOP the daemon (one we started) for the block, so that work piles up for it."""
    os.kill(daemon.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(daemon.proc.pid, signal.SIGCONT)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def subscriber_stats(es: Daemon, sid: str) -> dict[str, int]:
    entry: dict[str, int] = next(s for s in es.stats()["subscribers"] if s["id"] == public_id(sid))
    return entry


@contextlib.contextmanager
def reading(sub: Subscriber) -> Iterator[list[Event]]:
    """A fast subscriber: a thread reads every event into the yielded list until the block ends."""
    events: list[Event] = []

    def run() -> None:
        while (event := sub.next()) is not None:
            events.append(event)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield events
    finally:
        sub.abort()
        thread.join(WAIT)


def warm_up(pub: Publisher, subject: str, *subs: Subscriber) -> None:
    """One event through every subscriber: their connections are up before the load starts (until
    then a DEALER queues at most its high-water mark, so a queue of 1 would stall at once)."""
    pub.publish(subject, "warm-up")
    for sub in subs:
        event = sub.next(WAIT)
        assert event is not None and event.msg == "warm-up"


class Telling(Subscriber):
    """A subscriber that keeps, in order, the events next() gave and the losses the server told
    in LOST notices (as numbers), so that a test can check every loss is told once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeline: list[Event | int] = []

    def gap(self, lost: int | None, event: Event | None) -> None:
        if event is None and lost is not None:
            self.timeline.append(lost)

    def next(self, timeout: float | None = None) -> Event | None:
        event = super().next(timeout)
        if event is not None:
            self.timeline.append(event)
        return event


def assert_losses_are_told(timeline: Sequence[Event | int], previous: int = 1) -> None:
    """Every gap in seq is told once: by `lost` on the event after it, or by LOST notices before
    that event; numbers only grow. `previous` is the seq received before the timeline."""
    told = 0
    for item in timeline:
        if isinstance(item, int):
            told += item
            continue
        assert item.seq - previous - 1 == item.lost + told, (previous, item.seq, item.lost, told)
        previous, told = item.seq, 0
    indices = [e.msg[0] for e in timeline if isinstance(e, Event) and isinstance(e.msg, list)]
    assert indices == sorted(indices)


def lost_in(timeline: Sequence[Event | int]) -> int:
    """Every loss told in a timeline: `lost` on events and LOST notices."""
    return sum(item if isinstance(item, int) else item.lost for item in timeline)


@dataclass
class SlowAndFast:
    """A subscriber that will not read (queue of one), a fast one, a publisher, their subject."""

    slow: Telling
    fast: Subscriber
    pub: Publisher
    subject: str


@contextlib.contextmanager
def slow_and_fast(
    es: Daemon,
    slow: dict[str, Any] | None = None,
    fast: dict[str, Any] | None = None,
    pub: dict[str, Any] | None = None,
) -> Iterator[SlowAndFast]:
    """The usual cast of a backpressure test, subscribed to a fresh subject and warmed up; the
    options given are added to the slow one's queue of 1 and the fast one's of 100,000."""
    subject = f"load.{uuid.uuid4().hex[:8]}"
    with (
        Telling(es.endpoint, **{"queue_size": 1, **(slow or {})}) as slow_sub,
        Subscriber(es.endpoint, **{"queue_size": 100_000, **(fast or {})}) as fast_sub,
        Publisher(es.endpoint, **(pub or {})) as publisher,
    ):
        slow_sub.subscribe(subject)
        fast_sub.subscribe(subject)
        warm_up(publisher, subject, slow_sub, fast_sub)
        yield SlowAndFast(slow_sub, fast_sub, publisher, subject)


@dataclass
class Load:
    """What a `publishing` thread did: events accepted by the client, and failed attempts."""

    sent: int = 0
    failures: int = 0


@contextlib.contextmanager
def publishing(
    pub: Publisher, subject: str, *, limit: int = 200_000, seconds: float = 2 * WAIT
) -> Iterator[Load]:
    """Load that goes on across faults: a thread publishes 0, 1, 2, ... on `subject` (about 5,000
    a second at most) until the block ends, and rides over errors while the server is away.
    Bounded in count and in time, like every load loop in the tests."""
    load = Load()
    stop = threading.Event()

    def run() -> None:
        deadline = time.monotonic() + seconds
        while not stop.is_set() and load.sent < limit and time.monotonic() < deadline:
            try:
                pub.publish(subject, load.sent)
            except EsError:  # not accepted: the same number goes again after a pause
                load.failures += 1
                stop.wait(0.05)
                continue
            load.sent += 1
            if load.sent % 50 == 0:
                stop.wait(0.01)  # pacing, so that two shared cores are not swamped

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield load
    finally:
        stop.set()
        thread.join(WAIT)


def accounted(events: Sequence[Event]) -> int | None:
    """Check that a subscriber's stream of 0, 1, 2, ... accounts for every event: each follows the
    one before, or the gap is exactly the `lost` count the server reported, or the event is the
    first after a recovery (`resumed`, a gap of unknown size). Return the index of the first
    resumed event, if any."""
    first_resumed = None
    for index in range(1, len(events)):
        before, event = events[index - 1], events[index]
        if event.resumed:
            assert event.msg > before.msg, f"out of order at {index}: {before.msg}, {event.msg}"
            first_resumed = index if first_resumed is None else first_resumed
        else:
            gap = event.msg - before.msg - 1
            assert gap == event.lost, f"{gap} missing before {event.msg}, {event.lost} reported"
    return first_resumed


def _pipe(src: socket.socket, dst: socket.socket, seen: bytearray | None) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            if seen is not None:
                seen.extend(data)
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relay(
    listen: tuple[str, int], target: tuple[str, int], seen: bytearray | None = None
) -> Iterator[None]:
    """A TCP forwarder on loopback: what a NAT gateway does for a port. Every connection made to
    `listen` is carried to `target`; with `seen`, every byte in either direction is kept there
    too (what someone on the wire could read)."""
    server = socket.create_server(listen)
    server.settimeout(WAIT)
    threads: list[threading.Thread] = []
    conns: list[socket.socket] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            while True:
                inside, _ = server.accept()
                outside = socket.create_connection(target, timeout=WAIT)
                inside.settimeout(None)
                outside.settimeout(None)
                conns.extend([inside, outside])
                for a, b in ((inside, outside), (outside, inside)):
                    t = threading.Thread(target=_pipe, args=(a, b, seen), daemon=True)
                    t.start()
                    threads.append(t)

    acceptor = threading.Thread(target=run, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        server.close()
        acceptor.join(WAIT)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the pipes' blocked recv(); close() does not
            conn.close()
        for t in threads:
            t.join(WAIT)


def take(sub: Subscriber, count: int) -> list[Event]:
    """`count` events from a Python subscriber (fewer if they do not come), each waited for up
    to one second, all within WAIT."""
    got: list[Event] = []
    deadline = time.monotonic() + WAIT
    while len(got) < count and time.monotonic() < deadline:
        event = sub.next(timeout=1.0)
        if event is not None:
            got.append(event)
    return got


def read_all(sub: Telling, published: int, pause: float = 0.0) -> None:
    """Read until every event published to `sub` after its warm-up was received or told lost,
    pausing `pause` seconds after each event (a slow reader)."""
    deadline = time.monotonic() + WAIT
    accounted, seen = 0, 1  # counted so far, and where in the timeline (after the warm-up)
    while True:
        new = sub.timeline[seen:]  # only what came since: a long timeline is not summed again
        seen += len(new)
        accounted += sum(1 for e in new if isinstance(e, Event)) + lost_in(new)
        if accounted >= published:
            return
        assert time.monotonic() < deadline, f"{accounted} of {published} accounted for"
        if sub.next(0.2) is not None and pause:
            threading.Event().wait(pause)


def check_told(es: Daemon, sub: Telling, published: int) -> None:
    timeline = sub.timeline[1:]
    assert_losses_are_told(timeline)
    received = [e for e in timeline if isinstance(e, Event)]
    assert [e.msg for e in received] == sorted(e.msg for e in received)
    assert len(received) + lost_in(timeline) == published
    assert subscriber_stats(es, sub.sid)["dropped"] == lost_in(timeline) == sub.lost


class Cuttable:
    """A TCP forwarder on loopback that a test can cut (every connection closed, new ones
    refused at once) and heal: a network partition between two processes, of the test's own."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        self._cut = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                inside, _ = self._server.accept()
                if self._cut.is_set():
                    inside.close()  # refused: the other side is unreachable
                    continue
                try:
                    outside = socket.create_connection(self.target, timeout=WAIT)
                except OSError:
                    inside.close()
                    continue
                for conn in (inside, outside):
                    conn.settimeout(None)
                with self._lock:
                    self._conns += [inside, outside]
                for a, b in ((inside, outside), (outside, inside)):
                    threading.Thread(target=_pipe, args=(a, b, None), daemon=True).start()

    def cut(self) -> None:
        """Close every connection through it, and refuse new ones until `heal`."""
        self._cut.set()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def heal(self) -> None:
        """Take connections again."""
        self._cut.clear()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        self._acceptor.join(WAIT)
        self.cut()


def retain_through_elections(pub: Publisher, subject: str, value: object) -> None:
    """A confirmed retained publish on a node of a cluster, tried again while the stream of
    retained events elects a leader (each try refused with NoQuorum after its 7 s)."""
    until = time.monotonic() + 90.0
    while True:
        try:
            pub.publish(subject, value, retain=True, confirm=True)
            return
        except NoQuorum:
            if time.monotonic() > until:
                raise
