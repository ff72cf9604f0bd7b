"""A client that re-sends a big SUBMATCH and a huge PUB is billed and refused, while another
client's confirmed publishes go on being answered (SPEC 9, the budget of a connection)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import msgpack
import pytest
import zmq

from clients import Publisher, Subscriber
from clients.errors import ErrorCode
from clients.wire import Err, Ok, SubscribeMatch, decode_reply, encode
from tests.integration.conftest import Daemon
from tests.integration.helpers import WAIT

Start = Callable[..., Daemon]
PATTERNS = tuple(rf"^budget\.hostile\.p{i}\." for i in range(300))


@pytest.fixture
def hostile(start_es: Start) -> Iterator[tuple[Daemon, zmq.Socket[bytes]]]:
    """A server with a small budget (1,000 units a second), and a bare DEALER to it."""
    es = start_es("--max-request-rate=1000")
    sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
    sock.connect(es.endpoint)
    yield es, sock
    sock.close()


def test_a_client_resending_big_requests_is_refused_while_another_is_answered(
    hostile: tuple[Daemon, zmq.Socket[bytes]],
) -> None:
    es, sock = hostile
    submatch = encode(SubscribeMatch(1, "hostile", "tcp://127.0.0.1:9", PATTERNS))
    sock.send_multipart(submatch)  # 300 new patterns: about 820 of its 1,000 units
    assert isinstance(decode_reply(sock.recv_multipart()), Ok)
    resends = 100  # nothing to compile now, ~26 units each: far more than it has left
    for _ in range(resends):
        sock.send_multipart(submatch)
    items = [[["h"], 0]] * 100_000  # a 700 KB header (over 1 MiB, ZeroMQ would cut the line)
    sock.send_multipart([msgpack.packb([1, "PUB", 2, True, items, [b""] * 100_000])])

    with Subscriber(es.endpoint) as sub, Publisher(es.endpoint, timeout=WAIT) as pub:
        sub.subscribe("budget.victim")
        for i in range(20):  # while the server has the hostile client's requests to get through
            assert pub.publish("budget.victim", i, confirm=True) == 1
        events = [sub.next(WAIT) for _ in range(20)]
    assert [e.msg for e in events if e is not None] == list(range(20))

    replies = [decode_reply(sock.recv_multipart()) for _ in range(resends + 1)]
    codes = [r.code if isinstance(r, Err) else "OK" for r in replies]
    assert codes[:resends].count(ErrorCode.LIMIT_EXCEEDED) > 0  # billed, then refused
    assert (codes[-1], replies[-1].rid) == (ErrorCode.LIMIT_EXCEEDED, 2)  # the huge PUB
    assert es.stats()["server"]["requests_over_budget"] > 0
