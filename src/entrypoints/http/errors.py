"""Every failure becomes the contract's error envelope; nothing leaks a stack trace."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from chatcore.assessment import ArchiveUnavailableError
from chatcore.errors import ChatcoreError, RateLimitedError
from entrypoints.auth import AuthError
from entrypoints.http.schemas import ErrorBody, ErrorEnvelope
from entrypoints.logs import get_logger

__all__ = ["EXCEPTION_HANDLERS", "error_response"]

_log = get_logger("chatcore.http")

_STATUS_BY_CODE = {
    "VALIDATION_ERROR": 400,
    "UNAUTHORIZED": 401,
    "TOKEN_EXPIRED": 401,
    "INVALID_TOKEN": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMIT_EXCEEDED": 429,
    "AI_SERVICE_UNAVAILABLE": 503,
    "SERVICE_UNAVAILABLE": 503,
    "INTERNAL_ERROR": 500,
}

_CODE_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "RATE_LIMIT_EXCEEDED",
    503: "SERVICE_UNAVAILABLE",
}


def request_id_of(request: Request[Any, Any, Any]) -> str | None:
    state = request.scope.get("state") or {}
    rid = state.get("request_id")
    return rid if isinstance(rid, str) else None


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    body = msgspec.json.encode(
        ErrorEnvelope(error=ErrorBody(code=code, message=message, details=details))
    )
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _chatcore(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ChatcoreError)
    headers = None
    if isinstance(exc, RateLimitedError):
        headers = {"Retry-After": str(exc.retry_after)}
    status = _STATUS_BY_CODE.get(exc.code, 500)
    if status >= 500:
        _log.warning("request failed", code=exc.code, error=exc.message, details=exc.details)
    return error_response(status, exc.code, exc.message, exc.details, headers)


def _auth(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, AuthError)
    return error_response(401, exc.code, exc.message, headers={"WWW-Authenticate": "Bearer"})


def _validation(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, ValidationException)
    details = exc.extra if exc.extra else None
    message = exc.detail or "invalid request"
    if isinstance(details, list) and details and isinstance(details[0], dict):
        first = details[0]
        if first.get("key") == "data" and first.get("message") == "'data'":
            # Litestar's way of saying that a required body is missing.
            message = "a JSON request body is required"
            details = [{"message": "required", "key": "body", "source": "body"}]
        elif first.get("message"):
            key = first.get("key")
            message = f"{'body' if key in (None, '', 'data') else key}: {first['message']}"
    return error_response(400, "VALIDATION_ERROR", message, details)


def _http(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    code = _CODE_BY_STATUS.get(status, "INTERNAL_ERROR" if status >= 500 else "BAD_REQUEST")
    message = exc.detail or "error"
    if status == 404:
        message = "not found"
    if status == 413:
        message = "the request body is too large"
    headers = dict(exc.headers) if exc.headers else None
    return error_response(status, code, message, headers=headers)


def _database(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.error("database unavailable", error=str(exc).splitlines()[0] if str(exc) else "")
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "the database is unavailable; please retry shortly",
        headers={"Retry-After": "5"},
    )


def _archive(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    _log.error("archive unavailable", error=str(exc))
    return error_response(
        503,
        "SERVICE_UNAVAILABLE",
        "the assessment archive is unavailable; please retry shortly",
        {"reason": str(exc)},
        headers={"Retry-After": "5"},
    )


# SQLSTATE classes that mean "the database cannot serve now", not "this statement is
# wrong": connection exceptions (08), insufficient resources (53: too many clients,
# out of memory, disk full) and operator intervention (57P: shutting down, starting up).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def _database_unavailable(exc: Exception) -> bool:
    if not isinstance(exc, DBAPIError):
        return isinstance(exc, OSError | TimeoutError)
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(_UNAVAILABLE_SQLSTATES)


def _internal(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    if _database_unavailable(exc):
        return _database(request, exc)
    rid = request_id_of(request)
    _log.error("unhandled error", exc_info=exc, path=request.url.path)
    return error_response(
        500,
        "INTERNAL_ERROR",
        "an unexpected error occurred; quote the request id when reporting it",
        {"request_id": rid},
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    ChatcoreError: _chatcore,
    AuthError: _auth,
    ArchiveUnavailableError: _archive,
    ValidationException: _validation,
    HTTPException: _http,
    OperationalError: _database,
    InterfaceError: _database,
    Exception: _internal,
}
