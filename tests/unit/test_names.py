"""Pyro's hierarchical names."""

from __future__ import annotations

import pytest

from clients.errors import BadName
from clients.names import absolute, check_absolute, parent


def test_absolute_names_pass_and_relative_ones_join_the_default_group() -> None:
    assert check_absolute(":Pyro.EventService") == ":Pyro.EventService"
    assert absolute("quotes") == ":Default.quotes"
    assert absolute("quotes", ":Stock") == ":Stock.quotes"
    assert absolute("quotes", ":") == ":quotes"
    assert absolute(":Pyro.NameServer", ":Stock") == ":Pyro.NameServer"


@pytest.mark.parametrize(
    "name", ["Pyro.x", ":", ":a..b", ":a.", ":a b", ":a:b", ":" + "x" * 300, ""]
)
def test_malformed_names_are_refused(name: str) -> None:
    if name == ":":
        assert check_absolute(name) == ":"  # the root group is a valid group name
        return
    with pytest.raises(BadName):
        check_absolute(name)


def test_parents() -> None:
    assert parent(":Pyro.EventService") == ":Pyro"
    assert parent(":Pyro") == ":"
    assert parent(":") == ":"
