"""Every way an OpenRouter call fails, as a :class:`chatcore.models.ModelError`.

OpenRouter reports errors as ``{"error": {"code", "message", "metadata"}}`` with the
HTTP status (``metadata.error_type`` names the cause, ``metadata.raw`` carries the
provider's own text for a 502), or, once a stream has started, as a chunk with a
top-level ``error`` while the status stays 200. The mapping to
:class:`~chatcore.models.FailureKind`:

========================================  ============================================
what came back                             kind
========================================  ============================================
401                                        ``AUTH_FAILED``
402                                        ``PAYMENT_REQUIRED``
403 flagged by moderation                  ``CONTENT_REFUSED``
403 otherwise                              ``AUTH_FAILED``
408, 504, 524, httpx timeouts              ``TIMEOUT``
429                                        ``RATE_LIMITED``
400/413/422/5xx about the context length   ``CONTEXT_TOO_LONG`` (:class:`ContextTooLongError`)
413                                        ``CONTEXT_TOO_LONG``
other 4xx with a known ``error_type``      that type's kind
other 4xx and 5xx, connection errors       ``UNAVAILABLE``
a 200 that is not JSON or has no choices   ``MALFORMED_REPLY``
a 200 with no content                      ``EMPTY_REPLY`` (decided by the client)
========================================  ============================================

A ``Retry-After`` header (seconds or an HTTP date), else a retry hint in the error's
metadata (``retry_after``, ``headers.Retry-After``, ``headers.X-RateLimit-Reset``),
becomes ``ModelError.retry_after`` whatever the kind (a 503 may carry one too).

Everything here but :func:`error_from_exception` is a pure function of its arguments.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

import httpx
import msgspec

from chatcore.models import FailureKind, ModelError

__all__ = [
    "ContextTooLongError",
    "error_from_exception",
    "error_from_payload",
    "error_from_response",
    "malformed",
    "parse_context_limit",
    "parse_requested_tokens",
    "parse_retry_after",
]

_MAX_MESSAGE: Final = 500
"""Characters of an upstream message kept in a ``ModelError`` (bodies can be pages)."""

_SECONDS_RE: Final = re.compile(r"\d+(?:\.\d+)?")

_LIMIT_PATTERNS: Final = (
    # OpenRouter / OpenAI: "This endpoint's maximum context length is 8192 tokens."
    re.compile(r"maximum context length (?:is|of)\s*(?P<limit>\d[\d,]*)", re.IGNORECASE),
    # "exceeds the context window of 32768 tokens", "context length of 4096"
    re.compile(
        r"context (?:length|window|size)(?: limit)? (?:is|of)\s*(?P<limit>\d[\d,]*)",
        re.IGNORECASE,
    ),
    # Anthropic's wording: prompt is too long, 210000 tokens > 200000 maximum.
    re.compile(r"\d[\d,]*\s*tokens?\s*>\s*(?P<limit>\d[\d,]*)\s*maximum", re.IGNORECASE),
)
_REQUESTED_PATTERNS: Final = (
    # "However, you requested about 9000 tokens", "your messages resulted in 9000 tokens"
    re.compile(r"(?:requested(?: about)?|resulted in)\s*(?P<n>\d[\d,]*)\s*tokens", re.IGNORECASE),
    re.compile(r"(?P<n>\d[\d,]*)\s*tokens?\s*>\s*\d[\d,]*\s*maximum", re.IGNORECASE),
)
_CONTEXT_HINT: Final = re.compile(
    r"maximum context length|context[ _]length[ _]exceeded|context window"
    r"|prompt is too long|input is too long",
    re.IGNORECASE,
)
_MODERATION_TYPES: Final = frozenset({"moderation", "content_filter", "content_policy"})

_BY_ERROR_TYPE: Final[Mapping[str, FailureKind]] = {
    "rate_limit_exceeded": FailureKind.RATE_LIMITED,
    "rate_limited": FailureKind.RATE_LIMITED,
    "context_length_exceeded": FailureKind.CONTEXT_TOO_LONG,
    "moderation": FailureKind.CONTENT_REFUSED,
    "content_filter": FailureKind.CONTENT_REFUSED,
    "content_policy": FailureKind.CONTENT_REFUSED,
    "insufficient_credits": FailureKind.PAYMENT_REQUIRED,
    "insufficient_quota": FailureKind.PAYMENT_REQUIRED,
    "payment_required": FailureKind.PAYMENT_REQUIRED,
    "invalid_api_key": FailureKind.AUTH_FAILED,
    "authentication_error": FailureKind.AUTH_FAILED,
    "unauthorized": FailureKind.AUTH_FAILED,
    "timeout": FailureKind.TIMEOUT,
    "provider_error": FailureKind.UNAVAILABLE,
    "provider_unavailable": FailureKind.UNAVAILABLE,
    "server_error": FailureKind.UNAVAILABLE,
}
"""``metadata.error_type`` (or a string ``code`` in a stream) to the kind it means."""


class ContextTooLongError(ModelError):
    """The prompt does not fit the model's context (kind ``CONTEXT_TOO_LONG``).

    ``context_limit`` is the core's own :class:`~chatcore.models.ModelError` field, so
    the fallback policy reads it without knowing this class; ``requested_tokens`` is
    extra.

    Attributes:
        context_limit: The model's maximum context in tokens, when the upstream said.
        requested_tokens: The tokens the request needed, when the upstream said.
    """

    def __init__(
        self,
        message: str,
        *,
        model: str,
        context_limit: int | None = None,
        requested_tokens: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            FailureKind.CONTEXT_TOO_LONG,
            message,
            model=model,
            retry_after=retry_after,
            context_limit=context_limit,
        )
        self.requested_tokens = requested_tokens


def _first_int(patterns: tuple[re.Pattern[str], ...], group: str, text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match is not None:
            return int(match.group(group).replace(",", ""))
    return None


def parse_context_limit(message: str) -> int | None:
    """The model's maximum context in tokens, read from an error message.

    Args:
        message: The upstream's text, e.g. ``"This endpoint's maximum context length
            is 8192 tokens. However, you requested about 9000 tokens..."``.

    Returns:
        The limit (``8192``), or ``None`` when the message does not state one.
    """
    return _first_int(_LIMIT_PATTERNS, "limit", message)


def parse_requested_tokens(message: str) -> int | None:
    """The tokens the request needed, read from a context-length error message, or None."""
    return _first_int(_REQUESTED_PATTERNS, "n", message)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait, from a ``Retry-After`` value.

    Args:
        value: The header value: delay seconds (``"7"``, ``"1.5"``) or an HTTP date
            (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
        now: The current time for an HTTP date (default: the system clock, UTC).

    Returns:
        Non-negative seconds (a date in the past gives 0), or ``None`` when the value
        is absent or unreadable.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _SECONDS_RE.fullmatch(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" dates: UTC by RFC 5322
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def _reset_seconds(value: Any, now: datetime | None) -> float | None:
    """Seconds until an ``X-RateLimit-Reset`` value (epoch ms, epoch s or a delay)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    if number < 1e9:  # too small for an epoch: a delay in seconds
        return number
    epoch = number / 1000 if number >= 1e11 else number  # OpenRouter sends milliseconds
    current = (now if now is not None else datetime.now(UTC)).timestamp()
    return max(0.0, epoch - current)


def _get(mapping: Mapping[str, Any], name: str) -> Any:
    """``mapping[name]`` with the key compared case-insensitively (HTTP header names)."""
    value = mapping.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, item in mapping.items():
        if isinstance(key, str) and key.lower() == lowered:
            return item
    return None


def _retry_after(
    headers: Mapping[str, str] | None, metadata: Mapping[str, Any], now: datetime | None
) -> float | None:
    if headers is not None:
        seconds = parse_retry_after(_get(headers, "retry-after"), now=now)
        if seconds is not None:
            return seconds
    hint = metadata.get("retry_after")
    if isinstance(hint, int | float) and not isinstance(hint, bool):
        if math.isfinite(hint) and hint >= 0:
            return float(hint)
    elif isinstance(hint, str) and (seconds := parse_retry_after(hint, now=now)) is not None:
        return seconds
    upstream = metadata.get("headers")
    if isinstance(upstream, Mapping):
        value = _get(upstream, "retry-after")
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            seconds = parse_retry_after(str(value), now=now)
            if seconds is not None:
                return seconds
        seconds = _reset_seconds(_get(upstream, "x-ratelimit-reset"), now)
        if seconds is not None:
            return seconds
    if headers is not None:
        return _reset_seconds(_get(headers, "x-ratelimit-reset"), now)
    return None


def _texts(message: str, metadata: Mapping[str, Any]) -> str:
    """The message plus the provider's raw text, where a context error may be told."""
    raw = metadata.get("raw")
    if isinstance(raw, str) and raw:
        return f"{message}\n{raw}"
    return message


def _is_moderation(error_type: str | None, metadata: Mapping[str, Any]) -> bool:
    if error_type in _MODERATION_TYPES:
        return True
    return "reasons" in metadata or "flagged_input" in metadata


def _shorten(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _kind(
    status: int | None, code: Any, error_type: str | None, metadata: Mapping[str, Any], text: str
) -> FailureKind:
    if status is None and isinstance(code, int) and not isinstance(code, bool):
        status = code  # an in-stream error with an HTTP-like numeric code
    if status == 401:
        return FailureKind.AUTH_FAILED
    if status == 402:
        return FailureKind.PAYMENT_REQUIRED
    if status == 403:
        if _is_moderation(error_type, metadata):
            return FailureKind.CONTENT_REFUSED
        return FailureKind.AUTH_FAILED
    if status == 408:
        return FailureKind.TIMEOUT
    if status == 429:
        return FailureKind.RATE_LIMITED
    if error_type == "context_length_exceeded" or _CONTEXT_HINT.search(text):
        return FailureKind.CONTEXT_TOO_LONG
    if status == 413:
        return FailureKind.CONTEXT_TOO_LONG
    if status in {504, 524}:  # gateway timeouts (524: Cloudflare's)
        return FailureKind.TIMEOUT
    if error_type is not None and error_type in _BY_ERROR_TYPE:
        return _BY_ERROR_TYPE[error_type]
    if isinstance(code, str) and code in _BY_ERROR_TYPE:
        return _BY_ERROR_TYPE[code]
    return FailureKind.UNAVAILABLE


def error_from_payload(
    error: Any,
    *,
    model: str,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> ModelError:
    """The ``ModelError`` for an OpenRouter error object.

    Args:
        error: The value of the ``error`` key: ``{"code", "message", "metadata"}``
            (anything else is tolerated and reported as ``UNAVAILABLE``).
        model: The model the request asked for.
        status: The HTTP status, ``None`` for an error inside a 200 stream (then a
            numeric ``code`` stands for it).
        headers: The response headers (for ``Retry-After``), when there are any.
        now: The current time, to read HTTP dates and reset times (default: the clock).

    Returns:
        A ``ModelError``; a :class:`ContextTooLongError` for ``CONTEXT_TOO_LONG``.
    """
    fields: Mapping[str, Any] = error if isinstance(error, Mapping) else {}
    code = fields.get("code")
    message = fields.get("message")
    if not isinstance(message, str) or not message.strip():
        message = error if isinstance(error, str) and error.strip() else ""
    metadata_value = fields.get("metadata")
    metadata: Mapping[str, Any] = metadata_value if isinstance(metadata_value, Mapping) else {}
    error_type_value = metadata.get("error_type")
    error_type = error_type_value if isinstance(error_type_value, str) else None
    text = _texts(message, metadata)
    kind = _kind(status, code, error_type, metadata, text)
    retry_after = _retry_after(headers, metadata, now)
    prefix = f"HTTP {status}" if status is not None else "in-stream error"
    if isinstance(code, str) and code:
        prefix += f" ({code})"
    elif error_type:
        prefix += f" ({error_type})"
    full = f"{prefix}: {_shorten(message)}" if message else prefix
    if kind is FailureKind.CONTEXT_TOO_LONG:
        return ContextTooLongError(
            full,
            model=model,
            context_limit=parse_context_limit(text),
            requested_tokens=parse_requested_tokens(text),
            retry_after=retry_after,
        )
    return ModelError(kind, full, model=model, retry_after=retry_after)


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    *,
    model: str,
    now: datetime | None = None,
) -> ModelError:
    """The ``ModelError`` for a non-2xx HTTP response.

    Args:
        status: The HTTP status code.
        headers: The response headers (any case-insensitive mapping, or a plain dict).
        body: The response body; need not be JSON (a proxy's HTML page, nothing).
        model: The model the request asked for.
        now: The current time, to read HTTP dates (default: the system clock).

    Returns:
        The mapped ``ModelError`` (:class:`ContextTooLongError` for context errors).
    """
    try:
        decoded: Any = msgspec.json.decode(body) if body else None
    except msgspec.DecodeError:
        decoded = None
    if isinstance(decoded, Mapping) and "error" in decoded:
        return error_from_payload(
            decoded["error"], model=model, status=status, headers=headers, now=now
        )
    if isinstance(decoded, Mapping) and isinstance(decoded.get("message"), str):
        payload: Any = decoded  # an OpenAI-compatible server without the envelope
    else:
        payload = {"message": body.decode("utf-8", "replace") if body else ""}
    return error_from_payload(payload, model=model, status=status, headers=headers, now=now)


def malformed(message: str, *, model: str) -> ModelError:
    """A ``MALFORMED_REPLY`` error: the upstream answered 2xx with something unreadable."""
    return ModelError(FailureKind.MALFORMED_REPLY, message, model=model)


def error_from_exception(exc: BaseException, *, model: str) -> ModelError:
    """The ``ModelError`` for an exception raised while talking to the upstream.

    Args:
        exc: An ``httpx`` error, an ``asyncio`` :class:`TimeoutError`, a ``msgspec``
            decoding error, or anything else (reported as ``UNAVAILABLE``).
        model: The model the request asked for.

    Returns:
        ``TIMEOUT`` for timeouts (connect, read, write, pool, overall deadline),
        ``MALFORMED_REPLY`` for undecodable bodies, ``UNAVAILABLE`` for the rest
        (refused or dropped connections, protocol errors).
    """
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ModelError(
            FailureKind.TIMEOUT, f"{type(exc).__name__}: {_shorten(detail)}", model=model
        )
    if isinstance(exc, httpx.DecodingError | msgspec.DecodeError):
        return malformed(f"{type(exc).__name__}: {_shorten(detail)}", model=model)
    return ModelError(
        FailureKind.UNAVAILABLE, f"{type(exc).__name__}: {_shorten(detail)}", model=model
    )
