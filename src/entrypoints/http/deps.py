"""Dependencies handed to the route handlers."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State

from chatcore.pagination import PageRequest, decode_cursor
from entrypoints.auth import Principal
from entrypoints.bootstrap import Container

__all__ = ["authenticate", "page_request", "provide_container", "provide_principal"]


def provide_container(state: State) -> Container:
    container: Container = state.container
    return container


def _principal_of(container: Container, headers: Any) -> Principal:
    return container.authenticator.authenticate(
        headers.get("authorization"),
        internal_service=headers.get("x-internal-service"),
        service_key=headers.get("x-service-key"),
        acting_user=headers.get("x-user-id"),
    )


async def authenticate(request: Request[Any, Any, Any]) -> None:
    """The controllers' ``before_request`` hook: runs before the body is read, so an
    anonymous caller learns nothing else.

    A hook rather than a guard: Litestar hands each guard a copy of the route handler,
    made on every request. Async on purpose: Litestar runs a sync hook in a thread.
    """
    container: Container = request.app.state.container
    request.scope["state"]["principal"] = _principal_of(container, request.headers)


def provide_principal(request: Request[Any, Any, Any], container: Container) -> Principal:
    """The caller the hook authenticated; on a route without the hook, authenticated
    here (never an anonymous principal).

    Depending on ``container`` also puts the two dependencies one after the other:
    Litestar resolves independent dependencies of a request in a task group of their
    own, which costs more than both of these together.
    """
    principal: Principal | None = request.scope["state"].get("principal")
    if principal is None:
        principal = _principal_of(container, request.headers)
    return principal


def page_request(limit: int, cursor: str | None, page: int | None) -> PageRequest:
    """A cursor wins over ``page``; ``page`` (1-based) is kept for older clients."""
    if cursor:
        return PageRequest(limit=limit, after=decode_cursor(cursor))
    if page is not None:
        return PageRequest(limit=limit, offset=(page - 1) * limit)
    return PageRequest(limit=limit)
