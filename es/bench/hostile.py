"""A hostile client for the benchmark: requests that cost the server as much as a client can make
them cost, sent as fast as the server takes them, beside the ordinary clients it measures.

It runs as a role (es.bench.roles): one JSON line of arguments on stdin, `{"ready": "hostile"}`,
then `go`, then at most `seconds` (and `requests`) of attacks, then one result line with what it
sent and how the server answered. Everything goes to the event server under test; nothing else.
The kinds of attack are those a black-box run found most expensive:

- `patterns`: a SUBMATCH of 5,000 patterns, the same ones again and again;
- `growth`: a SUBMATCH of one new pattern each time, so the server's pattern set keeps growing;
- `items`: a PUB header listing 100,000 items;
- `frames`: a message of 20,000 frames;
- `garbage`: frames that are not msgpack at all.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import zmq

__all__ = ["KINDS", "hostile"]

_PATTERNS = 5000
_ITEMS = 100_000
_FRAMES = 20_000
# Patterns one sid may hold (the server's default max_subscriptions); more sids beyond it.
_PER_SID = 10_000
# Requests in flight before the attacker waits for answers (ZeroMQ would queue the rest).
_IN_FLIGHT = 8


def _header(*fields: Any) -> bytes:
    packed: bytes = msgpack.packb([1, *fields])
    return packed


def _attacks(inbox: str) -> dict[str, Callable[[int], list[bytes]]]:
    """For each kind, the frames of its n-th request (n is also the rid)."""
    pid = os.getpid()
    patterns = [rf"^hostile\.{pid}\.{i}\.(a|b)+$" for i in range(_PATTERNS)]
    items = [[["h"], 1]] * _ITEMS  # 5 bytes each: the header stays under the 1 MiB frame limit
    growth = itertools.count()

    def grow(rid: int) -> list[bytes]:
        n = next(growth)
        sid = f"hostile-growth-{pid}-{n // _PER_SID}"
        return [_header("SUBMATCH", rid, sid, inbox, [rf"^grow\.{pid}\.{n}\.[a-z]+\d*$"], {})]

    return {
        "patterns": lambda rid: [
            _header("SUBMATCH", rid, f"hostile-patterns-{pid}", inbox, patterns, {})
        ],
        "growth": grow,
        "items": lambda rid: [_header("PUB", rid, True, items)],
        "frames": lambda rid: [_header("PUB", rid, True, [[["h"], 1]])] + [b""] * (_FRAMES - 1),
        "garbage": lambda rid: [os.urandom(64), os.urandom(16)],
    }


KINDS = ("patterns", "growth", "items", "frames", "garbage")


def _replies(sock: zmq.Socket[bytes], codes: Counter[str], wait_ms: int) -> int:
    """Read the replies that came (waiting up to `wait_ms` for the first); count their codes."""
    read = 0
    while sock.poll(wait_ms if read == 0 else 0):
        frames = sock.recv_multipart()
        try:
            reply = msgpack.unpackb(frames[0])
            codes["OK" if reply[1] == "OK" else str(reply[3])] += 1
        except (ValueError, IndexError, TypeError, msgpack.ExtraData):
            codes["unreadable"] += 1
        read += 1
    return read


def _schedule(kinds: list[str], seconds: float, requests: int) -> Iterator[tuple[int, str]]:
    """(rid, kind) in turn, until the time or the count runs out."""
    deadline = time.monotonic() + seconds
    for rid, kind in zip(range(1, requests + 1), itertools.cycle(kinds), strict=False):
        if time.monotonic() >= deadline:
            return
        yield rid, kind


def hostile(args: dict[str, Any]) -> None:
    """The role: attack `args["es"]` for `args["seconds"]`, then report."""
    from es.bench.roles import cpu_seconds, emit, wait_for_go

    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    inbox = ctx.socket(zmq.ROUTER)  # where its subscriptions point: it never reads
    inbox.setsockopt(zmq.LINGER, 0)
    inbox.bind("tcp://127.0.0.1:*")
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(args["es"])
    attacks = _attacks(inbox.getsockopt_string(zmq.LAST_ENDPOINT))
    kinds = [k for k in args.get("kinds", KINDS) if k in attacks]
    emit({"ready": "hostile"})
    wait_for_go()
    sent: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    in_flight = 0
    for rid, kind in _schedule(kinds, float(args["seconds"]), int(args.get("requests", 10**6))):
        sock.send_multipart(attacks[kind](rid))
        sent[kind] += 1
        in_flight += 1
        if in_flight >= _IN_FLIGHT:
            in_flight -= _replies(sock, codes, 1000)
    _replies(sock, codes, 1000)
    emit({"result": "hostile", "cpu": cpu_seconds(), "sent": dict(sent), "codes": dict(codes)})
    sock.close()
    inbox.close()
    ctx.term()
