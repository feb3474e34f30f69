"""The consumer process (``chatcore consume``): analysis events → assessment conversations.

It builds the same container as the HTTP app (:func:`entrypoints.bootstrap.bootstrap`,
with no WebSocket hub: its notifications go to the sockets of the serving replicas
through the broker), consumes ``RABBITMQ_QUEUE`` with
:class:`adapters.rabbitmq.AnalysisConsumer` and hands each event to
``container.assessment.handle``. SIGTERM or SIGINT stops it gracefully: no new
deliveries, the messages in flight get ``CONSUMER_SHUTDOWN_TIMEOUT`` seconds to finish,
what is unfinished is requeued, then everything is closed.

When the broker does not answer at start, it keeps trying (every few seconds, logged)
until it does or the process is told to stop; a refused login stops it at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiormq.exceptions import AuthenticationError, ProbableAuthenticationError

from adapters.rabbitmq import AnalysisConsumer, split_keys
from entrypoints.bootstrap import bootstrap
from entrypoints.logs import get_logger
from entrypoints.settings import ConfigError, Settings, env_int

__all__ = ["ConsumerConfig", "consumer_config", "run_consumer"]

DEFAULT_EXCHANGE = "atma_events_exchange"
DEFAULT_QUEUE = "chatbot_assessment_events"
DEFAULT_ROUTING_KEYS = ("analysis.completed", "analysis.started", "analysis.failed")

_log = get_logger("chatcore.consumer")


@dataclass(slots=True, frozen=True, kw_only=True)
class ConsumerConfig:
    """What the consumer process needs besides the container."""

    url: str
    exchange: str = DEFAULT_EXCHANGE
    queue: str = DEFAULT_QUEUE
    routing_keys: tuple[str, ...] = DEFAULT_ROUTING_KEYS
    prefetch: int = 16
    max_attempts: int = 5
    retry_delays: tuple[float, ...] = (1, 5, 30, 120, 600)
    shutdown_timeout: float = 30.0
    connect_retry_interval: float = 5.0


def _seconds(env: Mapping[str, str], name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        values = tuple(float(v) for v in raw.split(",") if v.strip())
    except ValueError:
        raise ConfigError(name, f"must be a comma list of seconds, got {raw!r}") from None
    if not values or any(not 0 < v <= 86_400 for v in values):
        raise ConfigError(name, f"must be seconds between 0 and 86400, got {raw!r}")
    return values


def consumer_config(settings: Settings, env: Mapping[str, str] | None = None) -> ConsumerConfig:
    """The consumer's configuration.

    ``RABBITMQ_URL``, ``RABBITMQ_EXCHANGE``, ``RABBITMQ_QUEUE`` and
    ``RABBITMQ_ROUTING_KEYS`` come from ``settings``; the tuning knobs
    ``RABBITMQ_PREFETCH`` (16), ``RABBITMQ_MAX_ATTEMPTS`` (5), ``RABBITMQ_RETRY_DELAYS``
    (``1,5,30,120,600`` seconds) and ``CONSUMER_SHUTDOWN_TIMEOUT`` (30 s) from ``env``
    (default ``os.environ``).

    Raises:
        ConfigError: ``RABBITMQ_URL`` is not set, or a variable has a bad value.
    """
    env = os.environ if env is None else env
    url = settings.rabbitmq_url
    if not url:
        raise ConfigError(
            "RABBITMQ_URL",
            "must be set for `chatcore consume` (e.g. amqp://guest:guest@127.0.0.1:5672/)",
        )
    shutdown = _seconds(env, "CONSUMER_SHUTDOWN_TIMEOUT", (30.0,))
    if len(shutdown) != 1:
        raise ConfigError("CONSUMER_SHUTDOWN_TIMEOUT", "must be one number of seconds")
    return ConsumerConfig(
        url=url,
        exchange=settings.rabbitmq_exchange,
        queue=settings.rabbitmq_queue,
        routing_keys=split_keys(settings.rabbitmq_routing_keys) or DEFAULT_ROUTING_KEYS,
        prefetch=env_int(env, "RABBITMQ_PREFETCH", 16, 1, 1000),
        max_attempts=env_int(env, "RABBITMQ_MAX_ATTEMPTS", 5, 1, 100),
        retry_delays=_seconds(env, "RABBITMQ_RETRY_DELAYS", (1, 5, 30, 120, 600)),
        shutdown_timeout=shutdown[0],
    )


async def _start(consumer: AnalysisConsumer, config: ConsumerConfig, stop: asyncio.Event) -> bool:
    """Start consuming, trying again until the broker answers; False when told to stop
    first."""
    while not stop.is_set():
        try:
            await consumer.start()
        except (AuthenticationError, ProbableAuthenticationError) as exc:
            raise ConfigError(
                "RABBITMQ_URL", f"is refused by the broker ({exc}): check the credentials"
            ) from exc
        except (ConnectionError, OSError) as exc:
            _log.warning(
                "RabbitMQ does not answer; trying again",
                broker=consumer.broker,
                error=str(exc),
                retry_in_seconds=config.connect_retry_interval,
            )
        else:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), config.connect_retry_interval)
    return False


async def run_consumer(
    settings: Settings,
    *,
    config: ConsumerConfig | None = None,
    stop: asyncio.Event | None = None,
    **overrides: Any,
) -> None:
    """Run the consumer until SIGTERM/SIGINT (or until ``stop`` is set).

    Args:
        settings: the service's settings (``RABBITMQ_URL`` must be set).
        config: the consumer's configuration (default: :func:`consumer_config`).
        stop: set it to stop (tests); the signals set it too.
        overrides: passed to :func:`bootstrap` (tests: ``uow``, ``notifier``, ...).

    Raises:
        ConfigError: a configuration variable is missing or refused by the broker.
    """
    config = config or consumer_config(settings)
    if stop is None:
        stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        # Signal handlers cannot be installed off the main thread or on some platforms;
        # then ``stop`` is the only way to end the consumer.
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
            installed.append(signum)
    overrides.setdefault("hub", None)  # this process serves no sockets
    container = await bootstrap(settings, **overrides)
    try:
        for name, where in container.info.items():
            _log.info("using", component=name, where=where)
        consumer = AnalysisConsumer(
            url=config.url,
            exchange=config.exchange,
            queue=config.queue,
            routing_keys=config.routing_keys,
            handler=container.assessment.handle,
            prefetch=config.prefetch,
            max_attempts=config.max_attempts,
            retry_delays=config.retry_delays,
        )
        if await _start(consumer, config, stop):
            await stop.wait()
            _log.info("stopping", grace_seconds=config.shutdown_timeout)
            await consumer.stop(config.shutdown_timeout)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await container.aclose()
