"""The request context: ``X-Request-ID``, metrics and an access log line per request."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

import structlog

from entrypoints.logs import get_logger
from entrypoints.metrics import Metrics

__all__ = ["RequestContext"]

_VALID_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_QUIET = frozenset({"/health/live", "/health/ready", "/metrics", "/health"})


class RequestContext:
    """Wraps an HTTP exchange: takes or makes the request id, binds it to every log line,
    echoes it in the response, and records the request's route, status and duration."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._log = get_logger("chatcore.access")
        # Asked before the call: below the level, structlog drops a line by raising
        # inside its processor chain, which costs more than the line's own fields.
        self._level_of = logging.getLogger("chatcore.access")

    @staticmethod
    def request_id(headers: list[tuple[bytes, bytes]]) -> str:
        for name, value in headers:
            if name == b"x-request-id" and _VALID_ID.match(value):
                return value.decode()
        return uuid.uuid4().hex

    async def around(self, scope: Any, receive: Any, send: Any, app_call: Any) -> None:
        rid = self.request_id(scope.get("headers") or [])
        scope.setdefault("state", {})["request_id"] = rid
        header = (b"x-request-id", rid.encode())
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=rid)
        try:
            await app_call(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("path_template") or "unmatched"
            method = scope.get("method", "GET")
            self._metrics.observe_request(method, route, status, elapsed)
            logged = status >= 500 or scope.get("path") not in _QUIET
            if logged and self._level_of.isEnabledFor(logging.INFO):
                self._log.info(
                    "request",
                    method=method,
                    path=scope.get("path"),
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
            structlog.contextvars.unbind_contextvars("request_id")
