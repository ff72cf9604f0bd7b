"""Patterns in a few RE2 sets: what is built when, and that matching never changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from es.daemon.patterns import Pattern, PatternSet, compile_pattern, compile_set
from es.patternsets import PatternSets, weight

SHAPES = [r"bench\.p{}\..*", r"^stock\.{}$", r"(news|stock)\.{}", r"\w+\.{}\d*", r"{}[a-z]{{2,9}}"]
POOL = [shape.format(n) for shape in SHAPES for n in ("a", "b7", "xyz", "q", "b")]
SUBJECTS = [
    f"{head}.{tail}"
    for head in ("bench", "stock", "news", "x1")
    for tail in ("a", "b7", "xyz", "q.1", "b", "pa.z", "zz")
] + ["a", "b7abc", "qrst", "bench.pb7.x", "bench.pq."]
COMPILED = {text: compile_pattern(text, 1024) for text in POOL}


class Builds:
    """compile_set, counting what it is asked to build; refuses sets over `fail_over` patterns."""

    def __init__(self, fail_over: int | None = None) -> None:
        self.sizes: list[int] = []
        self.fail_over = fail_over

    def __call__(self, texts: list[str]) -> PatternSet | None:
        self.sizes.append(len(texts))
        if self.fail_over is not None and len(texts) > self.fail_over:
            return None
        return compile_set(texts)


def pairs(texts: list[str]) -> list[tuple[str, Pattern]]:
    return [(text, COMPILED.get(text) or compile_pattern(text, 1024)) for text in texts]


def brute(live: set[str], subject: str) -> set[str]:
    return {text for text in live if COMPILED[text].match(subject)}


operations = st.lists(
    st.tuples(st.booleans(), st.lists(st.sampled_from(POOL), min_size=1, max_size=6)),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(operations, st.sampled_from([None, 1, 3]), st.sampled_from([40, 200, 1 << 16]))
def test_matching_equals_each_live_pattern_tried_alone(
    steps: list[tuple[bool, list[str]]], fail_over: int | None, cap: int
) -> None:
    sets = PatternSets(Builds(fail_over), cap=cap)
    live: set[str] = set()
    for adding, texts in steps:
        if adding:
            sets.add(pairs(texts))
            live |= set(texts)
        else:
            for text in texts:
                sets.discard(text)
            live -= set(texts)
        assert len(sets) == len(live)
        for subject in SUBJECTS:
            assert sorted(sets.match(subject)) == sorted(brute(live, subject)), subject
        assert sets.one_by_one <= len(live)


def test_adding_one_pattern_to_2000_builds_a_set_of_one() -> None:
    builds = Builds()
    sets = PatternSets(builds)
    sets.add(pairs([rf"bench\.p{i}\..*" for i in range(2000)]))
    assert builds.sizes == [2000]  # about 42,000 instructions: one set
    sets.add(pairs([r"bench\.new\..*"]))
    assert builds.sizes == [2000, 1]
    assert sorted(sets.match("bench.new.x") + sets.match("bench.p1999.y")) == [
        r"bench\.new\..*",
        r"bench\.p1999\..*",
    ]


def test_patterns_added_one_at_a_time_are_built_a_logarithmic_number_of_times() -> None:
    builds = Builds()
    sets = PatternSets(builds)
    texts = [rf"bench\.p{i}\..*" for i in range(2000)]
    for text in texts:
        sets.add(pairs([text]))
    each = weight(COMPILED.get(texts[0]) or compile_pattern(texts[0], 1024))
    levels = (2000 * each).bit_length()
    assert sum(builds.sizes) <= 2000 * (levels + 1)  # a rebuild of all for each would be 2,001,000
    assert sets.segments <= levels + 1
    assert sets.match("bench.p1234.x") == [r"bench\.p1234\..*"]


def test_no_set_is_built_heavier_than_the_cap() -> None:
    builds = Builds()
    sets = PatternSets(builds, cap=2000)
    texts = [rf"bench\.p{i}\..*" for i in range(1000)]
    for start in range(0, 1000, 7):
        sets.add(pairs(texts[start : start + 7]))
    each = weight(compile_pattern(texts[0], 1024))
    assert max(builds.sizes) * each <= 2000
    assert sets.match("bench.p999.x") == [r"bench\.p999\..*"]


def test_removals_leave_tombstones_until_they_weigh_as_much_as_the_rest() -> None:
    builds = Builds()
    sets = PatternSets(builds)
    texts = [rf"bench\.p{i:03}\..*" for i in range(100)]  # all of one weight
    sets.add(pairs(texts))
    for text in texts[:49]:
        sets.discard(text)
    assert builds.sizes == [100]  # 49 tombstones: not rebuilt yet
    assert sets.match("bench.p000.x") == []
    sets.discard(texts[49])
    assert builds.sizes == [100, 50]  # as many dead as live: rebuilt from the 50 left
    assert sets.match("bench.p050.x") == [r"bench\.p050\..*"]


def test_a_set_re2_cannot_build_is_split_and_the_cap_lowered() -> None:
    builds = Builds(fail_over=8)
    sets = PatternSets(builds)
    texts = [rf"bench\.p{i}\..*" for i in range(64)]
    sets.add(pairs(texts))
    assert sets.one_by_one == 0  # split down to sets RE2 builds, never tried one by one
    assert sets.cap < 64 * weight(compile_pattern(texts[0], 1024))
    failed = len(builds.sizes)
    sets.add(pairs([r"bench\.more\..*"]))
    assert len(builds.sizes) == failed + 1  # the lower cap keeps it from failing again
    assert sets.match("bench.p63.x") == [r"bench\.p63\..*"]


def test_a_single_pattern_re2_refuses_as_a_set_is_tried_alone() -> None:
    sets = PatternSets(Builds(fail_over=0))
    sets.add(pairs([r"bench\.p1\..*", r"bench\.p2\..*"]))
    assert sets.one_by_one == 2
    assert sets.match("bench.p2.x") == [r"bench\.p2\..*"]
    sets.discard(r"bench\.p2\..*")
    assert sets.one_by_one == 1 and sets.match("bench.p2.x") == []
