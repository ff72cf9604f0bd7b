"""One table maps every wire error code to an exception class."""

from __future__ import annotations

import re
from pathlib import Path

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


def test_the_spec_and_the_js_client_know_every_code_and_no_other() -> None:
    root = Path(__file__).resolve().parents[2]
    spec = (root / "clients/wire/SPEC.md").read_text()
    table = spec[spec.index("## 6. Error codes") : spec.index("## 7. Semantics")]
    assert set(re.findall(r"^\| `([A-Z_]+)` \|", table, re.M)) == set(ErrorCode)
    js = (root / "clients/js/lib/errors.js").read_text()
    codes = js[js.index("export const ErrorCode") : js.index("});")]
    assert set(re.findall(r'^  ([A-Z_]+): "\1",$', codes, re.M)) == set(ErrorCode)
