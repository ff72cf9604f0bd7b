"""Where a subscriber binds and what it advertises (Pyro's daemon host / publishhost).

All on loopback: 127.0.0.0/8 is local on Linux, so 127.0.0.2 and 127.0.0.3 stand in for two hosts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

from clients import Publisher, Subscriber
from tests.integration.conftest import Daemon

WAIT = 30.0


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


@contextlib.contextmanager
def relay(listen: tuple[str, int], target: tuple[str, int]) -> Iterator[None]:
    """A one-connection TCP forwarder: what a NAT gateway does for the subscriber's port."""
    server = socket.create_server(listen)
    server.settimeout(WAIT)
    threads: list[threading.Thread] = []
    conns: list[socket.socket] = []

    def run() -> None:
        with contextlib.suppress(OSError):
            inside, _ = server.accept()
            outside = socket.create_connection(target, timeout=WAIT)
            inside.settimeout(None)
            outside.settimeout(None)
            conns.extend([inside, outside])
            for a, b in ((inside, outside), (outside, inside)):
                t = threading.Thread(target=_pipe, args=(a, b), daemon=True)
                t.start()
                threads.append(t)

    acceptor = threading.Thread(target=run, daemon=True)
    acceptor.start()
    try:
        yield
    finally:
        server.close()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)  # wakes the pipes' blocked recv(); close() does not
            conn.close()
        acceptor.join(WAIT)
        for t in threads:
            t.join(WAIT)


def test_default_bind_address_is_the_one_used_to_reach_the_server(es: Daemon) -> None:
    with Subscriber(es.endpoint) as sub:
        assert urlsplit(sub.endpoint).hostname == "127.0.0.1"


def test_subscriber_binds_the_host_it_is_told(es: Daemon) -> None:
    with Subscriber(es.endpoint, host="127.0.0.2") as sub, Publisher(es.endpoint) as pub:
        assert urlsplit(sub.endpoint).hostname == "127.0.0.2"
        sub.subscribe("addr.bound")
        pub.publish("addr.bound", 1)
        event = sub.next(WAIT)
        assert event is not None and event.msg == 1


def test_subscriber_behind_nat_advertises_another_host(es: Daemon) -> None:
    with Subscriber(es.endpoint, host="127.0.0.2", publish_host="127.0.0.3") as sub:
        parts = urlsplit(sub.endpoint)
        assert parts.hostname == "127.0.0.3"
        assert parts.port is not None
        with (
            relay(("127.0.0.3", parts.port), ("127.0.0.2", parts.port)),
            Publisher(es.endpoint) as pub,
        ):
            sub.subscribe("addr.nat")
            pub.publish("addr.nat", "through the gateway")
            event = sub.next(WAIT)
            assert event is not None and event.msg == "through the gateway"
