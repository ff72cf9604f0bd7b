"""Checks of what a client asks for, against the server's configuration. Pure: each returns the
checked value or raises the RequestError the client gets."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from clients.errors import EXCEPTION_FOR_CODE, ErrorCode, RequestError
from clients.wire import Options, Policy
from es.config import Limits, QueuePolicy, ServerConfig

__all__ = ["asked_policy", "check_endpoint", "check_sid", "check_subject", "refuse"]

"""A subscriber's queue policy, queue size and maximum stall."""


def refuse(code: ErrorCode, message: str) -> RequestError:
    """The error to raise for a refused request: its class follows from the code."""
    return EXCEPTION_FOR_CODE[code](code, message)


def _is_ip(host: str | None) -> bool:
    try:
        address = ipaddress.ip_address(host or "")
    except ValueError:
        return False
    return not address.is_unspecified and not address.is_multicast


def check_subject(subject: str, limits: Limits) -> str:
    """`subject` if it is a valid subject within the limits; else BAD_SUBJECT."""
    if not subject:
        raise refuse(ErrorCode.BAD_SUBJECT, "empty subject")
    limit = limits.max_subject_bytes
    # A str never takes more than 4 UTF-8 bytes a character: skip encoding short ones.
    if len(subject) * 4 > limit and len(subject.encode()) > limit:
        raise refuse(ErrorCode.BAD_SUBJECT, f"subject longer than {limit} bytes")
    return subject


def check_sid(sid: str, limits: Limits) -> None:
    """Refuse a subscriber id longer than this server allows. (The decoder refuses an empty one:
    that is malformed whatever the server, while the maximum is this server's setting.)"""
    limit = limits.max_sid_bytes
    if len(sid.encode()) > limit:
        raise refuse(ErrorCode.BAD_REQUEST, f"sid must be 1 to {limit} bytes")


def check_endpoint(endpoint: str, limits: Limits) -> None:
    """Refuse an inbox endpoint the server should not connect to."""
    limit = limits.max_endpoint_bytes
    if len(endpoint.encode()) > limit:
        raise refuse(ErrorCode.BAD_ENDPOINT, f"endpoint longer than {limit} bytes")
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        port = None
        parts = urlsplit("")
    plain = not (parts.path or parts.query or parts.fragment or parts.username)
    if parts.scheme != "tcp" or not port or not plain or not _is_ip(parts.hostname):
        # An IP address, never a name: libzmq would resolve a name inside connect(), and a
        # slow DNS answer would stall every client of this single-threaded server.
        raise refuse(
            ErrorCode.BAD_ENDPOINT,
            f"endpoint must be tcp://IP:PORT with a numeric address, not {endpoint[:80]!r}",
        )


def asked_policy(options: Options, current: QueuePolicy | None, cfg: ServerConfig) -> QueuePolicy:
    """The policy a SUB asks for, filled in from what the subscriber has now (`current`) or the
    server's defaults. The queue size cannot change while subscribed."""
    lim = cfg.limits
    default = current or cfg.queue_policy
    policy = Policy(options.policy) if options.policy else default.policy
    size = options.queue_size if options.queue_size is not None else default.queue_size
    stall = options.max_stall if options.max_stall is not None else default.max_stall
    if lim.max_queue_size and not 0 < size <= lim.max_queue_size:
        raise refuse(
            ErrorCode.BAD_POLICY, f"queue must be from 1 to {lim.max_queue_size} on this server"
        )
    if stall > lim.max_stall_limit:
        raise refuse(ErrorCode.BAD_POLICY, f"max_stall over this server's {lim.max_stall_limit} s")
    if current is not None and size != current.queue_size:
        raise refuse(
            ErrorCode.BAD_POLICY,
            f"queue size is {current.queue_size} while subscribed; unsubscribe all to change it",
        )
    return QueuePolicy(policy, size, stall)
