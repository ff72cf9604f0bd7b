"""The JSON test vectors, run in both directions; they are normative for other languages."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils import z85

from clients.errors import RemoteProtocolError
from clients.wire import (
    Err,
    Ok,
    decode_delivery,
    decode_reply,
    decode_request,
    encode,
    peek_command,
)
from clients.wire.ns import (
    decode_here,
    decode_ns_request,
    decode_where,
    encode_here,
    encode_ns,
    encode_where,
)
from es.broker import Broker, Reply
from es.cluster import frames
from es.cluster.subjects import backbone, cover, decode
from es.config import ServerConfig
from naming.records import MemoryStorage
from naming.registry import Registry
from naming.service import NameService, build_service
from tests import vectorgen, vectorgen_ns, vectorjson

VECTORS_FILE = Path(__file__).parents[2] / "clients" / "wire" / "vectors.json"
VECTORS = json.loads(VECTORS_FILE.read_text())
DECODERS: dict[str, Callable[[Sequence[bytes]], Any]] = {
    "request": decode_request,
    "reply": decode_reply,
    "delivery": decode_delivery,
    "ns-request": decode_ns_request,
    "where": lambda frames: decode_where(frames[0]),
    "here": lambda frames: decode_here(frames[0]),
}


def decoded_json(kind: str, frames: list[bytes]) -> dict[str, Any]:
    """Decode frames of a kind into the vectors' JSON form."""
    value = DECODERS[kind](frames)
    if kind == "ns-request":
        return vectorgen_ns.ns_to_json(value)
    if kind == "where":
        return {"type": "WHERE", "nonce": value}
    if kind == "here":
        return {"type": "HERE", "nonce": value[0], "endpoint": value[1]}
    return vectorjson.to_json(value)


def encoded(kind: str, message: dict[str, Any]) -> list[bytes]:
    """Encode the vectors' JSON form of a message of a kind into frames."""
    if kind == "ns-request":
        return encode_ns(vectorgen_ns.ns_from_json(message))
    if kind == "where":
        return [encode_where(message["nonce"])]
    if kind == "here":
        return [encode_here(message["nonce"], message["endpoint"])]
    return encode(vectorjson.from_json(message))


def _frames(vector: dict[str, Any]) -> list[bytes]:
    return [bytes.fromhex(f) for f in vector["frames"]]


def test_committed_vectors_are_what_the_generator_makes() -> None:
    assert VECTORS_FILE.read_text() == vectorgen.render(), "run `make vectors` and update SPEC.md"


def test_every_message_kind_has_a_vector() -> None:
    es_types = {v["message"]["type"] for v in VECTORS["valid"] if v["kind"] != "ns-request"}
    assert es_types == {
        "SUB",
        "SUBMATCH",
        "UNSUB",
        "PUB",
        "PING",
        "STATS",
        "ACK",
        "HEARTBEAT",
        "SUBJECTS",
        "NUMSUB",
        "SUBSCRIBERS",
        "OK",
        "ERR",
        "EV",
        "LOST",
        "BYE",
    } | {
        "WHERE",
        "HERE",
    }
    ns_types = {v["message"]["type"] for v in VECTORS["valid"] if v["kind"] == "ns-request"}
    assert ns_types == set(vectorgen_ns.NS_TYPES.values())


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_decodes_to_its_message(vector: dict[str, Any]) -> None:
    assert decoded_json(vector["kind"], _frames(vector)) == vector["message"]


@pytest.mark.parametrize("vector", VECTORS["valid"], ids=lambda v: v["name"])
def test_valid_vector_message_encodes_to_its_frames(vector: dict[str, Any]) -> None:
    assert encoded(vector["kind"], vector["message"]) == _frames(vector)


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=lambda v: v["name"])
def test_invalid_vector_is_refused_with_its_code_and_rid(vector: dict[str, Any]) -> None:
    with pytest.raises(RemoteProtocolError) as caught:
        DECODERS[vector["kind"]](_frames(vector))
    assert caught.value.code == vector["error"]
    assert caught.value.rid == vector["rid"]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["refused"] if v["kind"] == "request"], ids=lambda v: v["name"]
)
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


REQUEST_KINDS = ("request", "ns-request")


@pytest.mark.parametrize(
    "vector",
    [
        v
        for section in ("invalid", "refused")
        for v in VECTORS[section]
        if v["kind"] in REQUEST_KINDS
    ],
    ids=lambda v: v["name"],
)
def test_a_refused_request_vector_is_answered_with_its_error_unless_it_is_an_ack(
    vector: dict[str, Any],
) -> None:
    """SPEC 3: every malformed or refused request gets an ERR, except an ACK, which never gets
    any reply."""
    ack = vector["kind"] == "request" and peek_command(_frames(vector)) == "ACK"
    assert vector["reply"] == (None if ack else "ERR")


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["invalid"] if v["kind"] == "request"], ids=lambda v: v["name"]
)
def test_the_broker_answers_an_invalid_vector_as_its_reply_says(vector: dict[str, Any]) -> None:
    actions = Broker(ServerConfig(), now=0.0).handle(b"peer", _frames(vector), 1.0)
    if vector["reply"] is None:
        assert actions == []
        return
    assert len(actions) == 1 and isinstance(actions[0], Reply)
    reply = decode_reply(actions[0].frames)
    assert isinstance(reply, Err)
    assert (reply.code, reply.rid) == (vector["error"], vector["rid"])


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["valid"] if v["kind"] in REQUEST_KINDS], ids=lambda v: v["name"]
)
def test_a_valid_request_vector_says_what_a_new_server_answers(vector: dict[str, Any]) -> None:
    assert vector["reply"] in ("OK", "ERR", None)
    assert ("error" in vector) == (vector["reply"] == "ERR")


def fresh_name_service() -> NameService:
    return build_service(Registry(MemoryStorage()), "tcp://127.0.0.1:9090", 0.0)


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["refused"] if v["kind"] == "ns-request"], ids=lambda v: v["name"]
)
def test_refused_ns_vector_decodes_and_a_new_name_server_answers_its_code(
    vector: dict[str, Any],
) -> None:
    frames = _frames(vector)
    decode_ns_request(frames)
    reply = decode_reply(fresh_name_service().handle(frames, 1.0))
    assert isinstance(reply, Err)
    assert (reply.code, reply.rid) == (vector["error"], vector["rid"])


def test_a_new_name_service_answers_the_valid_vectors_in_order_as_they_say() -> None:
    service = fresh_name_service()
    for vector in [v for v in VECTORS["valid"] if v["kind"] == "ns-request"]:
        reply = decode_reply(service.handle(_frames(vector), 1.0))
        assert reply.rid == vector["message"]["rid"], vector["name"]
        if vector["reply"] == "OK":
            assert isinstance(reply, Ok), (vector["name"], reply)
        else:
            assert isinstance(reply, Err) and reply.code == vector["error"], vector["name"]


@pytest.mark.parametrize(
    "vector", [v for v in VECTORS["invalid"] if v["kind"] == "ns-request"], ids=lambda v: v["name"]
)
def test_invalid_ns_vector_gets_its_code_from_the_name_server(vector: dict[str, Any]) -> None:
    reply = decode_reply(fresh_name_service().handle(_frames(vector), 1.0))
    assert isinstance(reply, Err)
    assert (reply.code, reply.rid) == (vector["error"], vector["rid"])


def test_key_vectors_follow_from_the_documented_kdf() -> None:
    """Independently of clients.security: scrypt as documented, then X25519 by ZeroMQ."""
    keys = VECTORS["keys"]
    kdf = keys["kdf"]
    for pair in keys["pairs"]:
        secret = hashlib.scrypt(
            pair["passphrase"].encode(),
            salt=kdf["salt"].encode(),
            n=kdf["N"],
            r=kdf["r"],
            p=kdf["p"],
            dklen=kdf["length"],
        )
        assert secret.hex() == pair["secret_hex"]
        assert z85.encode(secret).decode() == pair["secret_z85"]
        assert zmq.curve_public(z85.encode(secret)).decode() == pair["public_z85"]


BACKBONE = VECTORS["backbone"]


@pytest.mark.parametrize("vector", BACKBONE["subjects"], ids=lambda v: repr(v["subject"]))
def test_a_subject_vector_is_its_backbone_subject_and_decodes_to_the_folded_subject(
    vector: dict[str, Any],
) -> None:
    """SPEC 15.2: lower-cased as 7.2 says, then fully case-folded; and back."""
    assert backbone(vector["subject"]) == vector["backbone"]
    assert decode(vector["backbone"]) == vector["subject"].lower().casefold()


@pytest.mark.parametrize("vector", BACKBONE["covers"], ids=lambda v: repr(v["pattern"]))
def test_a_cover_vector_is_the_cover_of_its_pattern(vector: dict[str, Any]) -> None:
    assert cover(vector["pattern"]) == vector["cover"]


@pytest.mark.parametrize("vector", BACKBONE["events"], ids=lambda v: v["message"]["subject"])
def test_an_event_vector_unpacks_to_its_message_and_packs_back(vector: dict[str, Any]) -> None:
    message = vector["message"]
    event = frames.unpack(bytes.fromhex(vector["hex"]))
    assert message["version"] == frames.VERSION
    assert event == frames.RemoteEvent(
        message["node"],
        message["epoch"],
        message["seq"],
        message["time"],
        message["subject"],
        message["fmt"],
        bytes.fromhex(message["payload_hex"]),
    )
    assert frames.pack(event).hex() == vector["hex"]
