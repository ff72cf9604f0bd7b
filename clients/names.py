"""Names in the name server, as in Pyro: hierarchical, absolute ones start with ':'.

`:Pyro.EventService` is the name `EventService` in group `:Pyro`, which is in the root group `:`.
A name without a leading ':' is relative to a default group (`:Default`), resolved by the client:
on the wire every name is absolute.
"""

from __future__ import annotations

import re

from clients.errors import BadName, ErrorCode

__all__ = [
    "DEFAULT_GROUP",
    "EVENT_SERVICE",
    "MAX_NAME_BYTES",
    "NAME_SERVER",
    "PYRO_GROUP",
    "ROOT",
    "absolute",
    "check_absolute",
    "parent",
]

ROOT = ":"
DEFAULT_GROUP = ":Default"
PYRO_GROUP = ":Pyro"
NAME_SERVER = ":Pyro.NameServer"
EVENT_SERVICE = ":Pyro.EventService"

MAX_NAME_BYTES = 256
"""Long enough for deep hierarchies, short enough that a listing stays small."""

# One part of a name: anything printable but the separators '.' and ':' and white space.
_PART = re.compile(r"[^\s.:]+")


def _refuse(message: str) -> BadName:
    return BadName(ErrorCode.BAD_NAME, message)


def check_absolute(name: str) -> str:
    """`name` if it is a well-formed absolute name (or the root group), else BadName."""
    if name == ROOT:
        return name
    if not name.startswith(ROOT):
        raise _refuse(f"{name[:60]!r} is not absolute: absolute names start with ':'")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise _refuse(f"name longer than {MAX_NAME_BYTES} bytes")
    if not all(_PART.fullmatch(part) for part in name[1:].split(".")):
        raise _refuse(f"{name[:60]!r}: parts must be non-empty, without spaces, '.' or ':'")
    return name


def absolute(name: str, default_group: str = DEFAULT_GROUP) -> str:
    """The absolute form of `name`: relative names are placed in `default_group`."""
    if name.startswith(ROOT):
        return check_absolute(name)
    group = check_absolute(default_group)
    return check_absolute(f"{group}{name}" if group == ROOT else f"{group}.{name}")


def parent(name: str) -> str:
    """The group holding `name` (the root group's parent is itself)."""
    head, dot, _ = name.rpartition(".")
    return head if dot else ROOT
