"""How every OpenRouter failure maps to the core's FailureKind (table tests)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.openrouter.errors import (
    ContextTooLongError,
    error_from_exception,
    error_from_payload,
    error_from_response,
    parse_context_limit,
    parse_requested_tokens,
    parse_retry_after,
)
from chatcore.models import FailureKind, ModelError

NOW = datetime(2025, 3, 7, 12, 0, 0, tzinfo=UTC)
K = FailureKind


def envelope(code: int | str, message: str, **metadata: Any) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata:
        error["metadata"] = metadata
    return json.dumps({"error": error}).encode()


def mapped(
    status: int, body: bytes, headers: Mapping[str, str] | None = None, model: str = "m"
) -> ModelError:
    return error_from_response(status, headers or {}, body, model=model, now=NOW)


# Statuses and error types -----------------------------------------------------------

CONTEXT_MESSAGE = (
    "This endpoint's maximum context length is 131072 tokens. However, you requested "
    "about 140000 tokens (139000 of text input, 1000 in the output). Please reduce the "
    'length of either one, or use the "middle-out" transform to compress your prompt '
    "automatically."
)

STATUS_TABLE = [
    (401, envelope(401, "No auth credentials found"), K.AUTH_FAILED),
    (401, envelope(401, "Invalid key", error_type="invalid_api_key"), K.AUTH_FAILED),
    (
        402,
        envelope(402, "Insufficient credits", error_type="insufficient_credits"),
        K.PAYMENT_REQUIRED,
    ),
    (
        403,
        envelope(
            403,
            'm requires moderation on P. Your input was flagged for "harassment".',
            error_type="moderation",
            reasons=["harassment"],
            flagged_input="...",
        ),
        K.CONTENT_REFUSED,
    ),
    (403, envelope(403, "flagged", reasons=["violence"], flagged_input="x"), K.CONTENT_REFUSED),
    (403, envelope(403, "Key disabled"), K.AUTH_FAILED),
    (403, envelope(403, "Forbidden", error_type="forbidden"), K.AUTH_FAILED),
    (408, envelope(408, "Request timed out", error_type="timeout"), K.TIMEOUT),
    (429, envelope(429, "Rate limit exceeded: free-models-per-min."), K.RATE_LIMITED),
    (400, envelope(400, CONTEXT_MESSAGE, error_type="context_length_exceeded"), K.CONTEXT_TOO_LONG),
    (400, envelope(400, CONTEXT_MESSAGE), K.CONTEXT_TOO_LONG),
    (400, envelope(400, "too big", error_type="context_length_exceeded"), K.CONTEXT_TOO_LONG),
    (400, envelope(400, "x is not a valid model ID"), K.UNAVAILABLE),
    (400, envelope(400, "Bad Request", error_type="bad_request"), K.UNAVAILABLE),
    (404, envelope(404, "No endpoints found for m."), K.UNAVAILABLE),
    (413, envelope(413, "Payload Too Large"), K.CONTEXT_TOO_LONG),
    (422, envelope(422, "Unprocessable"), K.UNAVAILABLE),
    (500, envelope(500, "Internal Server Error"), K.UNAVAILABLE),
    (502, envelope(502, "Provider returned error", error_type="provider_error"), K.UNAVAILABLE),
    (
        502,
        envelope(
            502,
            "Provider returned error",
            error_type="provider_error",
            raw='{"error":"This model\'s maximum context length is 8192 tokens"}',
        ),
        K.CONTEXT_TOO_LONG,
    ),
    (
        503,
        envelope(503, "No instances available", error_type="provider_unavailable"),
        K.UNAVAILABLE,
    ),
    (504, envelope(504, "Gateway Timeout"), K.TIMEOUT),
    (524, b"error code: 524", K.TIMEOUT),
    (599, b"", K.UNAVAILABLE),
    (418, envelope(418, "I'm a teapot"), K.UNAVAILABLE),
]


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    STATUS_TABLE,
    ids=[f"{row[0]}-{i}" for i, row in enumerate(STATUS_TABLE)],
)
def test_status_table(status: int, body: bytes, kind: FailureKind) -> None:
    error = mapped(status, body, model="vendor/x:free")
    assert error.kind is kind
    assert error.model == "vendor/x:free"
    assert error.retry_after is None
    assert f"HTTP {status}" in error.message
    assert isinstance(error, ContextTooLongError) == (kind is K.CONTEXT_TOO_LONG)


def test_message_keeps_the_upstream_words() -> None:
    error = mapped(429, envelope(429, "Rate limit exceeded: limit_rpm/m/abc"))
    assert error.message == "HTTP 429: Rate limit exceeded: limit_rpm/m/abc"
    assert str(error) == "m: rate_limited: HTTP 429: Rate limit exceeded: limit_rpm/m/abc"


# Context length ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "limit", "requested"),
    [
        (CONTEXT_MESSAGE, 131072, 140000),
        (
            "This model's maximum context length is 16385 tokens. However, your messages "
            "resulted in 17000 tokens. Please reduce the length of the messages.",
            16385,
            17000,
        ),
        ("prompt is too long: 210000 tokens > 200000 maximum", 200000, 210000),
        ("maximum context length is 1,048,576 tokens", 1048576, None),
        ("The input exceeds the context window of 32768 tokens", 32768, None),
        ("context length exceeded", None, None),
        ("", None, None),
    ],
)
def test_context_limit_parsing(message: str, limit: int | None, requested: int | None) -> None:
    assert parse_context_limit(message) == limit
    assert parse_requested_tokens(message) == requested


def test_context_error_exposes_the_limit() -> None:
    error = mapped(400, envelope(400, CONTEXT_MESSAGE, error_type="context_length_exceeded"))
    assert isinstance(error, ContextTooLongError)
    assert error.kind is K.CONTEXT_TOO_LONG
    assert (error.context_limit, error.requested_tokens) == (131072, 140000)
    assert isinstance(error, ModelError)


def test_context_limit_from_the_providers_raw_text() -> None:
    body = envelope(502, "Provider returned error", raw="maximum context length is 8192 tokens")
    error = mapped(502, body)
    assert isinstance(error, ContextTooLongError)
    assert error.context_limit == 8192


def test_context_error_without_a_number() -> None:
    error = mapped(400, envelope(400, "Too long", error_type="context_length_exceeded"))
    assert isinstance(error, ContextTooLongError)
    assert error.context_limit is None
    assert error.requested_tokens is None


# Retry-After ------------------------------------------------------------------------


def http_date(delta: timedelta) -> str:
    return format_datetime(NOW + delta, usegmt=True)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (" 30 ", 30.0),
        (http_date(timedelta(seconds=90)), 90.0),
        (http_date(timedelta(hours=-1)), 0.0),  # in the past: retry now
        ("Fri, 07 Mar 2025 12:00:10 -0000", 10.0),
        ("", None),
        ("   ", None),
        (None, None),
        ("-1", None),
        ("1e3", None),
        ("inf", None),
        ("nan", None),
        ("1_000", None),
        ("soon", None),
        ("Fri, 99 Foo 2025", None),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_parse_retry_after_uses_the_clock_by_default() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=100), usegmt=True)
    seconds = parse_retry_after(later)
    assert seconds is not None
    assert 95 <= seconds <= 100


RATE_BODY = envelope(429, "Rate limit exceeded", error_type="rate_limit_exceeded")


@pytest.mark.parametrize(
    ("status", "headers", "body", "kind", "retry_after"),
    [
        (429, {"Retry-After": "7"}, RATE_BODY, K.RATE_LIMITED, 7.0),
        (429, {"retry-after": "2.5"}, RATE_BODY, K.RATE_LIMITED, 2.5),
        (429, httpx.Headers({"RETRY-AFTER": "4"}), RATE_BODY, K.RATE_LIMITED, 4.0),
        (
            429,
            {"Retry-After": http_date(timedelta(seconds=45))},
            RATE_BODY,
            K.RATE_LIMITED,
            45.0,
        ),
        (429, {"Retry-After": "whenever"}, RATE_BODY, K.RATE_LIMITED, None),
        (429, {}, RATE_BODY, K.RATE_LIMITED, None),
        (429, {}, envelope(429, "slow", retry_after=3), K.RATE_LIMITED, 3.0),
        (429, {}, envelope(429, "slow", retry_after="12"), K.RATE_LIMITED, 12.0),
        (
            429,
            {},
            envelope(
                429,
                "Rate limit exceeded: free-models-per-day",
                headers={
                    "X-RateLimit-Limit": "50",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int((NOW.timestamp() + 3600) * 1000)),
                },
            ),
            K.RATE_LIMITED,
            3600.0,
        ),
        (429, {}, envelope(429, "slow", headers={"Retry-After": "9"}), K.RATE_LIMITED, 9.0),
        (429, {"X-RateLimit-Reset": str(int(NOW.timestamp()) + 60)}, b"", K.RATE_LIMITED, 60.0),
        (429, {"X-RateLimit-Reset": "20"}, b"", K.RATE_LIMITED, 20.0),
        (429, {"Retry-After": "5"}, envelope(429, "x", retry_after=99), K.RATE_LIMITED, 5.0),
        (503, {"Retry-After": "30"}, envelope(503, "No instances"), K.UNAVAILABLE, 30.0),
        (429, {"Retry-After": "3"}, b"Too Many Requests", K.RATE_LIMITED, 3.0),
    ],
)
def test_retry_after(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    kind: FailureKind,
    retry_after: float | None,
) -> None:
    error = mapped(status, body, headers)
    assert error.kind is kind
    assert error.retry_after == retry_after


# Bodies that are not OpenRouter's JSON ----------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "kind", "fragment"),
    [
        (502, b"<html><body>502 Bad Gateway</body></html>", K.UNAVAILABLE, "502 Bad Gateway"),
        (429, b"", K.RATE_LIMITED, "HTTP 429"),
        (401, b"{oops", K.AUTH_FAILED, "{oops"),
        (500, b"[1, 2]", K.UNAVAILABLE, "[1, 2]"),
        (500, b'"just a string"', K.UNAVAILABLE, "just a string"),
        (503, b'{"error": "overloaded"}', K.UNAVAILABLE, "overloaded"),
        (400, b'{"error": null}', K.UNAVAILABLE, "HTTP 400"),
        (400, b'{"message": "maximum context length is 4096 tokens"}', K.CONTEXT_TOO_LONG, "4096"),
        (502, b"bad \xff\xfe bytes", K.UNAVAILABLE, "bad \ufffd\ufffd bytes"),
        (402, b'{"error": {"code": 402}}', K.PAYMENT_REQUIRED, "HTTP 402"),
        (502, b'{"error": {"message": 42, "metadata": "x"}}', K.UNAVAILABLE, "HTTP 502"),
    ],
)
def test_bodies_that_are_not_openrouter_json(
    status: int, body: bytes, kind: FailureKind, fragment: str
) -> None:
    error = mapped(status, body)
    assert error.kind is kind
    assert fragment in error.message


def test_long_bodies_are_shortened() -> None:
    error = mapped(502, b"x" * 100_000)
    assert error.kind is K.UNAVAILABLE
    assert len(error.message) < 600


@given(status=st.integers(400, 599), body=st.binary(max_size=300))
def test_any_error_response_maps_to_a_kind(status: int, body: bytes) -> None:
    error = mapped(status, body, {"Retry-After": "1"})
    assert isinstance(error.kind, FailureKind)
    assert error.retry_after == 1.0


@given(
    status=st.integers(400, 599),
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=3)
            | st.dictionaries(
                st.sampled_from(["error", "code", "message", "metadata", "error_type", "raw"]),
                children,
                max_size=4,
            )
        ),
        max_leaves=12,
    ),
)
def test_any_json_error_body_maps_to_a_kind(status: int, payload: Any) -> None:
    error = mapped(status, msgspec.json.encode(payload))
    assert isinstance(error.kind, FailureKind)


# In-stream errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"code": "server_error", "message": "Provider disconnected unexpectedly"}, K.UNAVAILABLE),
        ({"code": "rate_limit_exceeded", "message": "slow down"}, K.RATE_LIMITED),
        ({"code": 429, "message": "Rate limit exceeded"}, K.RATE_LIMITED),
        ({"code": 502, "message": "Provider returned error"}, K.UNAVAILABLE),
        ({"code": "timeout", "message": "took too long"}, K.TIMEOUT),
        ({"code": "content_filter", "message": "blocked"}, K.CONTENT_REFUSED),
        ({"code": "context_length_exceeded", "message": "too long"}, K.CONTEXT_TOO_LONG),
        ({"code": "weird", "message": "maximum context length is 4096 tokens"}, K.CONTEXT_TOO_LONG),
        ({"code": "weird", "message": "?"}, K.UNAVAILABLE),
        ({"message": "no code"}, K.UNAVAILABLE),
        ("a bare string", K.UNAVAILABLE),
        (None, K.UNAVAILABLE),
        ([1, 2], K.UNAVAILABLE),
    ],
)
def test_in_stream_errors(error: Any, kind: FailureKind) -> None:
    mapped_error = error_from_payload(error, model="m")
    assert mapped_error.kind is kind
    assert mapped_error.message.startswith("in-stream error")


def test_in_stream_error_message() -> None:
    error = error_from_payload(
        {"code": "server_error", "message": "Provider disconnected unexpectedly"}, model="m"
    )
    assert error.message == "in-stream error (server_error): Provider disconnected unexpectedly"
    assert error.retry_after is None


# Exceptions -------------------------------------------------------------------------

REQUEST = httpx.Request("POST", "https://openrouter.ai/api/v1/chat/completions")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ReadTimeout("timed out", request=REQUEST), K.TIMEOUT),
        (httpx.ConnectTimeout("timed out", request=REQUEST), K.TIMEOUT),
        (httpx.WriteTimeout("timed out", request=REQUEST), K.TIMEOUT),
        (httpx.PoolTimeout("no connection free", request=REQUEST), K.TIMEOUT),
        (TimeoutError(), K.TIMEOUT),
        (httpx.ConnectError("refused", request=REQUEST), K.UNAVAILABLE),
        (httpx.ReadError("reset", request=REQUEST), K.UNAVAILABLE),
        (httpx.RemoteProtocolError("peer closed connection", request=REQUEST), K.UNAVAILABLE),
        (httpx.ProxyError("proxy", request=REQUEST), K.UNAVAILABLE),
        (httpx.UnsupportedProtocol("ftp"), K.UNAVAILABLE),
        (httpx.DecodingError("bad gzip", request=REQUEST), K.MALFORMED_REPLY),
        (msgspec.DecodeError("bad json"), K.MALFORMED_REPLY),
        (RuntimeError("something else"), K.UNAVAILABLE),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_exceptions(exc: BaseException, kind: FailureKind) -> None:
    error = error_from_exception(exc, model="m")
    assert error.kind is kind
    assert error.model == "m"
    assert type(exc).__name__ in error.message
