"""The error tree: every code's HTTP status, and the typed error for each upstream status."""

from __future__ import annotations

from typing import Any

import pytest

from promptstream import (
    AuthenticationError,
    BadRequestError,
    ContentBlockedError,
    ErrorCode,
    HttpError,
    InternalServerError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    RequestTimeoutError,
    StreamInterruptedError,
    UpstreamUnavailableError,
)
from promptstream._errors import DocumentReason, status_error_for


def test_every_code_has_an_http_status_in_the_error_range() -> None:
    for code in ErrorCode:
        assert 400 <= code.status <= 599, code


def test_every_document_reason_answers_with_one_error_code() -> None:
    for reason in DocumentReason:
        assert isinstance(reason.code, ErrorCode), reason


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("unsupported_type", "unsupported_type"),
        ("empty", "invalid_document"),
        ("binary", "invalid_document"),
        ("corrupt_pdf", "invalid_document"),
        ("encrypted_pdf", "invalid_document"),
        ("too_complex", "invalid_document"),
        ("too_large", "payload_too_large"),
        ("too_many_pages", "document_too_long"),
        ("too_long", "document_too_long"),
        ("too_many_passages", "document_too_long"),
        ("not_found", "document_not_found"),
        ("superseded", "document_conflict"),
        ("budget_exceeded", "budget_exceeded"),
        ("store_failed", "unavailable"),
        ("busy", "unavailable"),
        ("embedding_failed", "upstream_error"),
    ],
)
def test_document_reasons_on_the_wire_and_their_codes(reason: str, code: str) -> None:
    # details.reason is part of the wire (docs/api.md): these strings do not change.
    assert DocumentReason(reason).code == code


def test_the_table_names_every_document_reason_once() -> None:
    documented = test_document_reasons_on_the_wire_and_their_codes.pytestmark[0].args[1]
    assert sorted(reason for reason, _ in documented) == sorted(DocumentReason)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (ErrorCode.INVALID_REQUEST, 400),
        (ErrorCode.UNAUTHENTICATED, 401),
        (ErrorCode.PROMPT_NOT_FOUND, 404),
        (ErrorCode.PAYLOAD_TOO_LARGE, 413),
        (ErrorCode.BUDGET_EXCEEDED, 429),
        (ErrorCode.OUT_OF_CREDITS, 402),
        (ErrorCode.UPSTREAM_AUTH, 502),  # our key refused is our fault, not the caller's
        (ErrorCode.UPSTREAM_TIMEOUT, 504),
        (ErrorCode.UNAVAILABLE, 503),
    ],
)
def test_documented_statuses(code: ErrorCode, status: int) -> None:
    assert code.status == status
    assert HttpError(code, "m").status == status


def test_codes_are_the_strings_the_browser_sees() -> None:
    assert ErrorCode.RATE_LIMITED == "rate_limited"
    assert f"{ErrorCode.PROMPT_TOO_LARGE}" == "prompt_too_large"


@pytest.mark.parametrize(
    ("status", "cls", "code"),
    [
        (400, BadRequestError, "upstream_bad_request"),
        (401, AuthenticationError, "upstream_auth"),
        (402, PaymentRequiredError, "out_of_credits"),
        (403, PermissionDeniedError, "upstream_auth"),
        (408, RequestTimeoutError, "upstream_timeout"),
        (418, BadRequestError, "upstream_bad_request"),  # any other 4xx
        (429, RateLimitError, "rate_limited"),
        (500, InternalServerError, "upstream_error"),
        (502, UpstreamUnavailableError, "upstream_unavailable"),
        (503, UpstreamUnavailableError, "upstream_unavailable"),
        (504, RequestTimeoutError, "upstream_timeout"),
        (599, InternalServerError, "upstream_error"),  # any other 5xx
    ],
)
def test_status_error_for_each_upstream_status(status: int, cls: type, code: str) -> None:
    error = status_error_for(status, "no", retry_after=3)
    assert type(error) is cls
    assert (error.code, error.status_code, error.retry_after, error.message) == (
        code,
        status,
        3,
        "no",
    )


@pytest.mark.parametrize(
    ("body", "blocked"),
    [
        ({"error": {"metadata": {"reasons": ["violence"]}}}, True),
        ({"error": {"metadata": {"flagged_input": "x"}}}, True),
        ({"error": {"metadata": {"provider": "p"}}}, False),
        ({"error": "forbidden"}, False),
        ("forbidden", False),
    ],
)
def test_a_403_with_moderation_metadata_is_content_blocked(body: Any, blocked: bool) -> None:
    error = status_error_for(403, "m", body=body)
    assert isinstance(error, ContentBlockedError) is blocked
    assert error.status == (403 if blocked else 502)
    assert error.body == body


def test_an_interrupted_stream_keeps_its_partial_text() -> None:
    error = StreamInterruptedError("dropped", partial="a b")
    assert (error.code, error.status, error.partial) == ("upstream_disconnected", 502, "a b")
