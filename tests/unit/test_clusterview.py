"""The cluster view's merge (clients.clusterview): sums exact, partial exactly when a node known
of did not answer, and which."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from clients.clusterview import SUMMED, merge

NAMES = ["a", "b", "c", "d"]


def _body(name: str, peers: list[str], counts: dict[str, int]) -> dict[str, Any]:
    return {"server": {**counts, "cluster": {"node": name, "peers": peers}}, "subscribers": []}


nodes = st.dictionaries(
    st.sampled_from(NAMES),
    st.tuples(
        st.booleans(),  # answered
        st.lists(st.sampled_from(NAMES), unique=True),  # its peers
        st.fixed_dictionaries({key: st.integers(0, 10**9) for key in SUMMED}),
    ),
)


@given(nodes)
def test_the_view_sums_what_answered_and_says_who_did_not(drawn: dict[str, Any]) -> None:
    answers = {
        f"tcp://127.0.0.1:{7000 + NAMES.index(name)}": (
            _body(name, [p for p in peers if p != name], counts) if answered else None
        )
        for name, (answered, peers, counts) in drawn.items()
    }
    view = merge(answers)
    answered = {n for n, (ok, _, _) in drawn.items() if ok}
    assert set(view["nodes"]) == answered
    for key in SUMMED:
        assert view["totals"][key] == sum(drawn[n][2][key] for n in answered)
    named = {p for n in answered for p in drawn[n][1] if p != n}
    assert view["missing"] == sorted(named - answered)
    assert len(view["unanswered"]) == len(drawn) - len(answered)
    assert view["partial"] == bool(view["missing"] or view["unanswered"])
    assert view["partial"] == (len(answered) < len(drawn) or bool(named - answered))


def test_a_server_that_is_not_in_a_cluster_is_shown_by_its_endpoint() -> None:
    view = merge({"tcp://127.0.0.1:7766": {"server": {"subscribers": 2}}})
    assert list(view["nodes"]) == ["tcp://127.0.0.1:7766"] and not view["partial"]
    assert view["totals"]["subscribers"] == 2 and view["totals"]["events_published"] == 0
