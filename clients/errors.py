"""Error codes of the wire protocol and the exceptions they map to.

Invariants:
- `ErrorCode` values are part of the wire contract (SPEC.md, "Error codes"): never rename one.
- `EXCEPTION_FOR_CODE` is the only place a code is turned into an exception class; nothing ever
  matches on message text.
- This module imports nothing from zmq, so the pure codec may use it.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EXCEPTION_FOR_CODE",
    "AuthFailed",
    "BadEndpoint",
    "BadName",
    "BadPattern",
    "BadPolicy",
    "BadRequest",
    "BadSubject",
    "ConnectionClosed",
    "ConnectionLost",
    "ErrorCode",
    "EsConnectionError",
    "EsError",
    "LimitExceeded",
    "LocalProtocolError",
    "NameTaken",
    "NamingError",
    "NoQuorum",
    "NotEmpty",
    "NotFound",
    "NotOwner",
    "PayloadError",
    "ProtocolError",
    "RemoteProtocolError",
    "RequestError",
    "RequestTimeout",
    "ServerError",
    "StorageFailed",
    "StoreFull",
    "TooLarge",
    "error_from_reply",
]


class ErrorCode(StrEnum):
    """Stable error codes carried in ERR replies."""

    BAD_VERSION = "BAD_VERSION"
    BAD_REQUEST = "BAD_REQUEST"
    UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
    BAD_SUBJECT = "BAD_SUBJECT"
    BAD_PATTERN = "BAD_PATTERN"
    BAD_ENDPOINT = "BAD_ENDPOINT"
    BAD_POLICY = "BAD_POLICY"
    TOO_LARGE = "TOO_LARGE"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INTERNAL = "INTERNAL"
    BAD_NAME = "BAD_NAME"
    NOT_FOUND = "NOT_FOUND"
    NAME_TAKEN = "NAME_TAKEN"
    NOT_OWNER = "NOT_OWNER"
    NOT_EMPTY = "NOT_EMPTY"
    AUTH_FAILED = "AUTH_FAILED"
    STORAGE_FAILED = "STORAGE_FAILED"
    STORE_FULL = "STORE_FULL"
    NO_QUORUM = "NO_QUORUM"


class EsError(Exception):
    """Root of every exception this project raises on purpose."""


class ProtocolError(EsError):
    """Frames that break the wire spec. `code` says which rule was broken."""

    def __init__(self, code: ErrorCode, message: str, rid: int = 0) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.rid = rid
        """The request id, when the frames got far enough to carry one; else 0."""


class LocalProtocolError(ProtocolError):
    """This program tried to encode something the spec does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent frames that do not decode under the spec."""


class RequestError(EsError):
    """The server refused a request and said why with a coded error."""

    code: ErrorCode | str = ErrorCode.BAD_REQUEST

    def __init__(self, code: ErrorCode | str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BadRequest(RequestError):
    """Malformed request, unknown command or unsupported protocol version."""


class BadSubject(RequestError, ValueError):
    """A subject is empty, too long or otherwise not acceptable."""


class BadPattern(RequestError, ValueError):
    """A pattern is too long or RE2 cannot compile it (backreferences, lookaround)."""


class BadEndpoint(RequestError, ValueError):
    """A subscriber endpoint is not a usable tcp:// address."""


class BadPolicy(RequestError, ValueError):
    """Queue policy, size or stall outside what the server allows."""


class TooLarge(RequestError):
    """A message, subject list or request exceeds a size limit."""


class LimitExceeded(RequestError):
    """A count limit was reached: subscriptions, subscribers, subjects per publish."""


class ServerError(RequestError):
    """The server failed while handling a valid request (a bug: please report it)."""


class StorageFailed(RequestError):
    """The server could not write what the request changed to its storage (disk full or
    read-only, a damaged file), so it did nothing: the request had no effect. Retry once the
    server's operator has fixed the storage."""


class StoreFull(RequestError):
    """A durable subscriber with the block policy holds as many stored events as it may (SPEC
    7.10): the publish was refused whole, and nothing of it was delivered. It takes events again
    once that subscriber acknowledges some, or its oldest ones expire."""


class NoQuorum(RequestError):
    """A publish of retained events on a node of a cluster (SPEC 15.6): the cluster's stream did
    not take them in time (the node is cut off from most of its NATS cluster, or the stream has
    no leader), so the publish was refused whole and nothing of it was delivered. Retry later,
    or on another node."""


class NamingError(RequestError):
    """The name server refused a request (Pyro's NamingError)."""


class BadName(NamingError, ValueError):
    """A name or group is not well formed (absolute names start with ':')."""


class NotFound(NamingError, LookupError):
    """No such name or group (or its lease expired)."""


class NameTaken(NamingError):
    """The name or group exists already; register with replace=True to overwrite a name."""


class NotOwner(NamingError, PermissionError):
    """The lease token does not match: another registrant holds the name now."""


class NotEmpty(NamingError):
    """A group still holds names or groups."""


class EsConnectionError(EsError, ConnectionError):
    """Talking to a daemon did not work."""


class ConnectionClosed(EsConnectionError):
    """This program closed the client; it cannot be used any more."""


class ConnectionLost(EsConnectionError):
    """The connection broke or the daemon is gone."""


class RequestTimeout(EsError, TimeoutError):
    """No reply arrived within the timeout."""


class PayloadError(EsError, ValueError):
    """An event's message cannot be decoded, or its format is not allowed here (pickle)."""


class AuthFailed(RequestError, EsConnectionError, PermissionError):
    """The CurveZMQ handshake failed: a wrong or missing passphrase or key on one side, so no
    request gets through. The client raises it, with code AUTH_FAILED, when ZeroMQ reports
    the failed handshake; a server never needs to send it in an ERR reply."""


EXCEPTION_FOR_CODE: dict[str, type[RequestError]] = {
    ErrorCode.BAD_VERSION: BadRequest,
    ErrorCode.BAD_REQUEST: BadRequest,
    ErrorCode.UNKNOWN_COMMAND: BadRequest,
    ErrorCode.BAD_SUBJECT: BadSubject,
    ErrorCode.BAD_PATTERN: BadPattern,
    ErrorCode.BAD_ENDPOINT: BadEndpoint,
    ErrorCode.BAD_POLICY: BadPolicy,
    ErrorCode.TOO_LARGE: TooLarge,
    ErrorCode.LIMIT_EXCEEDED: LimitExceeded,
    ErrorCode.INTERNAL: ServerError,
    ErrorCode.BAD_NAME: BadName,
    ErrorCode.NOT_FOUND: NotFound,
    ErrorCode.NAME_TAKEN: NameTaken,
    ErrorCode.NOT_OWNER: NotOwner,
    ErrorCode.NOT_EMPTY: NotEmpty,
    ErrorCode.AUTH_FAILED: AuthFailed,
    ErrorCode.STORAGE_FAILED: StorageFailed,
    ErrorCode.STORE_FULL: StoreFull,
    ErrorCode.NO_QUORUM: NoQuorum,
}


def error_from_reply(code: str, message: str) -> RequestError:
    """The exception for an ERR reply; a code this version does not know becomes RequestError."""
    cls = EXCEPTION_FOR_CODE.get(code, RequestError)
    known: ErrorCode | str = ErrorCode(code) if code in ErrorCode.__members__ else code
    return cls(known, message)
