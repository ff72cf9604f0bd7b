"""How each daemon builds its one frozen config, the same way for both (es.config, naming.config).

Each config module has `from_env(env, **explicit)`: the values its command line gave (None: not
given; its typer options read the daemon's ES_* or NS_* variables) over whatever older variables
`env` holds that it still honours, over the dataclass's defaults. A setting it does not know is
refused, and so is a value out of range, as that daemon's ConfigError, before anything starts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["ConfigError", "given", "make"]

C = TypeVar("C")


class ConfigError(ValueError):
    """A setting is missing, unknown or out of range."""


def given(
    explicit: Mapping[str, Any], known: Iterable[str], error: type[ConfigError]
) -> dict[str, Any]:
    """The settings that were given (None: not given), once none of them is unknown."""
    unknown = sorted(set(explicit) - set(known))
    if unknown:
        raise error(f"unknown setting {unknown[0]!r}")
    return {name: value for name, value in explicit.items() if value is not None}


def make(config: Callable[..., C], values: Mapping[str, Any], error: type[ConfigError]) -> C:
    """`config(**values)`, its complaints (a wrong type, a value out of range) as `error`."""
    try:
        return config(**values)
    except error:
        raise
    except (TypeError, ValueError) as exc:
        raise error(str(exc)) from None
