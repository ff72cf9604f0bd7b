"""The table of functions `es bench --profile` writes from py-spy's collapsed stacks."""

from __future__ import annotations

from es.bench.profile import top_functions


def test_functions_are_counted_by_their_own_samples_and_with_their_callees() -> None:
    lines = [
        "main (a.py:1);publish (b.py:10);put (c.py:5) 6",
        "main (a.py:1);publish (b.py:12) 3",  # another line of the same function
        "main (a.py:1);idle (d.py:3) 1",
        "not a stack line",
    ]
    table = top_functions(lines)
    assert table.startswith("10 samples\n")
    itself, callees = table.split("with what it calls")
    assert " 60.0%        6  put (c.py)" in itself
    assert " 30.0%        3  publish (b.py)" in itself
    assert "100.0%       10  main (a.py)" in callees
    assert " 90.0%        9  publish (b.py)" in callees


def test_no_samples_says_so() -> None:
    assert top_functions([]).startswith("no samples")
