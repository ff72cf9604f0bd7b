"""The JSON test vectors, run in both directions; they are normative for other languages."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from clients.errors import RemoteProtocolError
from clients.wire import Err, decode_delivery, decode_reply, decode_request, encode
from es.broker import Broker, Reply
from es.config import ServerConfig
from tests import vectorgen

VECTORS_FILE = Path(__file__).parents[2] / "clients" / "wire" / "vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text())
DECODERS: dict[str, Callable[[Sequence[bytes]], Any]] = {
    "request": decode_request,
    "reply": decode_reply,
    "delivery": decode_delivery,
}


def _frames(vector: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(f) for f in vector["frames"]]


def test_committed_vectors_are_what_the_generator_makes() -> None:
    assert VECTORS_FILE.read_text() == vectorgen.render(), "run `make vectors` and update SPEC.md"


def test_every_message_kind_has_a_vector() -> None:
    types = {v["message"]["type"] for v in VECTORS["valid"]}
    assert types == {"SUB", "SUBMATCH", "UNSUB", "PUB", "PING", "STATS", "ACK", "OK", "ERR", "EV"}


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes_to_its_message(vector: dict[str, Any]) -> None:
    decoded = DECODERS[vector["kind"]](_frames(vector))
    assert vectorgen.to_json(decoded) == vector["message"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_message_encodes_to_its_frames(vector: dict[str, Any]) -> None:
    assert encode(vectorgen.from_json(vector["message"])) == _frames(vector)


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_refused_with_its_code_and_rid(vector: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        DECODERS[vector["kind"]](_frames(vector))
    assert caught.value.code == vector["error"]
    assert caught.value.rid == vector["rid"]


@pytest.mark.parametrize("vector", VECTORS["refused"], ids=lambda v: v["name"])
def test_refused_vector_decodes_and_the_broker_answers_its_code_and_rid(
    vector: dict[str, Any],
) -> None:
    frames = _frames(vector)
    decode_request(frames)  # well-formed: the refusal is the server's
    actions = Broker(ServerConfig(), now=0.0).handle(b"peer", frames, 1.0)
    assert len(actions) == 1 and isinstance(actions[0], Reply)
    reply = decode_reply(actions[0].frames)
    assert isinstance(reply, Err)
    assert (reply.code, reply.rid) == (vector["error"], vector["rid"])
