"""Resource exhaustion against a live `es`: descriptors and sockets run short, the server refuses
with LIMIT_EXCEEDED and goes on serving; it never dies."""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Iterator

import pytest
import zmq

from clients.wire import Err, Ok, Options, Ping, Subscribe, decode_reply, encode
from tests.integration.conftest import Daemon, spawn

WAIT_MS = 30_000


def es_with_descriptors(limit: int, *args: str) -> Daemon:
    """`es serve` in a process whose descriptor limit (soft and hard) is `limit`."""
    code = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
        "os.execv(sys.executable, [sys.executable, '-m', 'es', *sys.argv[1:]])"
    )
    command = [sys.executable, "-c", code, "serve", "-n", "127.0.0.1", "-p", "0", "-N", *args]
    return spawn(command, "es")


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
        sub = Subscribe(n + 1, f"sid-{n}", inbox, ("exhaustion",), Options(queue=1))
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
