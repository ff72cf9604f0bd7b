"""Every request vector of clients/wire/vectors.json, replayed to a new `es` and a new `ns`.

SPEC 10: a request vector's `reply` is what a new server with the default settings answers when
the vectors are sent to it in the order of the file, each on a connection of its own: "OK",
"ERR" with the vector's `error`, or null for no reply at all. This checks that against the live
daemons, with nothing but a DEALER, so the spec is tested as an outsider would use it, not only
through the codec.

After each vector the same connection sends a PING with a rid no vector uses, and its OK must be
the next thing to arrive: since a server handles one connection's requests in order, that proves
the vector got exactly the reply it documents and nothing more (for the vectors that get no reply,
after a short wait, so a late reply would be seen too).

Only loopback addresses are ever contacted: the SUB vectors name inboxes on 127.0.0.1 where
nothing listens, which the server accepts and later gives up on, and the test refuses to send
any vector that would make the server connect elsewhere.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import zmq

from clients.errors import RemoteProtocolError
from clients.wire import Err, Ok, Ping, Subscribe, SubscribeMatch, decode_reply, decode_request
from clients.wire import encode as encode_request
from clients.wire.ns import encode_ns
from tests.integration.conftest import Daemon

VECTORS = json.loads((Path(__file__).parents[2] / "clients/wire/vectors.json").read_text())
SECTIONS = ("valid", "invalid", "refused")  # the order of the file
REPLY_WAIT = 30.0  # seconds a reply may take on a loaded two-core machine
SILENCE = 0.5  # seconds to wait for a reply that must not come, before the PING that proves it
PROBE_RIDS = 1_000_000  # the probes' rids start here, far above any vector's
Start = Callable[..., Daemon]


def request_vectors(kind: str) -> list[dict[str, Any]]:
    """The vectors of `kind` in the order of the file. The one with no frames at all is left
    out: ZeroMQ has no message of zero parts, so it exists only for decoders."""
    found = [v for section in SECTIONS for v in VECTORS[section] if v["kind"] == kind]
    assert all("reply" in v for v in found), "every request vector documents its reply"
    return [v for v in found if v["frames"]]


def expected_rid(vector: dict[str, Any]) -> int:
    return int(vector["rid"]) if "rid" in vector else int(vector["message"]["rid"])


def assert_stays_local(vector: dict[str, Any]) -> None:
    """Refuse to send a subscription that would make the server connect off this host."""
    try:
        request = decode_request([bytes.fromhex(f) for f in vector["frames"]])
    except RemoteProtocolError:
        return  # every server refuses it before connecting anywhere
    if not isinstance(request, Subscribe | SubscribeMatch):
        return
    parts = urlsplit(request.endpoint)
    try:
        host = parts.hostname or ""
        local = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        local = False
    assert parts.scheme != "tcp" or local, f"{vector['name']}: {request.endpoint} is not local"


def receive(sock: zmq.Socket[bytes], seconds: float) -> Ok | Err | None:
    """The next reply on `sock`, or None if none came within `seconds`."""
    if not sock.poll(int(seconds * 1000), zmq.POLLIN):
        return None
    return decode_reply(sock.recv_multipart())


def mismatch(vector: dict[str, Any], reply: Ok | Err | None) -> str | None:
    """What is wrong with `reply` to `vector`, or None if it is what the vector documents."""
    want = vector["reply"]
    if want is None:
        return None if reply is None else f"wanted no reply, got {reply}"
    rid = expected_rid(vector)
    if want == "OK" and not (isinstance(reply, Ok) and reply.rid == rid):
        return f"wanted OK to rid {rid}, got {reply}"
    if want == "ERR" and not (
        isinstance(reply, Err) and (reply.code, reply.rid) == (vector["error"], rid)
    ):
        return f"wanted ERR {vector['error']} to rid {rid}, got {reply}"
    return None


def replay(
    endpoint: str, vectors: list[dict[str, Any]], ping: Callable[[int], list[bytes]]
) -> Iterator[str]:
    """Send each vector on a connection of its own, in order; yield what went wrong."""
    probes = itertools.count(PROBE_RIDS)
    for vector in vectors:
        sock: zmq.Socket[bytes] = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.connect(endpoint)
            sock.send_multipart([bytes.fromhex(f) for f in vector["frames"]])
            wait = SILENCE if vector["reply"] is None else REPLY_WAIT
            problem = mismatch(vector, receive(sock, wait))
            probe = next(probes)
            sock.send_multipart(ping(probe))
            after = receive(sock, REPLY_WAIT)
            if problem is None and not (isinstance(after, Ok) and after.rid == probe):
                problem = f"wanted only the OK to the PING after it, got {after}"
        finally:
            sock.close()
        if problem is not None:
            yield f"{vector['name']}: {problem}"


def test_every_event_server_request_vector_gets_the_reply_it_documents(start_es: Start) -> None:
    vectors = request_vectors("request")
    for vector in vectors:
        assert_stays_local(vector)
    assert {v["reply"] for v in vectors} == {"OK", "ERR", None}  # all three cases are tried
    es = start_es()  # default settings (-N: it registers nowhere, which changes no reply)
    problems = list(replay(es.endpoint, vectors, lambda rid: encode_request(Ping(rid))))
    assert not problems, "\n".join(problems)


def test_every_name_server_request_vector_gets_the_reply_it_documents(start_ns: Start) -> None:
    vectors = request_vectors("ns-request")
    assert len(vectors) > 30
    ns = start_ns()  # default settings: memory storage
    problems = list(replay(ns.endpoint, vectors, lambda rid: encode_ns(Ping(rid))))
    assert not problems, "\n".join(problems)
