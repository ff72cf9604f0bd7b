"""Our subjects as NATS subjects on the backbone, and the NATS filter that covers a pattern.

Our subjects are any case-insensitive strings; a NATS subject is a list of tokens joined by `.`,
compared byte for byte, with `*` (one token) and `>` (the rest) as wildcards. This module maps
one onto the other (SPEC 15.2). No sockets, no NATS client: strings in, strings out.

Invariants:
- `backbone(s)` is a function of `fold(s)`: every spelling of a subject that an exact
  subscription matches lands on one NATS subject, which that subscription's node listens to.
- Every token is non-empty and made of `a-z`, `0-9`, `-` and `_` only; `_` starts an escape
  (`_xx`, two lower-case hex digits per UTF-8 byte), and a lone `_` is an empty token. So no
  subject ever reads as a wildcard, and `decode(backbone(s))` gives back the case-folded subject.
- `cover(p)` matches the backbone subject of every subject that pattern `p` matches (the RE2
  pattern, case-insensitive, anchored at the start, on the folded subject): a superset is enough,
  since the receiving node matches the original subject again. A property test holds this.
"""

from __future__ import annotations

import re

from es.daemon.patterns import fold

__all__ = [
    "EVERYTHING",
    "PREFIX",
    "RETAINED_PREFIX",
    "backbone",
    "cover",
    "decode",
    "literal_prefix",
    "matches",
    "retained_subject",
]

PREFIX = "ev"
"""The first token of every event's NATS subject: the node's other traffic (barriers, heartbeats)
lives under other first tokens, so no event filter ever takes it in."""

RETAINED_PREFIX = "rt"
"""The first token of a retained event's subject in the JetStream stream (SPEC 15.6)."""

EVERYTHING = PREFIX + ".>"
"""The filter of a pattern with no usable literal prefix: every event."""

_KEPT = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-")
_ESCAPES = [c if c in _KEPT else None for c in range(256)]
# Characters of a pattern that stand for themselves however they are cased: a literal prefix is
# made of these only (a letter outside ASCII may fold to several, in ways RE2 and Python's
# casefold do not agree on, so the prefix stops there, and the cover just grows).
_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_ !\"#%&',/:;<=>@`~"
)
# What may open a pattern without changing which literal text it starts with: `^`, and flag
# groups such as `(?i)` or `(?s)` (letters are matched case-insensitively anyway, and the
# folded subject has no upper case for `(?-i)` to miss).
_FLAGS = re.compile(r"^(?:\^|\(\?[imsU-]*\))*")
# After a literal character, these make it optional or repeated: it is not certainly there.
_OPTIONAL = frozenset("*?{")
# A backslash before one of these means the character itself (RE2 escapes punctuation this way).
_ESCAPED_LITERAL = frozenset(".-_ !\"#%&',/:;<=>@`~*+?()[]{}|^$\\")


def _token(text: str) -> str:
    """One `.`-free piece of a folded subject, as a NATS token (never empty, never a wildcard)."""
    if not text:
        return "_"
    out: list[str] = []
    for byte in text.encode("utf-8", "surrogatepass"):
        kept = _ESCAPES[byte]
        out.append(chr(kept) if kept is not None else f"_{byte:02x}")
    return "".join(out)


def _canonical(subject: str) -> str:
    """What a subject is compared as on the backbone: folded as our exact matching does, then
    case-folded fully, so that a letter RE2 takes for an ASCII one (the Kelvin sign for k, the
    long s for s) is spelled as that ASCII letter."""
    return fold(subject).casefold()


def backbone(subject: str) -> str:
    """The NATS subject an event on `subject` is published on."""
    return ".".join([PREFIX, *map(_token, _canonical(subject).split("."))])


def retained_subject(subject: str) -> str:
    """The stream subject that keeps `subject`'s retained event: its tokens after `rt`."""
    return RETAINED_PREFIX + backbone(subject)[len(PREFIX) :]


def decode(nats_subject: str) -> str:
    """The case-folded subject a backbone subject stands for (the inverse of `backbone` on
    folded subjects). Raises ValueError for anything `backbone` does not make."""
    tokens = nats_subject.split(".")
    if len(tokens) < 2 or tokens[0] != PREFIX:
        raise ValueError(f"not an event subject: {nats_subject!r}")
    return ".".join(_untoken(token) for token in tokens[1:])


def _untoken(token: str) -> str:
    if token == "_":
        return ""
    data = bytearray()
    i = 0
    while i < len(token):
        char = token[i]
        if char == "_":
            pair = token[i + 1 : i + 3]
            if (
                len(pair) != 2
                or pair != pair.lower()
                or not all(c in "0123456789abcdef" for c in pair)
            ):
                raise ValueError(f"bad escape in token {token!r}")
            data.append(int(pair, 16))
            i += 3
        elif ord(char) < 128 and ord(char) in _KEPT:
            data.append(ord(char))
            i += 1
        else:
            raise ValueError(f"bad character {char!r} in token {token!r}")
    return data.decode("utf-8", "surrogatepass")


def literal_prefix(pattern: str) -> str:
    """The text every subject `pattern` matches must start with (folded), as far as it can be
    read safely: up to the first character that is not a plain literal. Empty when the pattern
    has an alternation anywhere, or starts with anything else."""
    if _alternates(pattern):  # one branch may start otherwise: no prefix is certain
        return ""
    text = _FLAGS.sub("", pattern, count=1)
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\\" and text[i + 1 : i + 2] in _ESCAPED_LITERAL:
            literal, width = text[i + 1], 2
        elif char in _PLAIN:
            literal, width = char, 1
        else:
            break
        after = text[i + width : i + width + 1]
        if after and after in _OPTIONAL:
            break  # this literal may be absent (or `{` starts a repetition): stop before it
        out.append(literal.lower())  # `+` after it: it is there; the loop stops at the `+`
        i += width
    return "".join(out)


def _alternates(pattern: str) -> bool:
    """Whether `pattern` has a `|` outside every group and character class (a top-level
    alternation). A `|` inside a group is not: reading stops at the group's `(`."""
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2  # an escaped character, whatever it is
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            i += 2 if pattern[i + 1 : i + 2] == "^" else 1
            i += pattern[i : i + 1] == "]"  # a `]` first in a class is a member
            in_class = True
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        elif char == "|" and depth == 0:
            return True
        i += 1
    return False


def cover(pattern: str) -> str:
    """The NATS filter that takes in every event `pattern` can match: the complete tokens of
    its literal prefix, then `>`."""
    tokens = literal_prefix(pattern).split(".")[:-1]  # the last piece may go on in the subject
    return ".".join([PREFIX, *map(_token, tokens), ">"])


def matches(nats_filter: str, nats_subject: str) -> bool:
    """Whether a NATS filter (`*` and `>` as wildcard tokens) matches a NATS subject, as a
    nats-server decides it."""
    want, have = nats_filter.split("."), nats_subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)
