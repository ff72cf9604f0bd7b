"""es.capacity: one figure for the subscribers a process can hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from es.capacity import (
    FDS_PER_SUBSCRIBER,
    SOCKETS_PER_SUBSCRIBER,
    plan,
    reserve_for,
    wanted_descriptors,
)


def test_enough_descriptors_reach_the_configured_maximum() -> None:
    capacity = plan(10_000, wanted_descriptors(10_000), 65_535)
    assert capacity.subscribers == 10_000
    assert capacity.bound_by is None
    assert capacity.sockets >= SOCKETS_PER_SUBSCRIBER * 10_000


def test_a_low_descriptor_limit_lowers_the_room_and_says_why() -> None:
    capacity = plan(10_000, 1024, 65_535)
    assert capacity.subscribers == (1024 - 256) // FDS_PER_SUBSCRIBER
    assert capacity.bound_by is not None and "ulimit -n" in capacity.bound_by
    assert "out of reach" in capacity.describe(10_000)


def test_zeromq_socket_ceiling_lowers_the_room() -> None:
    capacity = plan(10_000, 1_000_000, 1023)
    assert capacity.subscribers == (1023 - 64) // SOCKETS_PER_SUBSCRIBER
    assert capacity.bound_by is not None and "sockets" in capacity.bound_by


@given(st.integers(0, 200_000), st.integers(0, 2_000_000), st.integers(0, 200_000))
def test_the_room_never_needs_more_than_the_limits_give(
    wanted: int, descriptors: int, socket_limit: int
) -> None:
    capacity = plan(wanted, descriptors, socket_limit)
    assert 0 <= capacity.subscribers <= wanted
    used = FDS_PER_SUBSCRIBER * capacity.subscribers + reserve_for(descriptors)
    assert capacity.subscribers == 0 or used <= descriptors
    assert capacity.sockets <= socket_limit or capacity.subscribers == 0
    assert capacity.sockets >= SOCKETS_PER_SUBSCRIBER * capacity.subscribers
    assert (capacity.bound_by is None) == (capacity.subscribers == wanted)
