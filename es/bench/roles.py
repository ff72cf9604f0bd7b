"""The processes of a benchmark: publishers and subscribers, ours and plain pyzmq's.

Each role runs as `python -m es.bench.roles ROLE`, reads its arguments as one JSON line on stdin
and talks to the orchestrator in JSON lines: one `{"ready": ...}` line on stdout when set up,
then (publishers) a `go` line on stdin, and at the end one result line. Every loop is bounded in
count and in time, and every receive has a timeout, so no role can run forever.

Payloads carry their send time (CLOCK_MONOTONIC, which every process on the machine shares) in
their first 8 bytes, so subscribers can measure latency. The last event of a run is END, which
tells subscribers the run is over (block mode keeps order, so it comes after everything else).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import zmq

__all__ = ["END", "main"]

END = b"END"
_STAMP = struct.Struct("<q")
# A subscriber waits this long for the first event and, after it, for each next one.
_IDLE = 10.0
# The reference publisher repeats END this many times (PUB may drop some of them).
_END_REPEATS = 20
# Times a subscription refused for the connection's budget is tried again, a second apart.
_BUDGET_TRIES = 10


def cpu_seconds() -> float:
    """CPU time this process has used (user and system)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ready(line: dict[str, Any]) -> float:
    """Say the role is ready; the CPU time so far, so that a result counts only what came
    after (start-up and subscribing are not the work a benchmark measures)."""
    emit(line)
    return cpu_seconds()


def payload(size: int) -> bytes:
    """A payload of `size` bytes stamped with the time now."""
    return _STAMP.pack(time.monotonic_ns()) + b"x" * max(0, size - _STAMP.size)


def sent_at(data: bytes) -> int:
    """The send time stamped into a payload, in nanoseconds of CLOCK_MONOTONIC."""
    stamp: int = _STAMP.unpack_from(data)[0]
    return stamp


def emit(line: dict[str, Any]) -> None:
    """Write a JSON line for the orchestrator."""
    print(json.dumps(line), flush=True)


def wait_for_go() -> None:
    """Block until the orchestrator says go (and leave if it closes stdin instead)."""
    line = sys.stdin.readline()
    if line.strip() != "go":
        raise SystemExit("bench role: stopped before go")


def schedule(count: int, rate: float | None, seconds: float) -> Iterator[tuple[int, float]]:
    """Indices 0..count-1, each with how long to wait before it so that they go at `rate` a
    second if given, stopping early after `seconds`. The caller waits (a sleep, or an await)."""
    start = time.monotonic()
    interval = 0.0 if not rate else 1.0 / rate
    for i in range(count):
        now = time.monotonic()
        if now - start > seconds:
            return
        yield i, max(0.0, start + i * interval - now) if interval else 0.0


def paced(count: int, rate: float | None, seconds: float) -> Iterator[int]:
    """The indices of `schedule`, waited for with a sleep."""
    for i, wait in schedule(count, rate, seconds):
        if wait:
            time.sleep(wait)
        yield i


class Run:
    """What a publisher did: how many events, when it started and stopped, its CPU time."""

    def __init__(self) -> None:
        self.sent = 0
        self.start = time.monotonic()
        self.published = self.start
        self.cpu = cpu_seconds()

    def result(self, flushed: float) -> dict[str, Any]:
        """The publisher's result line; `flushed` is when the server had handled it all."""
        return {
            "result": "pub",
            "sent": self.sent,
            "publish_seconds": self.published - self.start,
            "flushed_seconds": flushed - self.start,
            "cpu": cpu_seconds() - self.cpu,
        }


def publish_loop(args: dict[str, Any], send: Callable[[int, bytes], object]) -> Run:
    """Send `count` payloads of `size` bytes (stamped each with the time when measuring
    latency), at `rate` a second or as fast as possible, for at most `seconds`."""
    size = int(args.get("size", 100))
    body, stamp = payload(size), bool(args.get("latency"))
    run = Run()
    for i in paced(int(args["count"]), args.get("rate"), float(args["seconds"])):
        send(i, payload(size) if stamp else body)
        run.sent += 1
    run.published = time.monotonic()
    return run


class Tally:
    """What one subscriber saw: how many events, when the first and last came, latencies."""

    def __init__(self, latency: bool) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.lost = 0
        self.ended = False
        self.latencies: list[int] | None = [] if latency else None

    def see(self, data: bytes, lost: int = 0) -> None:
        """Count one payload (END only marks the end), with the events lost before it."""
        now = time.monotonic_ns()
        if data[:3] == END:
            self.ended = True
            return
        if not self.count:
            self.first = now / 1e9
        self.last = now / 1e9
        self.count += 1
        self.lost += lost
        if self.latencies is not None:
            self.latencies.append(now - sent_at(data))

    def result(self) -> dict[str, Any]:
        """What this subscriber saw, for its result line."""
        out: dict[str, Any] = {
            "received": self.count,
            "first": self.first,
            "last": self.last,
            "lost": self.lost,
            "ended": self.ended,
        }
        if self.latencies is not None:
            out["latencies_ns"] = self.latencies
        return out


# --- ours -----------------------------------------------------------------------------------


def our_sub(args: dict[str, Any]) -> None:
    """`identities` subscribers in this process, each on `subjects` and `patterns`; with
    `stall`, they never read (until stdin closes); else each reads until END or idle."""
    from clients import Event, Subscriber

    class Counting(Subscriber):
        tally = Tally(False)

        def event(self, event: Event) -> None:
            self.tally.see(event.payload, event.lost)

    ctx: zmq.Context[Any] = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 8 * int(args.get("identities", 1)) + 64)
    subs = []
    tallies: dict[str, Tally] = {}
    identities = int(args.get("identities", 1))
    for k in range(identities):
        subjects, patterns = _share(args, k, identities)
        sub = Counting(
            args["es"],
            ident=os.environ.get("ES_IDENT"),
            policy=args.get("policy"),
            queue_size=args.get("queue"),
            max_stall=args.get("max_stall"),
            durable=args.get("durable"),
            context=ctx,
        )
        subs.append(sub)
        sub.tally = tallies[sub.sid] = Tally(bool(args.get("latency")))
        history = args.get("history")  # SPEC 7.11: asked with each subscription
        for start in range(0, len(subjects), 1000):
            _within_budget(partial(sub.subscribe, history=history), subjects[start : start + 1000])
        for start in range(0, len(patterns), 1000):
            chunk = patterns[start : start + 1000]
            _within_budget(partial(sub.subscribe_match, history=history), chunk)
    cpu = ready({"ready": "sub", "sids": list(tallies)})
    try:
        if args.get("stall"):
            sys.stdin.readline()  # never read events: the orchestrator says when to quit
        else:
            _read_all(subs, tallies)
        emit(
            {
                "result": "sub",
                "cpu": cpu_seconds() - cpu,
                "subs": [t.result() for t in tallies.values()],
            }
        )
    finally:
        for sub in subs:
            sub.close()
        ctx.destroy(linger=0)


def _within_budget(subscribe: Callable[[list[str]], object], names: list[str]) -> None:
    """Subscribe; if the server refuses because this connection spent its budget of work (many
    patterns compiled in a row), wait for the budget to refill and try again, a few times."""
    from clients import LimitExceeded

    for attempt in range(_BUDGET_TRIES):
        try:
            subscribe(names)
            return
        except LimitExceeded:
            if attempt == _BUDGET_TRIES - 1:
                raise
            time.sleep(1.0)  # the budget refills in a second (SPEC 9)


def _share(args: dict[str, Any], k: int, of: int) -> tuple[list[str], list[str]]:
    """The subjects and patterns of identity `k`: all of them, or with `split` its share."""
    subjects, patterns = list(args.get("subjects", [])), list(args.get("patterns", []))
    if not args.get("split"):
        return subjects, patterns
    return subjects[k::of], patterns[k::of]


def _read_all(subs: list[Any], tallies: dict[str, Tally]) -> None:
    """Read every subscriber's inbox until each has seen END, or nothing came for _IDLE s."""
    poller = zmq.Poller()
    by_socket = {}
    for sub in subs:
        poller.register(sub.socket, zmq.POLLIN)
        by_socket[sub.socket] = sub
    waiting = {sub.sid for sub in subs}
    while waiting:
        ready = poller.poll(int(_IDLE * 1000))
        if not ready:
            return
        for socket, _ in ready:
            sub = by_socket[socket]
            sub.process_pending()
            if tallies[sub.sid].ended:
                waiting.discard(sub.sid)
                poller.unregister(socket)


def our_pub(args: dict[str, Any]) -> None:
    """Publish `count` events (at `rate` a second, or as fast as possible), then END."""
    from clients import Publisher

    pub = Publisher(args["es"], ident=os.environ.get("ES_IDENT"), serializer="raw")
    pub.ping()
    subjects = _subjects(args)
    emit({"ready": "pub"})
    try:
        wait_for_go()
        run = publish_loop(args, lambda i, data: pub.publish(subjects(i), data))
        pub.publish(subjects(0), END)
        pub.flush(60.0)
        emit(run.result(flushed=time.monotonic()))
    finally:
        pub.close()


def _subjects(args: dict[str, Any]) -> Callable[[int], str]:
    subject = str(args.get("subject", "bench.data"))
    if args.get("fresh"):
        return lambda i: f"{subject}.{i}"
    return lambda i: subject


# --- the reference: plain pyzmq PUB -> SUB, no broker ----------------------------------------


def ref_pub(args: dict[str, Any]) -> None:
    """Bind a PUB socket, say hello until the orchestrator says go (so every SUB has joined),
    publish `[subject, payload]` messages, then END a few times."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.bind("tcp://127.0.0.1:0")
    emit({"ready": "refpub", "endpoint": sock.getsockopt_string(zmq.LAST_ENDPOINT)})
    subject = str(args.get("subject", "bench.data")).encode()
    go = threading.Event()

    def wait() -> None:
        wait_for_go()
        go.set()

    threading.Thread(target=wait, daemon=True).start()
    deadline = time.monotonic() + 120
    while not go.wait(0.01) and time.monotonic() < deadline:
        sock.send_multipart([b"hello", b""])
    run = publish_loop(args, lambda i, data: sock.send_multipart([subject, data]))
    for _ in range(_END_REPEATS):
        sock.send_multipart([subject, END])
        time.sleep(0.01)
    emit(run.result(flushed=run.published))
    sock.close()
    ctx.term()


def ref_sub(args: dict[str, Any]) -> None:
    """Subscribe to the subject and to hello; ready once a hello arrived; count until END."""
    ctx: zmq.Context[Any] = zmq.Context()
    sock = ctx.socket(zmq.SUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SUBSCRIBE, b"hello")
    sock.setsockopt(zmq.SUBSCRIBE, str(args.get("subject", "bench.data")).encode())
    sock.connect(args["endpoint"])
    tally = Tally(bool(args.get("latency")))
    cpu = ready({"ready": "refsub"}) if sock.poll(60_000) else cpu_seconds()
    # The tightest loop pyzmq allows: a blocking receive with a timeout option, no poll (which
    # would build a poller for every message and make the reference look slower than it is).
    sock.setsockopt(zmq.RCVTIMEO, int(_IDLE * 1000))
    recv = sock.recv_multipart
    with contextlib.suppress(zmq.Again):  # _IDLE seconds with nothing: the publisher is gone
        while not tally.ended:
            subject, data = recv()
            if subject != b"hello":
                tally.see(data)
    emit({"result": "sub", "cpu": cpu_seconds() - cpu, "subs": [tally.result()]})
    sock.close()
    ctx.term()


def ref_relay(args: dict[str, Any]) -> None:
    """A forwarder between the reference publisher and its subscribers: a SUB connected to the
    publisher, a PUB they connect to, and zmq.proxy (in libzmq, no Python per message) between.
    It shows what one more hop costs with no broker logic at all. Runs until stdin closes."""
    ctx: zmq.Context[Any] = zmq.Context()
    front, back = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    front.setsockopt(zmq.SUBSCRIBE, b"")
    front.connect(args["endpoint"])
    back.bind("tcp://127.0.0.1:0")
    threading.Thread(target=zmq.proxy, args=(front, back), daemon=True).start()
    emit({"ready": "refrelay", "endpoint": back.getsockopt_string(zmq.LAST_ENDPOINT)})
    sys.stdin.read()
    os._exit(0)  # the proxy thread owns the sockets and never returns: leave without them


def _hostile(args: dict[str, Any]) -> None:
    from es.bench.hostile import hostile

    hostile(args)


ROLES: dict[str, Callable[[dict[str, Any]], None]] = {
    "hostile": _hostile,
    "sub": our_sub,
    "pub": our_pub,
    "refpub": ref_pub,
    "refsub": ref_sub,
    "refrelay": ref_relay,
    "natspub": lambda args: _nats("nats_pub", args),
    "natssub": lambda args: _nats("nats_sub", args),
}


def _nats(role: str, args: dict[str, Any]) -> None:
    from es.bench import natspeer

    getattr(natspeer, role)(args)


def main(argv: list[str]) -> None:
    """Run the role named by the first argument, with its arguments from stdin."""
    ROLES[argv[0]](json.loads(sys.stdin.readline()))


if __name__ == "__main__":
    main(sys.argv[1:])
