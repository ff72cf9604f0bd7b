"""Bad requests to a live `es`: each gets a coded error, and everyone else is served as before."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from clients import (
    BadPattern,
    BadPolicy,
    BadRequest,
    BadSubject,
    LimitExceeded,
    Publisher,
    Subscriber,
    TooLarge,
)
from clients.wire import Err, Ok, Ping, Subscribe, decode_reply, encode
from tests.integration.conftest import Daemon

WAIT_MS = 30_000
VECTORS = json.loads((Path(__file__).parents[2] / "clients/wire/vectors.json").read_text())


@pytest.fixture
def raw(es: Daemon) -> Iterator[zmq.Socket[bytes]]:
    """A bare DEALER to the server: what a client in any language holds."""
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, WAIT_MS)
    sock.connect(es.endpoint)
    yield sock
    sock.close()


def ask(sock: zmq.Socket[bytes], frames: list[bytes]) -> Ok | Err:
    sock.send_multipart(frames)
    return decode_reply(sock.recv_multipart())


def assert_alive(sock: zmq.Socket[bytes]) -> None:
    assert isinstance(ask(sock, encode(Ping(424242))), Ok)


# Those answered with an ERR; the malformed ACKs get no reply at all (test_conformance.py).
requests = [v for v in VECTORS["invalid"] if v["kind"] == "request" and v["frames"]]
requests += [v for v in VECTORS["refused"] if v["kind"] == "request"]
requests = [v for v in requests if v["reply"] == "ERR"]


@pytest.mark.parametrize("vector", requests, ids=lambda v: v["name"])
def test_each_invalid_request_vector_gets_its_coded_error(
    raw: zmq.Socket[bytes], vector: dict[str, Any]
) -> None:
    reply = ask(raw, [bytes.fromhex(f) for f in vector["frames"]])
    assert isinstance(reply, Err)
    assert (reply.code, reply.rid) == (vector["error"], vector["rid"])
    assert_alive(raw)


def test_empty_message_part_gets_an_error(raw: zmq.Socket[bytes]) -> None:
    reply = ask(raw, [b""])
    assert isinstance(reply, Err) and reply.code == "BAD_REQUEST"


def test_subscriber_endpoint_must_be_a_numeric_tcp_address(raw: zmq.Socket[bytes]) -> None:
    for endpoint in ("tcp://localhost:5555", "ipc:///tmp/sock", "tcp://0.0.0.0:5555"):
        reply = ask(raw, encode(Subscribe(1, "sid-x", endpoint, ("a",))))
        assert isinstance(reply, Err) and reply.code == "BAD_ENDPOINT", endpoint


def test_semantic_errors_map_to_exceptions(es: Daemon) -> None:
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint) as pub:
        with pytest.raises(BadPattern, match="lookaround"):
            sub.subscribe_match("(?=look)ahead")
        with pytest.raises(BadSubject):
            sub.subscribe("")
        with pytest.raises(TooLarge):
            pub.publish("big", b"x" * (2 << 20), confirm=True)
        with pytest.raises(LimitExceeded):
            pub.publish([f"s{i}" for i in range(101)], 1, confirm=True)
        assert pub.publish("fine", 1, confirm=True) == 0
    with Subscriber(es.endpoint, queue_size=0) as unbounded, pytest.raises(BadPolicy):
        unbounded.subscribe("x")
    with Subscriber(es.endpoint, max_stall=1e6) as patient, pytest.raises(BadPolicy):
        patient.subscribe("x")


def test_an_unconfirmed_bad_publish_is_reported_by_flush(es: Daemon) -> None:
    with Publisher(es.endpoint) as pub:
        pub.publish("", "no subject")
        with pytest.raises(BadSubject):
            pub.flush()
        pub.flush()  # reported once


def test_garbage_from_one_client_does_not_touch_another_stream(
    es: Daemon, raw: zmq.Socket[bytes]
) -> None:
    subject = f"clean.{uuid.uuid4().hex[:8]}"
    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint) as pub:
        sub.subscribe(subject)
        for i in range(200):
            raw.send_multipart([bytes([i % 256]) * (i % 7), b"\xff" * i])
            pub.publish(subject, i)
        got = [sub.next(30.0) for _ in range(200)]
        assert [e.msg for e in got if e is not None] == list(range(200))
        assert all(e is not None and e.lost == 0 for e in got)
    for _ in range(200):
        assert isinstance(decode_reply(raw.recv_multipart()), Err)
    assert_alive(raw)


def test_a_subscriber_reply_with_an_unknown_sid_is_ignored(es: Daemon) -> None:
    """Deliveries that are not for this subscriber never reach its handler."""
    with Subscriber(es.endpoint) as sub:
        sub.subscribe("x")
        forger: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        forger.setsockopt(zmq.LINGER, 0)
        try:
            forger.connect(sub.endpoint)
            header = msgpack.packb([1, "EV", "someone-else", 1, 0, [[1, "x", 1.0, 1]]])
            forger.send_multipart([header, msgpack.packb("forged")])
            forger.send_multipart([b"\xc1"])
            assert sub.next(0.5) is None
        finally:
            forger.close()
        assert sub.bad_deliveries == 2


def test_bad_request_class_covers_version_and_unknown_command() -> None:
    assert issubclass(BadRequest, Exception)
