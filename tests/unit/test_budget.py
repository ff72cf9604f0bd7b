"""The broker bills each connection for the work of its requests (es.ratelimit), with a fake clock.

No timings: what is checked is who is refused, who is served, and what was compiled.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest

import es.index
from clients.errors import ErrorCode
from clients.wire import (
    Ack,
    Err,
    Ok,
    Ping,
    PubItem,
    Publish,
    SubscribeMatch,
    decode_reply,
    encode,
)
from es.actions import Fanout, Reply
from es.broker import Broker
from es.config import Limits, ServerConfig
from es.daemon.patterns import Pattern

EP = "tcp://127.0.0.1:5000"
HOSTILE, VICTIM = b"hostile", b"victim"


def make(rate: float = 20_000) -> Broker:
    return Broker(ServerConfig(limits=Limits(max_request_rate=rate)), now=0.0)


def answer(actions: list[Any]) -> Ok | Err | None:
    replies = [decode_reply(a.frames) for a in actions if isinstance(a, Reply)]
    assert len(replies) <= 1
    return replies[0] if replies else None


def code(actions: list[Any]) -> str:
    reply = answer(actions)
    return "OK" if isinstance(reply, Ok) else reply.code if reply else "none"


def patterns(count: int, tag: str = "p") -> tuple[str, ...]:
    return tuple(rf"hostile\.{tag}{i}\..*" for i in range(count))


def confirmed(broker: Broker, mono: float) -> bool:
    """A confirmed one-event publish from the victim: accepted (its confirmation is owed)."""
    frames = encode(Publish(7, True, (PubItem(("victim",), 1, b"m"),)))
    actions = broker.handle(VICTIM, frames, 1.0, mono=mono)
    return any(isinstance(a, Fanout) and a.confirms for a in actions)


def test_a_pub_of_100000_items_is_refused_before_its_items_are_read() -> None:
    broker = make()
    head = b"\x95\x01\xa3PUB\x09\xc3"  # [1, "PUB", 9, true, then the items: 100,000 of garbage
    frames = [head + b"\xdd" + struct.pack(">I", 100_000) + b"\xc1" * 1000]
    reply = answer(broker.handle(HOSTILE, frames, 1.0, mono=1.0))
    assert isinstance(reply, Err) and (reply.code, reply.rid) == (ErrorCode.LIMIT_EXCEEDED, 9)


def test_patterns_the_server_holds_are_not_compiled_again(monkeypatch: pytest.MonkeyPatch) -> None:
    broker = make()
    held = patterns(2000)
    assert (
        code(broker.handle(b"a", encode(SubscribeMatch(1, "a", EP, held)), 1.0, mono=1.0)) == "OK"
    )

    def no(text: str, max_bytes: int, case_sensitive: bool = False) -> Pattern:
        raise AssertionError(f"compiled {text!r} again")

    monkeypatch.setattr(es.index, "compile_pattern", no)
    again = encode(SubscribeMatch(2, "b", EP, (*held, *held[:10])))  # another sid, repeats too
    assert code(broker.handle(b"b", again, 1.0, mono=5.0)) == "OK"
    assert broker.index.subscriptions("b").patterns == set(held)


def test_resending_a_big_submatch_runs_out_of_budget_while_another_client_publishes() -> None:
    broker = make(rate=2000)
    big = encode(SubscribeMatch(1, "h", EP, patterns(5000)))
    assert code(broker.handle(HOSTILE, big, 1.0, mono=1.0)) == "LIMIT_EXCEEDED"  # 13,000 units
    cheap = encode(SubscribeMatch(1, "h", EP, patterns(300)))
    assert code(broker.handle(HOSTILE, cheap, 1.0, mono=5.0)) == "OK"  # ~800 units, compiled
    answers = []
    for i in range(80):  # 80 re-sends in a tenth of a second: each ~26 units, nothing compiled
        answers.append(code(broker.handle(HOSTILE, cheap, 1.0, mono=5.0 + i / 800)))
        assert confirmed(broker, 5.0 + i / 800)  # the other client is served all along
    assert answers[0] == "OK" and answers[-1] == "LIMIT_EXCEEDED"
    assert broker.stats(1.0)["server"]["requests_over_budget"] == answers.count("LIMIT_EXCEEDED")
    assert code(broker.handle(HOSTILE, cheap, 1.0, mono=7.0)) == "OK"  # paid back by the rate


def test_a_submatch_dearer_than_a_burst_of_debt_is_refused_and_changes_nothing() -> None:
    broker = make(rate=1000)
    dear = encode(SubscribeMatch(3, "h", EP, patterns(1000)))  # ~2,700 units > 1,000 + 1,000
    reply = answer(broker.handle(HOSTILE, dear, 1.0, mono=1.0))
    assert isinstance(reply, Err) and (reply.code, reply.rid) == (ErrorCode.LIMIT_EXCEEDED, 3)
    assert broker.index.pattern_count == 0 and broker.subscriber("h") is None
    assert code(broker.handle(HOSTILE, encode(Ping(4)), 1.0, mono=1.0)) == "LIMIT_EXCEEDED"
    assert code(broker.handle(VICTIM, encode(Ping(4)), 1.0, mono=1.0)) == "OK"


def test_garbage_is_billed_by_its_size() -> None:
    broker = make(rate=2000)
    garbage = [msgpack.packb([1, "PUB", 5, True, [[["a"], 1]], [[]] * 400_000])]
    assert code(broker.handle(HOSTILE, garbage, 1.0, mono=1.0)) == "BAD_REQUEST"  # ~3,100 units
    assert code(broker.handle(HOSTILE, encode(Ping(6)), 1.0, mono=1.0)) == "LIMIT_EXCEEDED"
    assert broker.handle(HOSTILE, encode(Ack(0, "s", 1)), 1.0, mono=1.0) == []  # never answered
    assert code(broker.handle(HOSTILE, encode(Ping(6)), 1.0, mono=2.0)) == "OK"


def test_without_a_rate_nothing_is_refused_however_dear() -> None:
    broker = make(rate=0)
    big = encode(SubscribeMatch(1, "h", EP, patterns(3000)))
    for mono in (1.0, 1.0, 1.0):
        assert code(broker.handle(HOSTILE, big, 1.0, mono=mono)) == "OK"
