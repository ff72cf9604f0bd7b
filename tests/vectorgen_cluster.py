"""The backbone's test vectors (SPEC 15): subjects as NATS subjects, covers of patterns, and
events as the body of their NATS message. Pure: strings and bytes, no sockets.

Part of tests/vectorgen.py, which writes them into clients/wire/vectors.json under "backbone".
"""

from __future__ import annotations

from typing import Any

from es.cluster import frames
from es.cluster.subjects import backbone, cover

# Plain, cased, dotted with empty pieces, escaped bytes, would-be wildcards, and letters whose
# folding surprises: the Kelvin sign and the long s (RE2 takes them for k and s), the sharp s
# (folds to two letters), the dotted capital I (lower-cases to i and a combining dot), and the
# Greek letter that folds to three characters (the longest a byte of a subject gets, SPEC 15.3).
SUBJECTS = (
    "stockquote.sun",
    "StockQuote.SUN",
    "a..b",
    ".a",
    "a.",
    "billing_eu.order-1",
    "Hello, World!/x y",
    "*.>",
    "café.Crème",
    "\u212aelvin",
    "\u017ftop",
    "Straße",
    "\u0130zmir",
    "\u0390",
)

# One or two cases of each rule of the literal prefix (SPEC 15.2).
PATTERNS = (
    r"stockquote\.sun",
    r"stockquote.sun",
    r"^STOCKQUOTE\.S.*$",
    r"orders\.eu\.?",
    r"orders\.eux?\.new",
    r"a\.b{2}\.c",
    r"a\.+b",
    r"a\.*b",
    r"a\.b|c\.d",
    r"(?i)stock\.x",
    r"orders\.(eu|us)\.new",
    r"Orders\.café\.",
    r"a\_b\ c\.d",
    r"\$es\.",
    "",
)

EVENTS = (
    frames.RemoteEvent("paris-1", 2718281828, 1, 1767225600.25, "StockQuotes", 1, b"\xa2hi"),
    frames.RemoteEvent("node-b", 4503599627370497, 42, 1767225600.5, "Straße.Café", 0, b""),
)


def event_json(event: frames.RemoteEvent) -> dict[str, Any]:
    """The eight fields of an event on the backbone, by their SPEC 15.3 names."""
    return {
        "version": frames.VERSION,
        "node": event.node,
        "epoch": event.epoch,
        "seq": event.seq,
        "time": event.time,
        "subject": event.subject,
        "fmt": event.fmt,
        "payload_hex": event.payload.hex(),
    }


def backbone_vectors() -> dict[str, Any]:
    """The "backbone" member of vectors.json."""
    return {
        "about": (
            "Vectors for SPEC.md section 15, between nodes. 'subjects': a subject and the NATS "
            "subject its events go on (lower-cased, then fully case-folded, split on '.', each "
            "piece's UTF-8 bytes kept if a-z, 0-9 or '-', else written '_' and two hex digits; "
            "an empty piece is '_'); it must decode back to the folded subject. 'covers': a "
            "pattern and the NATS filter es listens on for it (a node's own choice, not "
            "binding on other nodes). 'events': the body of one event's NATS message in hex, "
            "and its eight fields in 'message' (the payload in 'payload_hex'): 'hex' must "
            "decode to 'message' and 'message' must encode to 'hex'."
        ),
        "subjects": [{"subject": s, "backbone": backbone(s)} for s in SUBJECTS],
        "covers": [{"pattern": p, "cover": cover(p)} for p in PATTERNS],
        "events": [{"message": event_json(e), "hex": frames.pack(e).hex()} for e in EVENTS],
    }
