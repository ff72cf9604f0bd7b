"""Shared names (SPEC 12.6): several URIs under one name, each with its own lease and token, over
both storages, with a fake clock. And how a client picks one of them."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.errors import NameTaken, NotFound, NotOwner
from clients.naming import pick
from naming.records import MemoryStorage, Storage
from naming.registry import Registry
from naming.storage import SqliteStorage

NAME = ":Pyro.EventService"
A, B, C = (f"tcp://127.0.0.1:{port}" for port in (7001, 7002, 7003))


@pytest.fixture(params=["memory", "sqlite"])
def reg(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    store: Storage = (
        MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "ns.db")
    )
    yield Registry(store, max_names=5)
    store.close()


def test_nodes_share_a_name_each_with_its_own_lease(reg: Registry) -> None:
    a = reg.register(NAME, A, 0.0, lease=10.0, shared=True)
    b = reg.register(NAME, B, 5.0, lease=10.0, shared=True)
    assert (a.name, b.name) == (NAME, NAME) and a.token != b.token
    assert [e.uri for e in reg.lookup_all(NAME, 6.0)] == [A, B]
    assert reg.lookup(NAME, 6.0).uri == A  # one, for clients that read one
    assert [e.uri for e in reg.lookup_all(NAME, 11.0)] == [B]  # a's lease ran out
    assert reg.renew(NAME, str(b.token), 14.0).expires == 24.0
    assert reg.expire(16.0) == [NAME]  # a's entry, gone for good
    assert [e.uri for e in reg.lookup_all(NAME, 23.0)] == [B]
    with pytest.raises(NotFound):
        reg.lookup_all(NAME, 24.0)


def test_a_node_renews_and_removes_only_its_own_entry(reg: Registry) -> None:
    a = reg.register(NAME, A, 0.0, lease=10.0, shared=True)
    reg.register(NAME, B, 0.0, lease=10.0, shared=True)
    with pytest.raises(NotOwner):
        reg.renew(NAME, "not a token", 1.0)
    reg.remove(NAME, 1.0, token=a.token)
    assert [e.uri for e in reg.lookup_all(NAME, 1.0)] == [B]
    with pytest.raises(NotOwner):
        reg.remove(NAME, 1.0, token=a.token)
    again = reg.register(NAME, B, 2.0, lease=10.0, shared=True)  # the same node again: one entry
    assert [e.uri for e in reg.lookup_all(NAME, 2.0)] == [B] and again.expires == 12.0


def test_a_name_is_single_or_shared_never_both(reg: Registry) -> None:
    reg.register(NAME, A, 0.0, lease=10.0)
    with pytest.raises(NameTaken):
        reg.register(NAME, B, 0.0, shared=True)
    reg.register(NAME, B, 0.0, shared=True, replace_existing=True)  # the single one goes
    assert [e.uri for e in reg.lookup_all(NAME, 0.0)] == [B]
    with pytest.raises(NameTaken, match="shared"):
        reg.register(NAME, C, 0.0)
    reg.register(NAME, C, 0.0, replace_existing=True)  # every shared one goes
    assert [e.uri for e in reg.lookup_all(NAME, 0.0)] == [C]


def test_a_shared_name_lists_once_counts_each_entry_and_takes_meta_and_removal_whole(
    reg: Registry,
) -> None:
    for uri in (A, B, C):
        reg.register(":Default.svc", uri, 0.0, shared=True)
    names, _ = reg.list_all(0.0)
    assert names[":Default.svc"] == A and " " not in "".join(names)
    reg.register(":Default.x", A, 0.0)
    assert reg.list_group(":Default", 0.0)[0] == {":Default.svc": A, ":Default.x": A}
    reg.set_meta(":Default.svc", "nodes", 0.0)
    assert {e.meta for e in reg.lookup_all(":Default.svc", 0.0)} == {"nodes"}
    reg.remove(":Default.svc", 0.0)  # no token: every entry
    with pytest.raises(NotFound):
        reg.lookup(":Default.svc", 0.0)
    with pytest.raises(NameTaken):
        reg.create_group(":Default.x", 0.0)


@given(st.lists(st.sampled_from([A, B, C]), min_size=1), st.sampled_from([A, B, C, None]))
def test_a_client_picks_another_endpoint_than_the_one_that_failed_while_there_is_one(
    endpoints: list[str], avoid: str | None
) -> None:
    chosen = pick(endpoints, avoid, random.Random(1))
    assert chosen in endpoints
    assert chosen != avoid or set(endpoints) == {avoid}
