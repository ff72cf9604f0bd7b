"""The registry over both storages, with a fake clock: no network, no sleeping."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.errors import (
    BadEndpoint,
    BadName,
    BadPattern,
    BadRequest,
    LimitExceeded,
    NameTaken,
    NotEmpty,
    NotFound,
    NotOwner,
)
from naming.records import MemoryStorage, Storage
from naming.registry import Registry
from naming.storage import SqliteStorage, open_storage

URI = "tcp://127.0.0.1:7766"


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    store: Storage = (
        MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "ns.db")
    )
    yield store
    store.close()


@pytest.fixture
def reg(storage: Storage) -> Registry:
    return Registry(storage, max_names=5)


def test_register_lookup_remove(reg: Registry) -> None:
    reg.register(":Pyro.EventService", URI, 0.0, meta="es")
    entry = reg.lookup(":Pyro.EventService", 1.0)
    assert (entry.uri, entry.meta, entry.expires, entry.token) == (URI, "es", None, None)
    reg.remove(":Pyro.EventService", 2.0)
    with pytest.raises(NotFound):
        reg.lookup(":Pyro.EventService", 3.0)


def test_register_refuses_to_overwrite_unless_asked(reg: Registry) -> None:
    reg.register(":Default.x", URI, 0.0)
    with pytest.raises(NameTaken):
        reg.register(":Default.x", "tcp://127.0.0.1:1", 0.0)
    reg.register(":Default.x", "tcp://127.0.0.1:1", 0.0, replace_existing=True)
    assert reg.lookup(":Default.x", 0.0).uri == "tcp://127.0.0.1:1"


def test_names_need_their_group(reg: Registry) -> None:
    with pytest.raises(NotFound, match="creategroup"):
        reg.register(":Stock.Quotes", URI, 0.0)
    reg.create_group(":Stock", 0.0)
    reg.register(":Stock.Quotes", URI, 0.0)
    with pytest.raises(NameTaken):
        reg.register(":Stock", URI, 0.0)  # a group is not a name
    with pytest.raises(NameTaken):
        reg.create_group(":Stock.Quotes", 0.0)  # a name is not a group


@pytest.mark.parametrize(
    ("name", "uri", "error"),
    [
        ("relative", URI, BadName),
        (":a..b", URI, BadName),
        (":Default.x", "http://x", BadEndpoint),
        (":Default.x", "tcp://host", BadEndpoint),
    ],
)
def test_bad_registrations(reg: Registry, name: str, uri: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        reg.register(name, uri, 0.0)


def test_leases_expire_unless_renewed(reg: Registry) -> None:
    entry = reg.register(":Pyro.EventService", URI, 100.0, lease=10.0)
    assert entry.expires == 110.0 and entry.token
    assert reg.renew(":Pyro.EventService", entry.token, 108.0).expires == 118.0
    assert reg.lookup(":Pyro.EventService", 117.9).uri == URI
    with pytest.raises(NotFound):
        reg.lookup(":Pyro.EventService", 118.0)
    with pytest.raises(NotFound):
        reg.renew(":Pyro.EventService", entry.token, 118.5)
    assert reg.list_all(118.0)[0] == {}


def test_an_expired_name_can_be_taken_and_expire_purges(reg: Registry, storage: Storage) -> None:
    reg.register(":Default.x", URI, 0.0, lease=5.0)
    reg.register(":Default.x", "tcp://127.0.0.1:2", 6.0)  # no replace needed: the old one expired
    reg.register(":Default.y", URI, 0.0, lease=5.0)
    assert reg.expire(10.0) == [":Default.y"]
    assert [e.name for e in storage.entries()] == [":Default.x"]


def test_only_the_lease_holder_renews_or_removes_conditionally(reg: Registry) -> None:
    first = reg.register(":Default.x", URI, 0.0, lease=10.0)
    second = reg.register(":Default.x", URI, 1.0, lease=10.0, replace_existing=True)
    assert first.token and second.token and first.token != second.token
    with pytest.raises(NotOwner):
        reg.renew(":Default.x", first.token, 2.0)
    with pytest.raises(NotOwner):
        reg.remove(":Default.x", 2.0, token=first.token)
    reg.remove(":Default.x", 2.0, token=second.token)


def test_permanent_entries_cannot_be_renewed(reg: Registry) -> None:
    reg.register(":Default.x", URI, 0.0)
    with pytest.raises(NotOwner):
        reg.renew(":Default.x", "anything", 1.0)


def test_lease_bounds(reg: Registry) -> None:
    with pytest.raises(BadRequest):
        reg.register(":Default.x", URI, 0.0, lease=0.1)
    with pytest.raises(BadRequest):
        reg.register(":Default.x", URI, 0.0, lease=10**6)


def test_name_count_is_bounded(reg: Registry) -> None:
    for i in range(5):
        reg.register(f":Default.n{i}", URI, 0.0)
    with pytest.raises(LimitExceeded):
        reg.register(":Default.n5", URI, 0.0)
    reg.register(":Default.n0", URI, 0.0, replace_existing=True)  # replacing adds nothing


def test_groups_and_listing(reg: Registry) -> None:
    reg.create_group(":Stock", 0.0)
    reg.create_group(":Stock.NYSE", 0.0)
    reg.register(":Stock.Quotes", URI, 0.0)
    reg.register(":Stock.NYSE.IBM", URI, 0.0)
    reg.register(":Pyro.EventService", URI, 0.0)
    assert reg.list_group(":Stock", 0.0) == ({":Stock.Quotes": URI}, [":Stock.NYSE"])
    assert reg.list_group(":", 0.0)[1] == [":Default", ":Pyro", ":Stock"]
    assert set(reg.list_prefix(":Stock.", 0.0)[0]) == {":Stock.Quotes", ":Stock.NYSE.IBM"}
    assert set(reg.list_regex(r":Stock\..*IBM", 0.0)[0]) == {":Stock.NYSE.IBM"}
    assert reg.list_regex(":stock", 0.0) == ({}, [])  # names are case-sensitive
    names, groups = reg.list_all(0.0)
    assert len(names) == 3 and ":" in groups
    with pytest.raises(BadPattern):
        reg.list_regex("(?=x)", 0.0)
    with pytest.raises(NotFound):
        reg.list_group(":Nowhere", 0.0)


def test_delete_group_only_when_empty(reg: Registry) -> None:
    reg.create_group(":Stock", 0.0)
    reg.register(":Stock.Quotes", URI, 0.0)
    with pytest.raises(NotEmpty):
        reg.delete_group(":Stock", 0.0)
    reg.remove(":Stock.Quotes", 0.0)
    reg.delete_group(":Stock", 0.0)
    with pytest.raises(NotFound):
        reg.delete_group(":Stock", 0.0)
    with pytest.raises(BadName):
        reg.delete_group(":", 0.0)


def test_a_group_holding_only_expired_names_is_empty(reg: Registry) -> None:
    reg.create_group(":Tmp", 0.0)
    reg.register(":Tmp.x", URI, 0.0, lease=2.0)
    reg.delete_group(":Tmp", 5.0)


def test_metadata(reg: Registry) -> None:
    reg.register(":Default.x", URI, 0.0)
    reg.set_meta(":Default.x", "quotes every second", 1.0)
    assert reg.get_meta(":Default.x", 1.0) == "quotes every second"
    with pytest.raises(NotFound):
        reg.set_meta(":Default.nobody", "x", 1.0)


def test_sqlite_registrations_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ns.db"
    first = open_storage(f"sqlite:{path}")
    reg = Registry(first)
    reg.create_group(":Stock", 0.0)
    token = reg.register(":Stock.Quotes", URI, 0.0, lease=100.0, meta="m").token
    first.close()
    second = open_storage(f"sqlite:{path}")
    again = Registry(second)
    entry = again.lookup(":Stock.Quotes", 50.0)
    assert (entry.uri, entry.meta, entry.token) == (URI, "m", token)
    assert again.renew(":Stock.Quotes", token or "", 60.0).expires == 160.0
    second.close()


def test_storage_spec() -> None:
    assert isinstance(open_storage("memory"), MemoryStorage)
    with pytest.raises(ValueError, match="sqlite:PATH"):
        open_storage("sqlite:")
    with pytest.raises(ValueError, match="memory"):
        open_storage("redis://x")
