"""Where a subscriber binds and what it advertises (Pyro's daemon host / publishhost).

All on loopback: 127.0.0.0/8 is local on Linux, so 127.0.0.2 and 127.0.0.3 stand in for two hosts.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import zmq

from clients import Publisher, Subscriber
from tests.integration.conftest import Daemon
from tests.integration.helpers import relay

WAIT = 30.0


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


def test_a_subscriber_that_cannot_bind_leaves_no_socket_open(es: Daemon) -> None:
    """The leak check of every test (conftest) fails this one if a socket is left behind."""
    with pytest.raises(zmq.ZMQError):
        Subscriber(es.endpoint, host="256.0.0.1")  # not an address: bind() fails
    with pytest.raises(ValueError, match="queue_size"):
        Subscriber(es.endpoint, queue_size=-5)
