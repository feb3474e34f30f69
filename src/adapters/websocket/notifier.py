"""Notifiers: the ``Notifier`` port over the WebSocket hub.

- :class:`LocalNotifier` delivers to this process's sockets (one process, or tests).
- :class:`RabbitMQNotifier` publishes every notification to a topic exchange
  (``chatcore.notifications``); each replica that serves sockets consumes it through
  its own exclusive, auto-deleted queue bound to ``#`` and delivers to its hub, so a
  notification raised anywhere (the consumer process, any replica) reaches the user's
  sockets on every replica. A process without a hub only publishes.
- :class:`HttpForwardNotifier` wraps either and also POSTs each notification to the
  notification service, fire-and-forget.

The broker message body *is* the frame the sockets get (``{"event", "data",
"timestamp"}``, encoded once where the notification is raised, so every replica shows
the same timestamp); the user id rides in the ``user_id`` header and the routing key
``user.<id>``. Notifications are ephemeral: not persisted, expiring after
``message_ttl`` seconds, lost while a replica is disconnected from the broker (a client
re-reads state over HTTP when it reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import httpx
import msgspec

from adapters.websocket.hub import ConnectionHub, encode_frame
from chatcore.clock import SystemClock
from chatcore.ports import Clock

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractExchange,
        AbstractIncomingMessage,
        AbstractRobustConnection,
    )


__all__ = ["HttpForwardNotifier", "LocalNotifier", "ManagedNotifier", "RabbitMQNotifier"]

_log = logging.getLogger("chatcore.notifications")

DEFAULT_EXCHANGE = "chatcore.notifications"
_USER_HEADER = "user_id"


class ManagedNotifier(Protocol):
    """A ``Notifier`` with a lifecycle: started and stopped by the composition root."""

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def ready(self) -> bool: ...


class LocalNotifier:
    """Delivers to the sockets of this process only."""

    def __init__(self, hub: ConnectionHub, clock: Clock | None = None) -> None:
        self.hub = hub
        self._clock = clock or SystemClock()

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        if self.hub.has(user_id):  # encode only for someone who is listening
            await self.hub.deliver(user_id, encode_frame(event, data, self._clock.now()))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ready(self) -> bool:
        return True


class RabbitMQNotifier:
    """Fans notifications out to every replica through RabbitMQ.

    Args:
        url: the broker, ``amqp://…``.
        hub: this process's sockets; None in a process that serves none (it only
            publishes).
        exchange: the topic exchange's name (durable; declared if missing).
        start_timeout: how long :meth:`start` waits for the broker before going on
            without it (it keeps reconnecting in the background; meanwhile, and
            whenever a publish fails, notifications reach this process's sockets only).
        publish_timeout: seconds to wait for the broker's confirm of one publish.
        message_ttl: seconds a notification may wait in a replica's queue.
        reconnect_interval: seconds between reconnection attempts.
    """

    def __init__(
        self,
        url: str,
        *,
        hub: ConnectionHub | None,
        exchange: str = DEFAULT_EXCHANGE,
        clock: Clock | None = None,
        start_timeout: float = 5.0,
        publish_timeout: float = 5.0,
        message_ttl: float = 60.0,
        reconnect_interval: float = 2.0,
    ) -> None:
        self.hub = hub
        self.exchange_name = exchange
        self._url = url
        self._clock = clock or SystemClock()
        self._start_timeout = start_timeout
        self._publish_timeout = publish_timeout
        self._message_ttl = message_ttl
        self._reconnect_interval = reconnect_interval
        self.queue_name = (
            f"{exchange}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}"
            if hub is not None
            else None
        )
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._setup: asyncio.Task[None] | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, declare the exchange (and this replica's queue), start consuming.

        Waits at most ``start_timeout`` for the broker; raises only when the broker
        refuses the declarations (say, an exchange of another type by that name).
        """
        if self._setup is not None:
            return
        # Only processes that use RabbitMQ import aio-pika.
        from adapters.rabbitmq.connection import start_robust  # noqa: PLC0415

        self._connection, self._setup, done = await start_robust(
            self._url,
            purpose="notifications",
            reconnect_interval=self._reconnect_interval,
            wait=self._start_timeout,
            declare=self._declare,
        )
        if not done:
            _log.warning(
                "RabbitMQ does not answer at start; notifications reach this process's "
                "sockets only until it does (exchange %s)",
                self.exchange_name,
            )
            return
        if (error := self._setup.exception()) is not None:
            await self.stop()
            raise error

    async def _declare(self, connection: AbstractRobustConnection) -> None:
        from aio_pika import ExchangeType  # noqa: PLC0415

        await connection.connect(timeout=self._start_timeout)
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            self.exchange_name, ExchangeType.TOPIC, durable=True
        )
        if self.hub is not None:
            assert self.queue_name is not None
            queue = await channel.declare_queue(
                self.queue_name,
                exclusive=True,
                auto_delete=True,
                arguments={
                    "x-message-ttl": int(self._message_ttl * 1000),
                    # A replica that falls far behind keeps the newest notifications.
                    "x-max-length": 100_000,
                    "x-overflow": "drop-head",
                },
            )
            await queue.bind(exchange, routing_key="#")
            await queue.consume(self._on_message, no_ack=True)
        self._exchange = exchange
        _log.info(
            "notifications through RabbitMQ exchange %s (%s)",
            self.exchange_name,
            f"queue {self.queue_name}" if self.hub is not None else "publish only",
        )

    async def stop(self) -> None:
        """Close the connection (the broker deletes this replica's queue)."""
        setup, self._setup = self._setup, None
        if setup is not None and not setup.done():
            setup.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await setup
        connection, self._connection = self._connection, None
        self._exchange = None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()

    async def ready(self) -> bool:
        """Connected to the broker, with the exchange declared."""
        connection = self._connection
        return (
            self._exchange is not None
            and connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
        )

    # -- the port -----------------------------------------------------------------------

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        """Publish to every replica. Never raises: when the broker cannot take it, the
        sockets of this process still get it (and the failure is logged)."""
        frame = encode_frame(event, data, self._clock.now())
        exchange = self._exchange
        if exchange is not None:
            from aio_pika import DeliveryMode, Message  # noqa: PLC0415

            message = Message(
                frame,
                content_type="application/json",
                delivery_mode=DeliveryMode.NOT_PERSISTENT,
                expiration=self._message_ttl,
                headers={_USER_HEADER: str(user_id)},
                type=event,
            )
            try:
                await exchange.publish(
                    message, routing_key=f"user.{user_id}", timeout=self._publish_timeout
                )
            except Exception as exc:
                _log.warning(
                    "publishing notification %s failed (%r); delivering locally only",
                    event,
                    exc,
                )
            else:
                return  # this replica's own queue brings it back to its sockets
        if self.hub is not None:
            await self.hub.deliver(user_id, frame)
        else:
            _log.warning("notification %s for user %s lost: no broker", event, user_id)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        hub = self.hub
        if hub is None:  # pragma: no cover - no queue without a hub
            return
        raw = (message.headers or {}).get(_USER_HEADER)
        if isinstance(raw, bytes | bytearray):
            raw = bytes(raw).decode(errors="replace")
        try:
            user_id = UUID(str(raw))
        except ValueError:
            _log.warning("notification without a valid %s header ignored", _USER_HEADER)
            return
        if hub.has(user_id):
            await hub.deliver(user_id, message.body)


_BODY = msgspec.json.Encoder()


class HttpForwardNotifier:
    """Notifies through ``inner`` and also POSTs ``{userId, event, data}`` to
    ``{url}/notifications`` with the internal-service headers.

    The POST is fire-and-forget: it never delays or fails ``notify``; failures are
    logged. ``timeout`` bounds each POST.
    """

    def __init__(
        self,
        inner: ManagedNotifier,
        url: str,
        *,
        service_key: str | None,
        client: httpx.AsyncClient | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.inner = inner
        self._url = url.rstrip("/") + "/notifications"
        self._headers = {"X-Internal-Service": "true", "Content-Type": "application/json"}
        if service_key:
            self._headers["X-Service-Key"] = service_key
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self._pending: set[asyncio.Task[None]] = set()

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        try:
            await self.inner.notify(user_id, event, data)
        finally:
            body = _BODY.encode({"userId": str(user_id), "event": event, "data": data})
            self._spawn(self._post(body, event))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _post(self, body: bytes, event: str) -> None:
        try:
            response = await self._client.post(
                self._url, content=body, headers=self._headers, timeout=self._timeout
            )
        except Exception as exc:
            _log.warning("forwarding notification %s failed: %r", event, exc)
            return
        if response.status_code >= 400:
            _log.warning("the notification service answered %s to %s", response.status_code, event)

    async def start(self) -> None:
        await self.inner.start()

    async def stop(self) -> None:
        """Let pending POSTs finish (up to the timeout), then close."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=self._timeout)
        if self._owns_client:
            await self._client.aclose()
        await self.inner.stop()

    async def ready(self) -> bool:
        return await self.inner.ready()
