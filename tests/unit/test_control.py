"""The control connection's waits, with real ZeroMQ sockets on loopback and no server at all."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import msgpack
import pytest
import zmq

from clients.control import Control
from clients.errors import ConnectionClosed, RequestTimeout
from clients.wire import Ping

LONG = 120.0  # longer than any test may take: a wait that ends did not end by timing out
DEADLINE = 30.0


def nobody_listening() -> str:
    """A loopback address with no listener (ZeroMQ queues for it, and retries, quietly)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"tcp://127.0.0.1:{port}"


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)  # a poll interval


@pytest.fixture
def control() -> Iterator[Control]:
    ctl = Control(zmq.Context.instance(), nobody_listening(), LONG)
    yield ctl
    ctl.close()


def in_thread(action: Callable[[], object]) -> tuple[threading.Thread, list[Exception]]:
    raised: list[Exception] = []

    def run() -> None:
        try:
            action()
        except Exception as exc:  # handed to the test
            raised.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, raised


def test_closing_frees_a_thread_waiting_for_a_reply(control: Control) -> None:
    thread, raised = in_thread(lambda: control.request(Ping))
    until(control._lock.locked)  # it is waiting for the reply
    control.close()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], ConnectionClosed)


def test_closing_frees_a_thread_stuck_sending(control: Control) -> None:
    sent = 0

    def fill() -> None:
        nonlocal sent
        while True:  # ends when the queue is full and the send is cut short
            control.send(Ping)
            sent += 1

    thread, raised = in_thread(fill)
    until(lambda: sent >= 1000 and control._lock.locked())  # the queue is full: it waits
    control.close()
    thread.join(DEADLINE)
    assert not thread.is_alive()
    assert len(raised) == 1 and isinstance(raised[0], ConnectionClosed)


def test_a_send_with_no_room_times_out() -> None:
    ctl = Control(zmq.Context.instance(), nobody_listening(), 0.2)

    def fill() -> None:
        for _ in range(100_000):  # far more than a DEALER queues (1,000)
            ctl.send(Ping)

    try:
        with pytest.raises(RequestTimeout, match="accepts nothing"):
            fill()
    finally:
        ctl.close()


def test_a_marked_request_is_answered_whenever_its_reply_is_read_and_waits_can_give_up() -> None:
    """Marks (Publisher's run-ahead bound): a reply read while waiting for another is kept for
    its mark; a wait gives up as soon as `give_up` says the answer will never come."""
    ctx = zmq.Context.instance()
    server = ctx.socket(zmq.ROUTER)
    server.bind("tcp://127.0.0.1:0")
    ctl = Control(ctx, server.getsockopt_string(zmq.LAST_ENDPOINT), LONG)
    try:
        first = ctl.send(Ping, mark=True)
        second = ctl.send(Ping, mark=True)
        for _ in range(2):
            assert server.poll(int(DEADLINE * 1000))
            peer, frame = server.recv_multipart()
            rid = msgpack.unpackb(frame)[2]
            server.send_multipart([peer, msgpack.packb([1, "OK", rid, {}])])
        assert ctl.wait_answered(second, timeout=DEADLINE)  # reads the first's reply on the way
        assert ctl.wait_answered(first, timeout=DEADLINE)  # kept for it
        third = ctl.send(Ping, mark=True)  # never answered
        started = time.monotonic()
        assert not ctl.wait_answered(third, timeout=LONG, give_up=lambda: True)
        assert time.monotonic() - started < DEADLINE
    finally:
        ctl.close()
        server.close(linger=0)
