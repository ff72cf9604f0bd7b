"""Subjects on the backbone (es.cluster.subjects): the encoding, and covers of patterns.

The property that matters: a node listening on `cover(p)` hears every event whose subject `p`
matches. Patterns are drawn both at random and as mangled prefixes of the subject itself (other
cases, RE2's case-fold partners of ASCII letters, escapes, quantifiers), so that most draws match.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from clients.errors import BadPattern
from es.cluster.subjects import (
    EVERYTHING,
    backbone,
    cover,
    decode,
    literal_prefix,
    matches,
)
from es.daemon.patterns import compile_pattern, fold

# Letters that fold into others in surprising ways: the Kelvin sign and the long s (RE2 takes them
# for k and s), the dotted capital I (lower-cases to two characters), the sharp s, final sigma.
_TRICKY = (
    "kK\u212asS\u017f\u0130\u0131iI\u00df\u1e9e"  # k, K, Kelvin, s, S, long s, I...
    "\u03c3\u03c2\u03a3\u00b5\u039c.-_ *>$\\\u00e9\u0301\x00"  # sigmas, micro, mu...
)
SUBJECT_CHARS = (
    st.sampled_from(_TRICKY)
    | st.sampled_from("abkxyz")
    | st.characters(codec="utf-8", exclude_categories=["Cs"])
)
# Mostly dotted subjects, so that patterns have whole tokens in their literal prefixes.
subjects = st.lists(st.text(SUBJECT_CHARS, max_size=5), min_size=1, max_size=5).map(".".join) | (
    st.text(SUBJECT_CHARS, min_size=1, max_size=24)
)

_TOKEN = re.compile(r"^(?:_|(?:[a-z0-9-]|_[0-9a-f]{2})+)$")
# Characters RE2 (case-insensitive) takes for each ASCII letter besides its two cases.
_PARTNERS = {"k": "\u212a", "s": "\u017f"}


@given(subjects)
@example("A..b.")
@example("\u212a.\u017f")
def test_a_backbone_subject_is_plain_tokens_and_decodes_to_the_folded_subject(subject: str) -> None:
    nats = backbone(subject)
    tokens = nats.split(".")
    assert tokens[0] == "ev"
    assert all(_TOKEN.match(token) for token in tokens[1:]), nats
    assert decode(nats) == fold(subject).casefold()


@given(subjects)
def test_every_spelling_an_exact_subscription_matches_has_one_backbone_subject(
    subject: str,
) -> None:
    assert backbone(subject) == backbone(fold(subject)) == backbone(fold(subject).casefold())


@st.composite
def near_patterns(draw: st.DrawFn, subject: str) -> str:
    """A pattern built from a prefix of `subject`: most match it, some just miss. Now and then
    it has an optional piece the subject lacks, or an alternative the subject does not start
    with: a cover that counted on either would miss the subject."""
    prefix = subject[: draw(st.integers(0, len(subject)))]
    out: list[str] = []
    for char in prefix:
        choice = draw(st.integers(0, 5))
        if char == "." and choice:
            out.append("\\.")  # mostly a literal dot, sometimes any character
        elif choice == 0:
            out.append(char.upper())
        elif choice == 1 and char.lower() in _PARTNERS:
            out.append(_PARTNERS[char.lower()])
        elif choice == 2:
            out.append(re.escape(char))
        else:
            out.append(char)
    if draw(st.booleans()):
        absent = draw(st.sampled_from(["\\.?", "\\.*", "q?\\.?", "\\.{0,1}", "q{0}\\."]))
        out.insert(draw(st.integers(0, len(out))), absent)
    tail = draw(st.sampled_from(["", ".*", "+", "*", "?", "{0,2}", "[a-z]", "(a)?", "$"]))
    head = draw(st.sampled_from(["", "^", "(?i)", "(?s)", "qq\\.q|", "(qq\\.q)|"]))
    return head + "".join(out) + tail


random_patterns = st.text(
    st.sampled_from("ab.kK\u212as\u017f\\*+?{}[]()|^$-_ 0é"), min_size=1, max_size=12
)


def _check_cover(pattern: str, subject: str) -> None:
    try:
        compiled = compile_pattern(pattern, 1024)
    except BadPattern:
        return
    if compiled.match(fold(subject)):
        assert matches(cover(pattern), backbone(subject)), (cover(pattern), backbone(subject))


@settings(max_examples=600)
@given(st.data(), subjects)
@example(None, "\u017f.x")
def test_a_cover_takes_in_every_subject_its_pattern_matches(
    data: st.DataObject | None, subject: str
) -> None:
    if data is None:  # the @example: the long s, which RE2 takes for an s
        _check_cover("s\\.x", subject)
        return
    _check_cover(data.draw(near_patterns(subject)), subject)
    _check_cover(data.draw(random_patterns), subject)


@pytest.mark.parametrize(
    ("pattern", "prefix", "nats"),
    [
        ("stock\\.nyse\\..*", "stock.nyse.", "ev.stock.nyse.>"),
        ("^Stock\\.NYSE", "stock.nyse", "ev.stock.>"),
        ("stock\\.nyse\\.ibm", "stock.nyse.ibm", "ev.stock.nyse.>"),
        ("stock.nyse", "stock", "ev.>"),  # an unescaped dot is any character
        ("ab*\\.c", "a", "ev.>"),  # b may be absent
        ("ab+\\.c", "ab", "ev.>"),  # b is there at least once; what follows is not certain
        ("a\\.b?", "a.", "ev.a.>"),
        ("a\\.b{2}", "a.", "ev.a.>"),
        ("a\\.b|c\\.d", "", EVERYTHING),  # an alternation: nothing is certain
        ("orders\\.(eu|us)\\.new", "orders.", "ev.orders.>"),  # inside a group: after it
        ("a\\.[|]|b", "", EVERYTHING),  # the class's `|` is a member; the last one alternates
        ("a\\.[|]x", "a.", "ev.a.>"),
        ("a\\.\\|x", "a.|x", "ev.a.>"),  # an escaped `|` is a literal
        ("a\\.[]|]x", "a.", "ev.a.>"),
        ("(?i)a\\.b", "a.b", "ev.a.>"),  # flags change no literal: matching folds anyway
        ("^(?s)(?-i)A\\.b", "a.b", "ev.a.>"),
        ("(?i:a)\\.b", "", EVERYTHING),  # a group, not flags
        ("[a]\\.b", "", EVERYTHING),
        ("x_y\\.z", "x_y.z", "ev.x_5fy.>"),
        ("caf\u00e9\\.x", "caf", EVERYTHING),  # stops at a letter outside ASCII
        ("a\\", "a", EVERYTHING),
    ],
)
def test_literal_prefixes_and_covers(pattern: str, prefix: str, nats: str) -> None:
    assert literal_prefix(pattern) == prefix
    assert cover(pattern) == nats


@pytest.mark.parametrize(
    ("nats_filter", "subject", "wanted"),
    [
        ("ev.>", "ev.a", True),
        ("ev.>", "ev", False),
        ("ev.a.>", "ev.a", False),
        ("ev.a.>", "ev.a.b.c", True),
        ("ev.*.c", "ev.b.c", True),
        ("ev.*.c", "ev.b.d", False),
        ("ev.a", "ev.a.b", False),
        ("ev.a.b", "ev.a", False),
    ],
)
def test_nats_filters_match_as_the_server_does(
    nats_filter: str, subject: str, wanted: bool
) -> None:
    assert matches(nats_filter, subject) is wanted


@pytest.mark.parametrize("bad", ["ev", "x.a", "ev.A", "ev._zz", "ev._4", "ev.a*", "ev._4A"])
def test_decode_refuses_what_backbone_never_makes(bad: str) -> None:
    with pytest.raises(ValueError, match=r"subject|token"):
        decode(bad)
