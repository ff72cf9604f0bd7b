"""One table maps every wire error code to an exception class."""

from __future__ import annotations

from clients.errors import (
    EXCEPTION_FOR_CODE,
    BadPattern,
    ErrorCode,
    RequestError,
    RequestTimeout,
    error_from_reply,
)


def test_every_code_has_an_exception() -> None:
    assert set(EXCEPTION_FOR_CODE) == set(ErrorCode)


def test_reply_maps_to_its_class_and_keeps_code_and_message() -> None:
    error = error_from_reply("BAD_PATTERN", "no lookaround")
    assert isinstance(error, BadPattern) and isinstance(error, ValueError)
    assert (error.code, error.message) == (ErrorCode.BAD_PATTERN, "no lookaround")


def test_unknown_code_from_a_newer_server_is_still_a_request_error() -> None:
    error = error_from_reply("SOMETHING_NEW", "text")
    assert type(error) is RequestError and error.code == "SOMETHING_NEW"


def test_timeout_is_a_builtin_timeout_too() -> None:
    assert issubclass(RequestTimeout, TimeoutError)
