"""The name server's request handler: frames in, frames out, with a fake clock."""

from __future__ import annotations

from typing import Any

from clients.wire import Err, Ok, Ping, decode_reply
from clients.wire.ns import ListAll, ListNames, Lookup, NsRequest, Register, Renew, encode_ns
from es.daemon.storage import StorageError
from naming.records import Entry, MemoryStorage
from naming.registry import Registry
from naming.service import build_service

URI = "tcp://127.0.0.1:7766"


def ask(request: NsRequest, now: float = 1.0) -> Ok | Err:
    return decode_reply(SERVICE.handle(encode_ns(request), now))


def ok(request: NsRequest, now: float = 1.0) -> dict[str, Any]:
    reply = ask(request, now)
    assert isinstance(reply, Ok), reply
    return reply.body


SERVICE = build_service(Registry(MemoryStorage()), "tcp://127.0.0.1:9090", 0.0)


def test_ping_says_which_server_answered() -> None:
    assert ok(Ping(1))["server"] == "ns"


def test_the_name_server_lists_itself() -> None:
    assert ok(Lookup(2, ":Pyro.NameServer"))["uri"] == "tcp://127.0.0.1:9090"


def test_a_leased_registration_returns_its_token_and_renews() -> None:
    body = ok(Register(3, ":Pyro.EventService", URI, lease=10.0), now=100.0)
    assert body["expires"] == 110.0 and len(body["token"]) == 32
    assert ok(Renew(4, ":Pyro.EventService", body["token"]), now=105.0)["expires"] == 115.0
    found = ok(Lookup(5, ":Pyro.EventService"), now=114.0)
    assert found["uri"] == URI and found["expires"] == 115.0
    assert "token" not in found  # the registrant's secret stays with the registrant
    reply = ask(Lookup(6, ":Pyro.EventService"), now=116.0)
    assert isinstance(reply, Err) and reply.code == "NOT_FOUND"


def test_listings() -> None:
    ok(Register(7, ":Default.svc", URI))
    assert ok(ListNames(8, group=":Default"))["names"] == {":Default.svc": URI}
    assert ":Pyro.NameServer" in ok(ListNames(9, prefix=":Pyro."))["names"]
    everything = ok(ListAll(10))
    assert {":", ":Pyro", ":Default"} <= set(everything["groups"])
    assert everything["truncated"] is False


class FullDisk(MemoryStorage):
    """Memory storage whose writes fail while `full`, as sqlite's do on a full disk."""

    full = False

    def put(self, entry: Entry) -> None:
        if self.full:
            raise StorageError("storage ns.db failed: database or disk is full")
        super().put(entry)


def test_a_write_that_fails_is_storage_failed_and_changes_nothing() -> None:
    storage = FullDisk()
    service = build_service(Registry(storage), "tcp://127.0.0.1:9090", 0.0)
    storage.full = True
    reply = decode_reply(service.handle(encode_ns(Register(1, ":Default.x", URI)), 1.0))
    assert isinstance(reply, Err) and reply.code == "STORAGE_FAILED"
    missing = decode_reply(service.handle(encode_ns(Lookup(2, ":Default.x")), 1.0))
    assert isinstance(missing, Err) and missing.code == "NOT_FOUND"
    storage.full = False
    assert isinstance(
        decode_reply(service.handle(encode_ns(Register(3, ":Default.x", URI)), 1.0)), Ok
    )
