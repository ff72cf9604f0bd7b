"""The subscription index: two maps in step, pruning, matching, the recipients cache."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from es.daemon.patterns import PatternSet, compile_pattern, compile_set
from es.index import SubscriptionIndex


def pat(text: str) -> tuple[str, object]:
    return text, compile_pattern(text, 1024)


def test_exact_subjects_are_case_insensitive() -> None:
    index = SubscriptionIndex()
    index.add_subjects("s1", ["StockQuotes"])
    assert index.recipients("stockquotes") == {"s1"}
    assert index.recipients("STOCKQUOTES") == {"s1"}
    assert index.recipients("stockquote") == frozenset()


def test_the_pyro_manual_pattern_example() -> None:
    index = SubscriptionIndex()
    index.add_patterns("s1", [pat(r"^STOCKQUOTE\.S.*$")])  # type: ignore[list-item]
    assert index.recipients("STOCKQUOTE.SUN") == {"s1"}
    assert index.recipients("stockquote.sap") == {"s1"}
    assert index.recipients("STOCKQUOTE.IBM") == frozenset()
    assert index.recipients("NYSE.STOCKQUOTE.SUN") == frozenset()


def test_patterns_are_anchored_at_the_start_only() -> None:
    index = SubscriptionIndex()
    index.add_patterns("s1", [pat("stock")])  # type: ignore[list-item]
    assert index.recipients("stockquote.sun") == {"s1"}
    assert index.recipients("nyse.stock") == frozenset()


def test_a_subscriber_matched_several_ways_is_listed_once() -> None:
    index = SubscriptionIndex()
    index.add_subjects("s1", ["a.b"])
    index.add_patterns("s1", [pat("a"), pat(r"a\.b")])  # type: ignore[list-item]
    assert index.recipients("A.B") == {"s1"}


def test_unsubscribe_removes_a_name_from_both_lists() -> None:
    index = SubscriptionIndex()
    index.add_subjects("s1", ["x.*"])
    index.add_patterns("s1", [pat("x.*")])  # type: ignore[list-item]
    assert index.count("s1") == 2
    assert index.remove("s1", ["x.*"]) == 0
    assert index.recipients("x.y") == frozenset()


def test_maps_are_pruned_when_empty() -> None:
    index = SubscriptionIndex()
    index.add_subjects("s1", ["a"])
    index.add_subjects("s2", ["a"])
    index.add_patterns("s1", [pat("b")])  # type: ignore[list-item]
    index.remove("s1", ["a", "b"])
    assert index.sids() == ["s2"]
    assert index.pattern_count == 0
    index.drop("s2")
    assert (index.sids(), index.subject_count, index.pattern_count) == ([], 0, 0)


def test_a_pattern_shared_by_many_is_compiled_once_and_kept_until_the_last_leaves() -> None:
    index = SubscriptionIndex()
    index.add_patterns("s1", [pat("p")])  # type: ignore[list-item]
    index.add_patterns("s2", [pat("p")])  # type: ignore[list-item]
    assert index.pattern_count == 1
    index.remove("s1", ["p"])
    assert index.recipients("p") == {"s2"}


def test_cache_is_used_and_invalidated_by_changes() -> None:
    index = SubscriptionIndex()
    index.add_subjects("s1", ["a"])
    assert index.recipients("a") == {"s1"}
    assert index.recipients("A") == {"s1"}
    assert index.cache_hits == 1
    index.add_subjects("s2", ["a"])
    assert index.recipients("a") == {"s1", "s2"}
    index.add_patterns("s3", [pat("a")])  # type: ignore[list-item]
    assert index.recipients("a") == {"s1", "s2", "s3"}
    index.remove("s3", ["a"])
    assert index.recipients("a") == {"s1", "s2"}
    index.drop("s1")
    assert index.recipients("a") == {"s2"}


def test_cache_is_bounded_lru() -> None:
    index = SubscriptionIndex(cache_size=2)
    index.add_subjects("s1", ["a"])
    for subject in ("a", "b", "a", "c"):
        index.recipients(subject)
    assert index.cache_len == 2
    hits = index.cache_hits
    index.recipients("a")  # survived as most recently used
    assert index.cache_hits == hits + 1


def test_the_pattern_set_finds_exactly_what_matching_one_by_one_finds() -> None:
    """Many patterns are matched through one RE2 set; it must agree with each pattern's own
    match (anchored at the start, case-insensitive), before and after patterns change."""
    rng = random.Random(7)
    shapes = [r"stock\.{}", r"^stock\.{}.*$", r"(news|stock)\.{}", r"\w+\.{}\d*", r"STOCK\.{}"]
    pairs = (
        (f"s{n % 50}", rng.choice(shapes).format(rng.choice("abcxyz") * rng.randint(1, 3)))
        for n in range(300)
    )
    held = list(dict.fromkeys(pairs))  # a subscriber holds a pattern once
    compiled = {text: compile_pattern(text, 1024) for _, text in held}
    index = SubscriptionIndex(cache_size=0)  # no cache: every call matches
    for sid, text in held:
        index.add_patterns(sid, [(text, compiled[text])])

    def expected(subject: str) -> frozenset[str]:
        return frozenset(sid for sid, text in held if compiled[text].match(subject.lower()))

    subjects = [
        f"{rng.choice(['stock', 'NEWS', 'Stock', 'x'])}.{rng.choice('abcxyz') * rng.randint(1, 4)}"
        f"{rng.choice(['', '7', '.more'])}"
        for _ in range(200)
    ]
    for subject in subjects:  # the first few scan; then the set is built and used
        assert index.recipients(subject) == expected(subject), subject
    assert index._set is not None
    for sid, text in held[:100]:
        index.remove(sid, [text])
    held = held[100:]
    for subject in subjects:
        assert index.recipients(subject) == expected(subject), subject


def test_ten_thousand_patterns_fit_in_one_set() -> None:
    index = SubscriptionIndex()
    index.add_patterns("s1", [pat(rf"bench\.p{i}\..*") for i in range(10_000)])
    for i in range(10):
        assert index.recipients(f"bench.fresh.{i}") == frozenset()
    assert index._set is not None
    assert index.recipients("BENCH.P9999.x") == {"s1"}


# --- pattern changes are incremental -------------------------------------------------------------

POOL = [
    r"stock\.a",
    r"^stock\..*$",
    r"(news|stock)\.b",
    r"\w+\.c\d*",
    r"STOCK\.A",
    "news",
    r"x\.\w{2}",
    r"[a-c]+\.",
]
SUBJECTS = ["stock.a", "STOCK.b", "news.b", "news.c7", "x.ab", "abc.", "Stock.A.1", "x.a", "q.c"]
SIDS = ["s1", "s2", "s3"]
COMPILED = {text: compile_pattern(text, 1024) for text in POOL}

steps = st.lists(
    st.tuples(
        st.sampled_from(["patterns", "subjects", "remove", "drop"]),
        st.sampled_from(SIDS),
        st.lists(st.sampled_from([*POOL, "stock.a", "x.ab"]), min_size=1, max_size=4),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(steps, st.sampled_from([0, 3, 100]))
def test_recipients_equal_a_brute_force_match_over_every_live_subscription(
    changes: list[tuple[str, str, list[str]]], cache_size: int
) -> None:
    index = SubscriptionIndex(cache_size=cache_size)
    held: dict[str, tuple[set[str], set[str]]] = {}  # sid -> (folded subjects, patterns)
    for kind, sid, names in changes:
        subjects, patterns = held.setdefault(sid, (set(), set()))
        if kind == "patterns":
            ok = [n for n in names if n in COMPILED]
            index.add_patterns(sid, [(n, COMPILED[n]) for n in ok])
            patterns |= set(ok)
        elif kind == "subjects":
            index.add_subjects(sid, names)
            subjects |= {n.lower() for n in names}
        elif kind == "remove":
            index.remove(sid, names)
            subjects -= {n.lower() for n in names}
            patterns -= set(names)
        else:
            index.drop(sid)
            held[sid] = (set(), set())
        for subject in SUBJECTS:
            key = subject.lower()
            expected = {
                s
                for s, (exact, pats) in held.items()
                if key in exact or any(COMPILED[p].match(key) for p in pats)
            }
            assert index.recipients(subject) == expected, (subject, changes)
        assert index.pattern_count == len(set().union(*(p for _, p in held.values())))


def test_adding_one_pattern_to_2000_does_not_rebuild_them_all() -> None:
    built: list[int] = []

    def counting(texts: list[str]) -> PatternSet | None:
        built.append(len(texts))
        return compile_set(texts)

    index = SubscriptionIndex(build=counting)
    index.add_patterns("s1", [pat(rf"bench\.p{i}\..*") for i in range(2000)])  # type: ignore[misc]
    assert index.recipients("bench.p5.x") == {"s1"}
    before = list(built)
    index.add_patterns("s2", [pat(r"bench\.new\..*")])  # type: ignore[list-item]
    assert index.recipients("bench.new.x") == {"s2"}
    assert index.recipients("bench.p1999.y") == {"s1"}
    assert built == [*before, 1]  # a set of the one new pattern, nothing else


def test_a_pattern_already_held_is_handed_out_compiled() -> None:
    index = SubscriptionIndex()
    compiled = compile_pattern("shared", 1024)
    index.add_patterns("s1", [("shared", compiled)])
    assert index.pattern("shared") is compiled
    assert index.pattern("other") is None
    index.remove("s1", ["shared"])
    assert index.pattern("shared") is None
