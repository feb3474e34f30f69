"""``GET /ws``: the notification socket.

The client's first frame must be ``{"event": "authenticate", "data": {"token": JWT}}``
within ``WS_AUTH_TIMEOUT`` seconds (10). The server answers ``authenticated``
``{userId}`` and from then on pushes the user's notifications, or answers
``auth_error`` ``{message, code}`` and closes with 1008 (policy violation).

After authentication the client may send ``{"event": "ping"}`` (answered with
``pong``); anything else is ignored. The server sends ``ping`` frames to idle sockets
(see ``adapters.websocket.hub``); clients need not answer them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any
from uuid import UUID

import msgspec
from litestar import WebSocket, websocket

from adapters.websocket.hub import CLOSE_POLICY_VIOLATION, Connection, ConnectionHub, encode_frame
from chatcore.ports import Clock
from entrypoints.auth import AuthError
from entrypoints.bootstrap import Container
from entrypoints.logs import get_logger

__all__ = ["notifications_socket"]

_log = get_logger("chatcore.ws")

_CLOSE_INTERNAL_ERROR = 1011


class _ClientFrame(msgspec.Struct, kw_only=True):
    """What a client sends; lenient, a browser may add fields."""

    event: str
    data: dict[str, Any] = msgspec.field(default_factory=dict)


_DECODER = msgspec.json.Decoder(_ClientFrame)


def _decode(message: Any) -> _ClientFrame | None:
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes")
    if not raw:
        return None
    try:
        return _DECODER.decode(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


async def _authenticate(socket: WebSocket[Any, Any, Any], container: Container) -> UUID | None:
    """The user of the first frame; None when the client left first.

    Raises:
        AuthError: no authenticate frame in time, a malformed one, or a bad token.
    """
    try:
        async with asyncio.timeout(container.settings.ws_auth_timeout):
            message = await socket.receive()
    except TimeoutError:
        raise AuthError(
            "UNAUTHORIZED",
            f"authentication timeout: send the authenticate frame within "
            f"{container.settings.ws_auth_timeout:g} seconds",
        ) from None
    if message["type"] == "websocket.disconnect":
        return None
    frame = _decode(message)
    if frame is None:
        raise AuthError(
            "UNAUTHORIZED",
            'the first frame must be JSON: {"event": "authenticate", "data": {"token": "<JWT>"}}',
        )
    if frame.event != "authenticate":
        raise AuthError(
            "UNAUTHORIZED", f"the first frame must be authenticate, got {frame.event[:40]!r}"
        )
    token = frame.data.get("token")
    if not isinstance(token, str) or not token.strip():
        raise AuthError("UNAUTHORIZED", "the authenticate frame needs data.token, a JWT")
    return container.authenticator.verify(token.strip()).user_id


async def _reject(socket: WebSocket[Any, Any, Any], container: Container, error: AuthError) -> None:
    frame = encode_frame(
        "auth_error", {"message": error.message, "code": error.code}, container.clock.now()
    )
    with contextlib.suppress(Exception):  # the client may be gone already
        await socket.send_text(frame.decode())
        # A close reason is at most 123 bytes of UTF-8.
        reason = error.message.encode()[:120].decode(errors="ignore")
        await socket.close(CLOSE_POLICY_VIOLATION, reason)


def _reader(
    socket: WebSocket[Any, Any, Any], hub: ConnectionHub, connection: Connection, clock: Clock
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def read() -> None:
        """The client's frames until it leaves (the hub does all the sending)."""
        while not connection.closed:
            message = await socket.receive()
            if message["type"] == "websocket.disconnect":
                return
            frame = _decode(message)
            if frame is not None and frame.event == "ping":
                hub.send(connection, encode_frame("pong", {}, clock.now()))

    return read


@websocket("/ws", name="notifications_socket")
async def notifications_socket(socket: WebSocket[Any, Any, Any]) -> None:
    """Notifications for the authenticated user (see the module docstring)."""
    container: Container = socket.app.state.container
    await socket.accept()
    hub = container.hub
    if hub is None:  # pragma: no cover - a process without sockets mounts no /ws
        await socket.close(_CLOSE_INTERNAL_ERROR, "this process serves no sockets")
        return
    try:
        user_id = await _authenticate(socket, container)
    except AuthError as error:
        await _reject(socket, container, error)
        return
    if user_id is None:
        return
    connection = hub.register(user_id, socket)
    # Through the queue, so no notification can overtake it.
    hub.send(
        connection, encode_frame("authenticated", {"userId": str(user_id)}, container.clock.now())
    )
    try:
        await hub.hold(connection, _reader(socket, hub, connection, container.clock))
    except Exception as exc:  # the transport failed under us: the client is gone
        _log.debug("websocket closed", error=repr(exc))
