"""Health, readiness and metrics."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response, get

import chatcore
from entrypoints.bootstrap import Container
from entrypoints.http.errors import error_response
from entrypoints.http.schemas import Ok
from entrypoints.metrics import CONTENT_TYPE_LATEST

__all__ = ["health", "live", "metrics", "ready"]


class HealthOut(msgspec.Struct, kw_only=True):
    status: str
    version: str
    checks: dict[str, bool]
    components: dict[str, str]


_LIVE = msgspec.json.encode(Ok(message="alive", data={"status": "ok"}))


@get("/health/live", summary="Liveness: the process answers", tags=["health"], sync_to_thread=False)
def live() -> Response[bytes]:
    return Response(_LIVE, media_type="application/json")


async def _health(container: Container) -> Response[Any]:
    checks = await container.check_ready()
    health = HealthOut(
        status="ok" if all(checks.values()) else "unavailable",
        version=chatcore.__version__,
        checks=checks,
        components=container.info,
    )
    if health.status == "ok":
        return Response(Ok(message="ready", data=health))
    down = ", ".join(name for name, ok in checks.items() if not ok)
    return error_response(503, "SERVICE_UNAVAILABLE", f"not ready: {down} unavailable", health)


@get("/health/ready", summary="Readiness: 503 while a dependency is down", tags=["health"])
async def ready(container: Container) -> Response[Any]:
    return await _health(container)


@get("/health", summary="Health with components and versions", tags=["health"])
async def health(container: Container) -> Response[Any]:
    return await _health(container)


@get("/metrics", summary="Prometheus metrics", tags=["health"], include_in_schema=False)
async def metrics(container: Container) -> Response[bytes]:
    # As the header, not only the media type: Litestar would add a second charset.
    return Response(
        container.metrics.render(),
        media_type=CONTENT_TYPE_LATEST,
        headers={"content-type": CONTENT_TYPE_LATEST},
    )
