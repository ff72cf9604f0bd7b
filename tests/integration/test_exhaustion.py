"""Resource exhaustion against a live `es`: descriptors and sockets run short, the server refuses
with LIMIT_EXCEEDED and goes on serving; it never dies."""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zmq

from clients.wire import (
    Err,
    Ok,
    Options,
    Ping,
    PubItem,
    Publish,
    Stats,
    Subscribe,
    decode_reply,
    encode,
)
from tests.integration.conftest import Daemon, spawn

WAIT_MS = 30_000


def es_with_limits(*args: str, nofile: int | None = None, fsize: int | None = None) -> Daemon:
    """`es serve` in a process whose descriptor limit is `nofile` and whose files cannot grow
    past `fsize` bytes (writes past it fail as on a full disk; Python ignores SIGXFSZ)."""
    limits = {"RLIMIT_NOFILE": nofile, "RLIMIT_FSIZE": fsize}
    code = "import os, resource, sys; " + "".join(
        f"resource.setrlimit(resource.{name}, ({value}, {value})); "
        for name, value in limits.items()
        if value is not None
    )
    code += "os.execv(sys.executable, [sys.executable, '-m', 'es', *sys.argv[1:]])"
    command = [sys.executable, "-c", code, "serve", "-n", "127.0.0.1", "-p", "0", "-N", *args]
    return spawn(command, "es")


def es_with_descriptors(limit: int, *args: str) -> Daemon:
    return es_with_limits(*args, nofile=limit)


@pytest.fixture
def inbox() -> Iterator[str]:
    """One ROUTER that every subscriber of a test names as its inbox (as an attacker would)."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind("tcp://127.0.0.1:*")
    yield sock.getsockopt_string(zmq.LAST_ENDPOINT)
    sock.close()


@pytest.fixture
def raw() -> Iterator[zmq.Socket[bytes]]:
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, WAIT_MS)
    yield sock
    sock.close()


def subscribe_until_refused(
    sock: zmq.Socket[bytes], inbox: str, most: int
) -> tuple[int, list[Err]]:
    """SUB new sids (queue 1, one subject) until the first refusal, at most `most` of them:
    how many were accepted, and the refusals."""
    accepted, refused = 0, []
    for n in range(most):
        sub = Subscribe(n + 1, f"sid-{n}", inbox, ("exhaustion",), Options(queue_size=1))
        sock.send_multipart(encode(sub))
        reply = decode_reply(sock.recv_multipart())
        if isinstance(reply, Ok):
            accepted += 1
            continue
        assert isinstance(reply, Err)
        refused.append(reply)
        if len(refused) == 3:
            break
    return accepted, refused


def assert_alive(daemon: Daemon, sock: zmq.Socket[bytes]) -> None:
    sock.send_multipart(encode(Ping(999)))
    assert isinstance(decode_reply(sock.recv_multipart()), Ok)
    assert daemon.proc.poll() is None


def room(daemon: Daemon) -> int:
    found = re.search(r"room for (\d+) subscriber", daemon.log())
    assert found, daemon.log()
    return int(found.group(1))


def test_max_subscribers_is_reached_exactly_then_refused_with_limit_exceeded(
    raw: zmq.Socket[bytes], inbox: str
) -> None:
    # Before, the socket table was sized for two sockets a subscriber but each takes three, so
    # the 221st of 300 was refused with BAD_ENDPOINT "Too many open files".
    es = es_with_descriptors(4096, "--max-subscribers", "300")
    try:
        assert room(es) == 300
        raw.connect(es.endpoint)
        accepted, refused = subscribe_until_refused(raw, inbox, 303)
        assert accepted == 300
        assert {err.code for err in refused} == {"LIMIT_EXCEEDED"}
        assert_alive(es, raw)
    finally:
        assert es.stop() == 0, es.log()


def test_the_descriptor_limit_sets_the_room_said_at_start_and_refusals_come_before_it(
    raw: zmq.Socket[bytes], inbox: str
) -> None:
    # Before, the 5,000 sids of one connection pointing at one inbox killed the server with
    # "Too many open files": the delivery socket was made outside any error handling.
    es = es_with_descriptors(256)
    try:
        allowed = room(es)
        assert 0 < allowed < 64
        assert "--max-subscribers 10000 is out of reach" in es.log()
        raw.connect(es.endpoint)
        accepted, refused = subscribe_until_refused(raw, inbox, allowed + 10)
        assert accepted == allowed
        assert {err.code for err in refused} == {"LIMIT_EXCEEDED"}
        assert_alive(es, raw)
    finally:
        assert es.stop() == 0, es.log()


def test_connections_that_never_greet_cannot_make_a_subscribe_kill_the_server(
    raw: zmq.Socket[bytes], inbox: str
) -> None:
    # Idle TCP connections eat the descriptors set aside for subscribers: the SUBs that find
    # none left are refused with LIMIT_EXCEEDED, and the server lives on.
    es = es_with_descriptors(256)
    idle: list[socket.socket] = []
    try:
        allowed = room(es)
        for _ in range(120):
            idle.append(socket.create_connection(("127.0.0.1", es.port), timeout=30))
        raw.connect(es.endpoint)
        accepted, refused = subscribe_until_refused(raw, inbox, allowed + 10)
        assert accepted < allowed
        assert {err.code for err in refused} == {"LIMIT_EXCEEDED"}
        assert_alive(es, raw)
    finally:
        for conn in idle:
            conn.close()
        assert es.stop() == 0, es.log()


def ask(sock: zmq.Socket[bytes], request: Any) -> Ok | Err:
    sock.send_multipart(encode(request))
    return decode_reply(sock.recv_multipart())


def test_a_full_disk_fails_each_write_and_keeps_serving_what_needs_no_disk(
    raw: zmq.Socket[bytes], inbox: str, tmp_path: Path
) -> None:
    # Before, every retained publish was confirmed and every SUB answered OK while each write
    # failed; only the log said so, and a restart brought back a fraction of them.
    storage = f"sqlite:{tmp_path / 'es.db'}"
    es = es_with_limits("--storage", storage, fsize=160 << 10)
    confirmed: list[str] = []
    try:
        raw.connect(es.endpoint)
        assert isinstance(ask(raw, Subscribe(1, "early", inbox, ("news",))), Ok)
        payload = b"r" * 8192
        codes = []
        for n in range(60):  # 480 KiB of retained payloads: the disk fills on the way
            item = PubItem((f"retained.{n}",), 1, payload, retain=True)
            reply = ask(raw, Publish(100 + n, True, (item,)))
            if isinstance(reply, Ok):
                confirmed.append(f"retained.{n}")
            else:
                codes.append(reply.code)
        assert 0 < len(confirmed) < 60
        assert set(codes) == {"STORAGE_FAILED"}
        # A small write may still fit where the 8 KiB ones did not: its answer says which.
        late = ask(raw, Subscribe(2, "late", inbox, ("news",)))
        assert isinstance(late, Ok) or late.code == "STORAGE_FAILED"
        subscribed = 2 if isinstance(late, Ok) else 1
        plain = ask(raw, Publish(3, True, (PubItem(("news",), 1, b"no disk needed"),)))
        assert isinstance(plain, Ok) and plain.body == {"receivers": subscribed}
        stats = ask(raw, Stats(4))
        assert isinstance(stats, Ok)
        assert stats.body["server"]["retained"] == len(confirmed)
        assert stats.body["server"]["subscribers"] == subscribed
    finally:
        assert es.stop() == 0, es.log()
    again = es_with_limits("--storage", storage)
    try:
        # What was confirmed is exactly what comes back.
        stats = again.stats()["server"]
        assert (stats["retained"], stats["subscribers"]) == (len(confirmed), subscribed)
    finally:
        assert again.stop() == 0, again.log()


def test_a_full_disk_refuses_what_a_durable_subscriber_cannot_keep_and_nothing_else(
    raw: zmq.Socket[bytes], inbox: str, tmp_path: Path
) -> None:
    storage = f"sqlite:{tmp_path / 'es.db'}"
    es = es_with_limits("--storage", storage, fsize=400 << 10)
    confirmed = 0
    try:
        raw.connect(es.endpoint)
        durable = Subscribe(1, "keeps", inbox, ("ledger",), Options(durable="ledger"))
        assert isinstance(ask(raw, durable), Ok)
        assert isinstance(ask(raw, Subscribe(2, "plain", inbox, ("news",))), Ok)
        codes = []
        for n in range(100):  # 800 KiB for the durable subscriber's log: the disk fills
            reply = ask(raw, Publish(100 + n, True, (PubItem(("ledger",), 1, b"l" * 8192),)))
            if isinstance(reply, Ok):
                confirmed += 1
            else:
                codes.append(reply.code)
        assert 0 < confirmed < 100
        assert set(codes) == {"STORAGE_FAILED"}
        plain = ask(raw, Publish(3, True, (PubItem(("news",), 1, b"no disk needed"),)))
        assert isinstance(plain, Ok) and plain.body == {"receivers": 1}
        stats = ask(raw, Stats(4))
        assert isinstance(stats, Ok) and stats.body["server"]["storage_errors"] >= len(codes)
        assert "cannot write" in es.log()
    finally:
        assert es.stop() == 0, es.log()
    again = es_with_limits("--storage", storage)
    try:
        (kept,) = [s for s in again.stats()["subscribers"] if s["durable"] == "ledger"]
        assert kept["stored"] == confirmed  # what was confirmed is exactly what was kept
    finally:
        assert again.stop() == 0, again.log()
