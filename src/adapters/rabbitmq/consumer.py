"""The analysis-event consumer: RabbitMQ deliveries → ``AssessmentService.handle``.

What happens to a delivery (see :mod:`adapters.rabbitmq.topology` for the queues):

- the body is not JSON, or not one of the three analysis events: it is published to
  ``<queue>.dlq`` at once, with ``x-chatcore-reason`` (the decode error) and the original
  routing key, exchange and properties, then the original is acked;
- the handler returns: the delivery is acked (only then: its effects are committed);
- the broker redelivers it (``redelivered``: a consumer had it and never settled it,
  because it stopped, crashed or lost its connection while handling it): that run is
  counted as a failed attempt and the message takes the retry path below without
  running the handler now, so a message that kills the process each time is
  dead-lettered after ``max_attempts`` instead of coming back for ever;
- the handler raises (``ArchiveUnavailableError``, a database error, anything else: all
  are taken as passing): the message is published to the retry queue of the next delay
  with ``x-chatcore-attempts`` incremented, then acked; it comes back to ``<queue>``
  after the delay. The attempt that reaches ``max_attempts`` sends it to ``<queue>.dlq``
  with the last error as the reason instead. ``retry_delays[i]`` is the wait after the
  ``i+1``-th failed attempt (the last delay repeats when there are fewer delays than
  retries).

Nothing is acked before what replaces it (a retry copy, a dead letter) is confirmed by
the broker, so a crash at any point loses nothing: at worst the broker redelivers a
message whose effects are already committed, which the handler's idempotence absorbs
(one conversation per result).

Up to ``prefetch`` deliveries are handled at once. The connection is robust: when the
broker restarts or drops the connection, it reconnects, re-declares the topology and
consumes again; deliveries that were in flight are redelivered by the broker (their
late acks are refused and logged). :meth:`AnalysisConsumer.stop` cancels the consumer,
waits for the handlers in flight, requeues what did not finish, and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import aio_pika
import msgspec
from aio_pika import DeliveryMode, Message

from adapters.rabbitmq.topology import DeclaredTopology, Topology, declare_topology
from chatcore.assessment import AnalysisEvent, ArchiveUnavailableError, decode_analysis_event

if TYPE_CHECKING:
    from aio_pika.abc import (
        AbstractChannel,
        AbstractIncomingMessage,
        AbstractRobustConnection,
    )
    from pamqp.common import FieldValue

__all__ = [
    "ATTEMPTS_HEADER",
    "EXCHANGE_HEADER",
    "REASON_HEADER",
    "ROUTING_KEY_HEADER",
    "AnalysisConsumer",
    "ConsumerStats",
    "Handler",
]

Handler = Callable[[AnalysisEvent], Awaitable[object]]
"""Applies one event; returns when its effects are committed, raises to have it retried."""

ATTEMPTS_HEADER: Final = "x-chatcore-attempts"
"""Failed attempts so far (absent on a first delivery)."""
REASON_HEADER: Final = "x-chatcore-reason"
"""Why a message is in the dead-letter queue."""
ROUTING_KEY_HEADER: Final = "x-chatcore-original-routing-key"
"""The routing key the event was first published with (a retry comes back with another)."""
EXCHANGE_HEADER: Final = "x-chatcore-original-exchange"
"""The exchange the event was first published on."""
LAST_ERROR_HEADER: Final = "x-chatcore-last-error"
"""The error of the last failed attempt (on retries and dead letters)."""
DEAD_LETTERED_AT_HEADER: Final = "x-chatcore-dead-lettered-at"
"""When the consumer gave up on the message (ISO 8601, UTC)."""

_BROKER_HEADERS: Final = ("x-death", "x-first-death-", "x-last-death-")
_MAX_HEADER_TEXT: Final = 1000
_REPUBLISH_BACKOFF: Final = 1.0

_log = logging.getLogger("chatcore.consumer")


@dataclass(slots=True)
class ConsumerStats:
    """Outcomes since start (for tests, metrics and the shutdown line)."""

    handled: int = 0
    retried: int = 0
    dead_lettered: int = 0
    requeued: int = 0
    unacknowledged: int = 0
    """Settlements the broker refused (the channel was gone): it redelivers those."""


class InterruptedAttemptError(Exception):
    """The last attempt at a message did not finish (what a redelivery means)."""

    def __init__(self) -> None:
        super().__init__(
            "redelivered by the broker: the consumer that had it stopped, crashed or "
            "lost its connection before settling it"
        )


def _text(value: object, limit: int = _MAX_HEADER_TEXT) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _prior_attempts(headers: Mapping[str, Any]) -> int:
    raw = headers.get(ATTEMPTS_HEADER)
    if isinstance(raw, bytes | bytearray):
        raw = raw.decode("ascii", errors="replace")
    try:
        return max(0, int(raw)) if raw is not None else 0
    except (TypeError, ValueError):
        return 0


def _header_text(headers: Mapping[str, Any], name: str) -> str | None:
    raw = headers.get(name)
    if isinstance(raw, bytes | bytearray):
        return raw.decode("utf-8", errors="replace")
    return raw if isinstance(raw, str) else None


def _fields(**fields: object) -> str:
    """``key=value`` pairs for a log line, Nones left out."""
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None)


def _event_fields(event: AnalysisEvent) -> dict[str, object]:
    return {
        "type": type(event).__struct_config__.tag,
        "resultId": event.resultId,
        "jobId": event.jobId,
        "userId": event.userId,
    }


def _default_connection_name() -> str:
    return f"chatcore consumer ({socket.gethostname()} pid {os.getpid()})"


class AnalysisConsumer:
    """Consumes analysis events from RabbitMQ and hands each to ``handler``.

    Args:
        url: the broker, ``amqp://user:pass@host:port/vhost``.
        exchange: the topic exchange of the analysis worker (``RABBITMQ_EXCHANGE``).
        queue: this service's durable queue (``RABBITMQ_QUEUE``).
        routing_keys: the keys ``queue`` is bound with (``RABBITMQ_ROUTING_KEYS``).
        handler: applies one event (``AssessmentService.handle``).
        prefetch: deliveries handled at once (the channel's QoS).
        max_attempts: handler runs before a failing message is dead-lettered.
        retry_delays: seconds to wait after each failed attempt.
        reconnect_interval: seconds between reconnection attempts.
        publish_timeout: seconds to wait for the broker to confirm a retry or dead letter.
        connection_name: shown by ``rabbitmqctl list_connections`` and the management UI.
        on_outcome: called with ``(event type or None, outcome)`` for every delivery,
            outcome one of ``handled``, ``retry``, ``dead-lettered``, ``requeued``
            (for metrics; must not raise).
    """

    def __init__(
        self,
        *,
        url: str,
        exchange: str,
        queue: str,
        routing_keys: Sequence[str],
        handler: Handler,
        prefetch: int = 16,
        max_attempts: int = 5,
        retry_delays: Sequence[float] = (1, 5, 30, 120, 600),
        reconnect_interval: float = 5.0,
        publish_timeout: float = 10.0,
        connection_name: str | None = None,
        on_outcome: Callable[[str | None, str], None] | None = None,
    ) -> None:
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.topology = Topology(
            exchange=exchange,
            queue=queue,
            routing_keys=tuple(routing_keys),
            retry_delays=tuple(retry_delays),
        )
        self._url = url
        self._handler = handler
        self.prefetch = prefetch
        self.max_attempts = max_attempts
        self._reconnect_interval = reconnect_interval
        self._publish_timeout = publish_timeout
        self.connection_name = connection_name or _default_connection_name()
        self._on_outcome = on_outcome
        self.stats = ConsumerStats()
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._publish_channel: AbstractChannel | None = None
        self._declared: DeclaredTopology | None = None
        self._consumer_tag: str | None = None
        self._inflight: dict[asyncio.Task[Any], AbstractIncomingMessage] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------

    @property
    def broker(self) -> str:
        """The broker's URL without its password (for logs)."""
        url = aio_pika.connection.make_url(self._url)
        return str(url.with_password("***") if url.password else url)

    async def start(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109 - connect timeout
        """Connect, declare the topology and start consuming.

        Raises:
            ConnectionError: the broker does not answer within ``timeout`` seconds or
                refuses the login (the caller decides whether to try again).
            aiormq.exceptions.AMQPError: the broker refuses a declaration.
        """
        if self._connection is not None:
            return
        self._stopping = False
        try:
            connection = await aio_pika.connect_robust(
                self._url,
                timeout=timeout,
                reconnect_interval=self._reconnect_interval,
                client_properties={"connection_name": self.connection_name},
            )
        except TimeoutError as exc:
            raise ConnectionError(
                f"RabbitMQ at {self.broker} did not answer within {timeout:g}s"
            ) from exc
        try:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            declared = await declare_topology(channel, self.topology)
            publish_channel = await connection.channel(
                publisher_confirms=True, on_return_raises=True
            )
            self._connection = connection
            self._channel = channel
            self._publish_channel = publish_channel
            self._declared = declared
            connection.close_callbacks.add(self._on_connection_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
            self._consumer_tag = await declared.queue.consume(self._on_message)
        except BaseException:
            self._connection = self._channel = self._publish_channel = None
            self._declared = None
            with contextlib.suppress(Exception):
                await connection.close()
            raise
        _log.info(
            "consuming analysis events: %s; prefetch %d, %d attempts at most (%s)",
            self.topology.describe(),
            self.prefetch,
            self.max_attempts,
            self.broker,
        )

    async def __aenter__(self) -> AnalysisConsumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def ready(self) -> bool:
        """Connected and consuming (false while reconnecting or after :meth:`stop`)."""
        connection = self._connection
        return (
            connection is not None
            and not self._stopping
            and not connection.is_closed
            and connection.connected.is_set()
        )

    @property
    def in_flight(self) -> int:
        """Deliveries being handled now."""
        return len(self._inflight)

    async def wait_idle(self) -> None:
        """Return when no delivery is being handled (for tests)."""
        await self._idle.wait()

    async def stop(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a grace period
        """Stop gracefully: no new deliveries, handlers in flight get up to ``timeout``
        seconds to finish; what is still unfinished then is cancelled and requeued (the
        broker would requeue it anyway when the connection closes); then close."""
        connection = self._connection
        if connection is None or self._stopping:
            return
        self._stopping = True
        declared, tag, channel = self._declared, self._consumer_tag, self._channel
        if declared is not None and tag is not None and channel is not None:
            try:
                if not channel.is_closed and connection.connected.is_set():
                    await asyncio.wait_for(declared.queue.cancel(tag), timeout=5)
            except Exception as exc:  # the connection may be down: closing is enough
                _log.warning("cancelling the consumer failed (%r); closing anyway", exc)
        self._consumer_tag = None
        inflight = dict(self._inflight)
        if inflight:
            _log.info(
                "stopping: waiting up to %gs for %d message(s) in flight", timeout, len(inflight)
            )
            _, unfinished = await asyncio.wait(inflight, timeout=timeout)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            for task in unfinished:
                message = inflight[task]
                if message.processed:
                    continue
                await self._settle(message, requeue=True)
                self._count(None, "requeued")
                _log.warning(
                    "stopping: requeued a message whose handling did not finish in time %s",
                    _fields(messageId=message.message_id, routing_key=message.routing_key),
                )
        self._connection = self._channel = self._publish_channel = None
        self._declared = None
        with contextlib.suppress(Exception):
            await connection.close()
        _log.info(
            "consumer stopped: %s",
            _fields(
                handled=self.stats.handled,
                retried=self.stats.retried,
                dead_lettered=self.stats.dead_lettered,
                requeued=self.stats.requeued,
            ),
        )

    def _on_connection_lost(self, _: object, exc: BaseException | None = None) -> None:
        if not self._stopping:
            _log.warning(
                "RabbitMQ connection lost (%s); reconnecting every %gs, %d message(s) in "
                "flight will be redelivered by the broker",
                repr(exc) if exc else "closed",
                self._reconnect_interval,
                len(self._inflight),
            )

    def _on_reconnected(self, _: object) -> None:
        _log.info(
            "RabbitMQ reconnected (%s): topology re-declared, consuming %r again",
            self.broker,
            self.topology.queue,
        )

    # -- deliveries -------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight[task] = message
        self._idle.clear()
        try:
            if self._stopping:
                await self._settle(message, requeue=True)
                self._count(None, "requeued")
                return
            await self._process(message)
        except asyncio.CancelledError:
            # The connection went away (aiormq cancels its deliveries' tasks) or stop()
            # gave up waiting: the broker redelivers the message, or stop() requeues it.
            _log.warning(
                "handling interrupted, the message will be delivered again %s",
                _fields(messageId=message.message_id, routing_key=message.routing_key),
            )
            raise
        finally:
            self._inflight.pop(task, None)
            if not self._inflight:
                self._idle.set()

    async def _process(self, message: AbstractIncomingMessage) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        attempt = _prior_attempts(headers) + 1
        routing_key = _header_text(headers, ROUTING_KEY_HEADER) or message.routing_key
        try:
            event = decode_analysis_event(message.body)
        except msgspec.MsgspecError as exc:
            reason = f"undecodable analysis event: {exc}"
            line = _fields(
                messageId=message.message_id,
                routing_key=routing_key,
                attempt=attempt,
                bytes=len(message.body),
            )
            if await self._dead_letter(message, reason, attempts=attempt - 1):
                _log.error("analysis event dead-lettered: %s %s", reason, line)
                self._count(None, "dead-lettered")
            return
        fields = {
            **_event_fields(event),
            "messageId": message.message_id,
            "routing_key": routing_key,
            "attempt": f"{attempt}/{self.max_attempts}",
            "redelivered": True if message.redelivered else None,
        }
        if message.redelivered:
            # The broker delivered it before and it was never settled: the consumer that
            # had it stopped, crashed or lost its connection while handling it. That run
            # counts as a failed attempt, so that a message that kills the process every
            # time ends in the dead-letter queue instead of being redelivered for ever.
            await self._failed(message, attempt, InterruptedAttemptError(), fields, traceback=False)
            return
        started = time.perf_counter()
        try:
            await self._handler(event)
        except ArchiveUnavailableError as exc:
            await self._failed(message, attempt, exc, fields, traceback=False)
            return
        except Exception as exc:
            await self._failed(message, attempt, exc, fields, traceback=True)
            return
        duration_ms = round((time.perf_counter() - started) * 1000)
        if await self._settle(message):
            self._count(fields["type"], "handled")
            _log.info(
                "analysis event handled: %s", _fields(**fields, outcome="acked", ms=duration_ms)
            )

    async def _failed(
        self,
        message: AbstractIncomingMessage,
        attempt: int,
        exc: Exception,
        fields: dict[str, object],
        *,
        traceback: bool,
    ) -> None:
        error = _text(f"{type(exc).__name__}: {exc}")
        event_type = str(fields["type"])
        if attempt >= self.max_attempts:
            reason = f"failed {attempt} attempt(s); last error: {error}"
            if await self._dead_letter(message, reason, attempts=attempt, last_error=error):
                self._count(event_type, "dead-lettered")
                _log.error(
                    "analysis event dead-lettered after its last attempt: %s error=%s",
                    _fields(**fields, outcome="dead-lettered"),
                    error,
                    exc_info=exc if traceback else None,
                )
            return
        delay = self.topology.retry_delays[min(attempt, len(self.topology.retry_delays)) - 1]
        if await self._retry(message, attempt, delay, error):
            self._count(event_type, "retry")
            _log.warning(
                "analysis event failed, retrying in %gs: %s error=%s",
                delay,
                _fields(**fields, outcome="retry"),
                error,
                exc_info=exc if traceback else None,
            )

    def _copy(self, message: AbstractIncomingMessage, headers: dict[str, FieldValue]) -> Message:
        """The message again, with its properties, persistent, with ``headers``."""
        return Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=DeliveryMode.PERSISTENT,
            priority=message.priority,
            correlation_id=message.correlation_id,
            reply_to=message.reply_to,
            message_id=message.message_id,
            timestamp=message.timestamp,
            type=message.type,
            user_id=None,  # the broker checks it against the login: do not replay it
            app_id=message.app_id,
        )

    def _origin(self, message: AbstractIncomingMessage) -> dict[str, FieldValue]:
        headers: dict[str, Any] = dict(message.headers or {})
        headers.setdefault(ROUTING_KEY_HEADER, message.routing_key or "")
        headers.setdefault(EXCHANGE_HEADER, message.exchange or "")
        return headers

    async def _retry(
        self, message: AbstractIncomingMessage, attempt: int, delay: float, error: str
    ) -> bool:
        headers = {
            k: v for k, v in self._origin(message).items() if not k.startswith(_BROKER_HEADERS)
        }
        headers[ATTEMPTS_HEADER] = attempt
        headers[LAST_ERROR_HEADER] = error
        return await self._republish(
            message, self._copy(message, headers), self.topology.retry_queue(delay)
        )

    async def _dead_letter(
        self,
        message: AbstractIncomingMessage,
        reason: str,
        *,
        attempts: int,
        last_error: str | None = None,
    ) -> bool:
        headers = self._origin(message)
        headers[REASON_HEADER] = _text(reason)
        headers[ATTEMPTS_HEADER] = attempts
        headers[DEAD_LETTERED_AT_HEADER] = datetime.now(UTC).isoformat()
        if last_error is not None:
            headers[LAST_ERROR_HEADER] = last_error
        return await self._republish(
            message, self._copy(message, headers), self.topology.dead_letter_queue
        )

    async def _republish(
        self, original: AbstractIncomingMessage, copy: Message, queue: str
    ) -> bool:
        """Publish ``copy`` to ``queue`` (confirmed), then ack ``original``. When the broker
        does not take the copy, ``original`` is requeued instead (after a pause, so that a
        broker in trouble is not hammered). True when the copy was published and
        ``original`` acked."""
        channel = self._publish_channel
        try:
            if channel is None:
                raise RuntimeError("the consumer is stopped")
            # Bounded as a whole: while reconnecting, a robust channel waits for the broker.
            await asyncio.wait_for(
                channel.default_exchange.publish(copy, routing_key=queue, mandatory=True),
                self._publish_timeout,
            )
        except Exception as exc:
            _log.error(
                "could not publish to %r (%r); requeueing the message %s",
                queue,
                exc,
                _fields(messageId=original.message_id),
            )
            await asyncio.sleep(_REPUBLISH_BACKOFF)
            await self._settle(original, requeue=True)
            return False
        return await self._settle(original)

    async def _settle(
        self, message: AbstractIncomingMessage, *, requeue: bool | None = None
    ) -> bool:
        """Ack (``requeue`` None) or nack; False when the broker cannot take it any more
        (the delivery's channel is gone: the broker redelivers the message)."""
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except Exception as exc:
            self.stats.unacknowledged += 1
            _log.warning(
                "could not %s a delivery (%r): the broker redelivers it %s",
                "ack" if requeue is None else "requeue",
                exc,
                _fields(messageId=message.message_id),
            )
            return False
        return True

    def _count(self, event_type: object, outcome: str) -> None:
        if outcome == "handled":
            self.stats.handled += 1
        elif outcome == "retry":
            self.stats.retried += 1
        elif outcome == "dead-lettered":
            self.stats.dead_lettered += 1
        else:
            self.stats.requeued += 1
        if self._on_outcome is not None:
            try:
                self._on_outcome(None if event_type is None else str(event_type), outcome)
            except Exception:
                _log.exception("on_outcome callback failed")
