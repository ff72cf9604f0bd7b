"""A daemon's `--storage` option, and the one error every storage raises.

No storage driver is imported here: the cores (the broker, the registry) and the configs read
these without loading sqlite.
"""

from __future__ import annotations

__all__ = ["StorageError", "storage_path"]


def storage_path(spec: str) -> str | None:
    """A daemon's `--storage`: None for `memory`, PATH for `sqlite:PATH`; ValueError otherwise."""
    if spec == "memory":
        return None
    path = spec.removeprefix("sqlite:")
    if path == spec or not path:
        raise ValueError(f"storage must be 'memory' or 'sqlite:PATH', not {spec!r}")
    return path


class StorageError(Exception):
    """A daemon's storage could not be read or written: the disk is full or read-only, the file
    is damaged or is not one of ours. The message says which, for an operator."""
