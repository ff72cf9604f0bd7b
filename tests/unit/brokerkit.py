"""What the broker's unit tests share: a broker with a fake clock and counted streams, and ways
to send it requests and read its replies (tests/unit/test_broker*.py)."""

from __future__ import annotations

import itertools
from typing import Any

from clients.wire import (
    Delivery,
    Err,
    Ok,
    Options,
    PubItem,
    Publish,
    Subscribe,
    decode_delivery,
    decode_reply,
    encode,
    encode_delivery,
    public_id,
)
from es.actions import Batch, Fanout, Reply
from es.broker import Broker
from es.config import Limits, ServerConfig
from tests.unit.storefake import KeptStorage

EP = "tcp://127.0.0.1:5000"
S1 = public_id("s1")  # what the server shows of sid "s1"
PEER = b"peer"


def make(store: KeptStorage | None = None, **settings: Any) -> Broker:
    limits = settings.pop("limits", Limits())
    streams = itertools.count(100)
    return Broker(
        ServerConfig(limits=limits, **settings),
        now=0.0,
        new_stream=lambda: next(streams),
        store=store,
    )


def reply_of(actions: list[Any]) -> Ok | Err:
    replies = [a for a in actions if isinstance(a, Reply)]
    assert len(replies) == 1
    return decode_reply(replies[0].frames)


def ok(actions: list[Any]) -> dict[str, Any]:
    reply = reply_of(actions)
    assert isinstance(reply, Ok), reply
    return reply.body


def err(actions: list[Any]) -> str:
    reply = reply_of(actions)
    assert isinstance(reply, Err), reply
    return reply.code


def sub(broker: Broker, sid: str, *subjects: str, options: Options | None = None) -> list[Any]:
    return broker.handle(PEER, encode(Subscribe(1, sid, EP, subjects, options or Options())), 1.0)


def pub(
    broker: Broker, *subjects: str, payload: bytes = b"m", confirm: bool = False, now: float = 2.0
) -> Fanout:
    actions = broker.handle(
        PEER, encode(Publish(5, confirm, (PubItem(subjects, 1, payload),))), now
    )
    assert len(actions) == 1 and isinstance(actions[0], Fanout)
    return actions[0]


def delivered(batch: Batch, stream: int = 0) -> Delivery:
    """The events of a batch as the subscriber would read them."""
    frames = encode_delivery(batch.sid, stream, 0, batch.first, batch.events, batch.payloads)
    decoded = decode_delivery(frames)
    assert isinstance(decoded, Delivery)
    return decoded


def deliveries(fanout: Fanout, broker: Broker | None = None) -> dict[str, Delivery]:
    streams = {b.sid: broker.subscriber(b.sid).stream if broker else 0 for b in fanout.batches}  # type: ignore[union-attr]
    return {b.sid: delivered(b, streams[b.sid]) for b in fanout.batches}
