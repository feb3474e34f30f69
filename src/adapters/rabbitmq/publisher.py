"""Events chatcore publishes for other services: the ``IntegrationPublisher`` port.

Each payload becomes one persistent JSON message (``content_type: application/json``,
``message_id``, ``timestamp``) on the events exchange (durable topic, declared if
missing) with the given routing key (``chatbot.conversation_ready``). A publish
returns once the broker has confirmed it, and raises when it cannot be made (broker
unreachable, no confirm within ``publish_timeout``): the analysis event that caused it
is then retried, and the retry announces the (already created) conversation again, so
an announcement is delivered at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec
from aio_pika import DeliveryMode, ExchangeType, Message

from adapters.rabbitmq.connection import start_robust

if TYPE_CHECKING:
    from aio_pika.abc import AbstractExchange, AbstractRobustConnection

__all__ = ["RabbitMQPublisher"]

_log = logging.getLogger("chatcore.publisher")
_ENCODER = msgspec.json.Encoder()


class RabbitMQPublisher:
    """Publishes integration events on a topic exchange.

    Args:
        url: the broker, ``amqp://…``.
        exchange: the events exchange (``RABBITMQ_EXCHANGE``).
        publish_timeout: seconds to wait for the broker's confirm.
        connect_timeout: seconds :meth:`start` waits for the broker before going on
            without it (it keeps trying in the background).
        reconnect_interval: seconds between reconnection attempts after a drop.
        app_id: the ``app_id`` property of every message.
    """

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        publish_timeout: float = 10.0,
        connect_timeout: float = 10.0,
        reconnect_interval: float = 5.0,
        app_id: str = "chatcore",
    ) -> None:
        self._url = url
        self.exchange_name = exchange
        self._publish_timeout = publish_timeout
        self._connect_timeout = connect_timeout
        self._reconnect_interval = reconnect_interval
        self._app_id = app_id
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._setup: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and declare the exchange, waiting at most ``connect_timeout``.

        When the broker does not answer by then, the connection keeps being attempted in
        the background (logged) and :meth:`publish` raises ``ConnectionError`` until it
        succeeds: a process may start while the broker is still down.

        Raises:
            Exception: the broker refused the declaration or the login.
        """
        if self._connection is not None:
            return
        self._connection, self._setup, done = await start_robust(
            self._url,
            purpose="publisher",
            reconnect_interval=self._reconnect_interval,
            wait=self._connect_timeout,
            declare=self._declare,
        )
        if not done:
            _log.warning(
                "RabbitMQ does not answer at start; integration events cannot be published "
                "until it does (exchange %r)",
                self.exchange_name,
            )
            return
        if (error := self._setup.exception()) is not None:
            await self.close()
            raise error

    async def _declare(self, connection: AbstractRobustConnection) -> None:
        await connection.connect(timeout=self._connect_timeout)
        channel = await connection.channel(publisher_confirms=True)
        self._exchange = await channel.declare_exchange(
            self.exchange_name, ExchangeType.TOPIC, durable=True
        )
        _log.info("publishing integration events on exchange %r", self.exchange_name)

    async def close(self) -> None:
        """Close the connection (idempotent)."""
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

    async def __aenter__(self) -> RabbitMQPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def ready(self) -> bool:
        """Connected, with the exchange declared."""
        connection = self._connection
        return (
            self._exchange is not None
            and connection is not None
            and not connection.is_closed
            and connection.connected.is_set()
        )

    async def publish(self, routing_key: str, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as JSON with ``routing_key``; returns once confirmed.

        Raises:
            RuntimeError: :meth:`start` was not called.
            ConnectionError: the broker has not been reached since the start.
            Exception: the broker did not take the message (the caller retries).
        """
        exchange = self._exchange
        if exchange is None:
            if self._connection is None:
                raise RuntimeError("RabbitMQPublisher.start() was not called")
            raise ConnectionError(
                f"RabbitMQ not reached yet: {routing_key} not published on {self.exchange_name!r}"
            )
        now = time.time()
        key = payload.get("conversationId") or payload.get("resultId") or uuid.uuid4().hex
        message = Message(
            _ENCODER.encode(payload),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=DeliveryMode.PERSISTENT,
            # The worker's convention: {id}-{eventType}-{epoch ms}.
            message_id=f"{key}-{routing_key}-{int(now * 1000)}",
            timestamp=datetime.fromtimestamp(now, UTC),
            type=routing_key,
            app_id=self._app_id,
        )
        # Bounded as a whole: while reconnecting, a robust channel waits for the broker.
        await asyncio.wait_for(
            exchange.publish(message, routing_key=routing_key), self._publish_timeout
        )
        _log.info(
            "published %s: %s",
            routing_key,
            " ".join(
                f"{k}={payload[k]}"
                for k in ("resultId", "conversationId", "userId")
                if payload.get(k) is not None
            ),
        )
