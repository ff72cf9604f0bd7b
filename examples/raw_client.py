"""A publisher and a subscriber written from SPEC.md alone, with nothing but pyzmq and msgpack.

It imports nothing from this project: it is what a client in any language with ZeroMQ and msgpack
has to do. Run an event server first (`make run`), then `.venv/bin/python examples/raw_client.py`.
ES_URI (tcp://HOST:PORT) names another server; the name server is not used here.
"""

from __future__ import annotations

import os
import secrets
import sys
from typing import Any

import msgpack
import zmq

VERSION = 1
TIMEOUT_MS = 10_000  # every wait has a deadline (SPEC section 11)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def reply(dealer: zmq.Socket[bytes], rid: int) -> dict[str, Any]:
    """Wait for the OK to request `rid` (section 4); an ERR, or nothing, ends the program."""
    while dealer.poll(TIMEOUT_MS):
        header = msgpack.unpackb(dealer.recv_multipart()[0], raw=False)
        if header[0] != VERSION or header[2] != rid:
            continue  # an answer to something else
        if header[1] == "ERR":
            sys.exit(f"refused: {header[3]}: {header[4]}")
        body: dict[str, Any] = header[3]
        return body
    sys.exit("no reply from the event server")


def main() -> None:
    server = os.environ.get("ES_URI") or "tcp://127.0.0.1:7766"
    ctx = zmq.Context()

    # The subscriber: a bound ROUTER for deliveries (section 1), a DEALER for requests.
    inbox = ctx.socket(zmq.ROUTER)
    inbox.bind("tcp://127.0.0.1:0")  # the server connects here; loopback, like the server
    endpoint = inbox.getsockopt_string(zmq.LAST_ENDPOINT)
    control = ctx.socket(zmq.DEALER)
    control.connect(server)
    sid = secrets.token_hex(16)  # chosen by the subscriber (section 7.1)
    control.send(pack([VERSION, "SUB", 1, sid, endpoint, ["raw.quotes"], {}]))
    reply(control, 1)
    control.send(pack([VERSION, "SUBMATCH", 2, sid, endpoint, ["^RAW\\.NEWS\\..*$"], {}]))
    print(f"subscribed; heartbeat every {reply(control, 2)['heartbeat']} s")

    # The publisher: one DEALER. Three events in one PUB (section 3.4), the first to two subjects.
    publisher = ctx.socket(zmq.DEALER)
    publisher.connect(server)
    items = [[["RAW.QUOTES", "raw.news.sun"], 1], [["raw.quotes"], 1], [["raw.other"], 1]]
    payloads = [pack(["SUN", 22.44]), pack({"IBM": 120.5}), pack("nobody listens")]
    publisher.send_multipart([pack([VERSION, "PUB", 1, False, items]), *payloads])
    publisher.send(pack([VERSION, "PING", 2]))  # its reply proves the PUB was handled
    reply(publisher, 2)

    # Deliveries (section 5): [routing id, header, one payload per event], or, for small
    # payloads, [routing id, header] with the payloads inside the header, after the events.
    # A LOST notice (5.1) tells of dropped events no event followed; none come here.
    received = 0
    expected: dict[int, int] = {}  # stream -> next seq
    server_id = b""  # the routing id of the server's delivery connection: ACKs go back there
    while received < 3 and inbox.poll(TIMEOUT_MS):
        server_id, header_frame, *frames = inbox.recv_multipart()
        header = msgpack.unpackb(header_frame, raw=False)
        if header[:2] != [VERSION, "EV"] or header[2] != sid:
            continue  # not for us: ignore it (section 5)
        stream, lost, first, events = header[3:7]  # events are numbered from `first`
        if len(header) == 8:
            frames = header[7]
        for seq, ((subject, when, fmt, *_flags), payload) in enumerate(
            zip(events, frames, strict=True), first
        ):
            if seq != expected.get(stream, seq) or lost:
                print(f"-- events lost before seq {seq} --")
            expected[stream] = seq + 1
            message = msgpack.unpackb(payload, raw=False) if fmt == 1 else payload
            print(f"{subject:<14} {message!r:<22} seq {seq} at {when:.3f}")
            received += 1
    # What was consumed makes room in this subscriber's queue on the server (section 3.7): the
    # ACK goes back on the inbox, to the delivery connection, every half queue and when dry.
    last = max(expected.values(), default=1) - 1
    inbox.send_multipart([server_id, pack([VERSION, "ACK", 0, sid, last])])
    control.send(pack([VERSION, "UNSUB", 3, sid, ["raw.quotes", "^RAW\\.NEWS\\..*$"]]))
    print(f"received {received} events; subscriptions left: {reply(control, 3)['count']}")
    for sock in (inbox, control, publisher):
        sock.close(linger=0)
    ctx.term()


if __name__ == "__main__":
    main()
