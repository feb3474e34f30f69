"""The composition root: settings → adapters → services, used by every entrypoint."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.memory import InMemoryEventPublisher, InMemoryRateLimiter
from adapters.offline import OfflineChatModel
from chatcore.clock import SystemClock
from chatcore.events import DomainEvent
from chatcore.limits import RateLimits
from chatcore.ports import ChatModel, Clock, RateLimiter, UnitOfWorkFactory
from chatcore.services import ConversationService, MessageService
from entrypoints.auth import Authenticator, resolve_jwt_secret
from entrypoints.logs import get_logger
from entrypoints.metrics import Metrics
from entrypoints.settings import Settings

__all__ = ["Container", "bootstrap"]

_log = get_logger("chatcore.bootstrap")

Check = Callable[[], Awaitable[bool]]


@dataclass(slots=True, kw_only=True)
class Container:
    """Everything an entrypoint needs, built once; :meth:`aclose` releases it."""

    settings: Settings
    clock: Clock
    uow: UnitOfWorkFactory
    model: ChatModel
    limiter: RateLimiter
    events: InMemoryEventPublisher
    conversations: ConversationService
    messages: MessageService
    authenticator: Authenticator
    metrics: Metrics
    readiness: dict[str, Check] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    closers: list[Callable[[], Awaitable[Any]]] = field(default_factory=list)

    async def check_ready(self) -> dict[str, bool]:
        """Each dependency's health; all must be true for the service to be ready."""
        names = list(self.readiness)
        results = await asyncio.gather(
            *(self.readiness[n]() for n in names), return_exceptions=True
        )
        return {n: r is True for n, r in zip(names, results, strict=True)}

    async def aclose(self) -> None:
        for close in reversed(self.closers):
            try:
                await close()
            except Exception:
                _log.exception("closing a resource failed")
        self.closers.clear()


async def _database(
    settings: Settings,
) -> tuple[UnitOfWorkFactory, Check, Callable[[], Awaitable[Any]], str]:
    # Imported here so that in-memory users of bootstrap do not load SQLAlchemy.
    from adapters.postgres import (  # noqa: PLC0415
        PostgresUnitOfWorkFactory,
        create_engine,
        migrate,
        ping,
        start_embedded,
    )

    url = settings.database_url
    pgdata = settings.data_dir / "pgdata"
    where = f"embedded ({pgdata})" if url and str(pgdata.resolve()) in url else "external"
    if url is None:
        url = await asyncio.to_thread(start_embedded, settings.data_dir)
        where = f"embedded ({pgdata})"
        await migrate(url, settings.db_schema)
    engine = create_engine(url, settings.db_schema)

    async def ready() -> bool:
        return await ping(engine)

    return PostgresUnitOfWorkFactory(engine), ready, engine.dispose, where


def _log_event_subscriber(metrics: Metrics) -> Callable[[DomainEvent], Awaitable[None]]:
    log = get_logger("chatcore.events")

    async def on_event(event: DomainEvent) -> None:
        metrics.observe_event(event)
        log.debug("domain event", kind=type(event).__name__)

    return on_event


async def bootstrap(settings: Settings, **overrides: Any) -> Container:
    """Build the container. Any field of :class:`Container` can be overridden by name
    (``uow=InMemoryUnitOfWorkFactory()``, ``model=...``, ``clock=...``)."""
    closers: list[Callable[[], Awaitable[Any]]] = []
    readiness: dict[str, Check] = {}
    info: dict[str, str] = {}
    clock: Clock = overrides.pop("clock", None) or SystemClock()
    metrics: Metrics = overrides.pop("metrics", None) or Metrics()

    uow: UnitOfWorkFactory | None = overrides.pop("uow", None)
    if uow is None:
        uow, ready, close, where = await _database(settings)
        readiness["database"] = ready
        closers.append(close)
        info["database"] = where
    else:
        info["database"] = type(uow).__name__

    limiter: RateLimiter | None = overrides.pop("limiter", None)
    if limiter is None and settings.redis_url:
        from redis.asyncio import Redis  # noqa: PLC0415

        from adapters.redis import RedisRateLimiter  # noqa: PLC0415

        redis_limiter = RedisRateLimiter(Redis.from_url(settings.redis_url))
        readiness["redis"] = redis_limiter.ping
        closers.append(redis_limiter.aclose)
        limiter = redis_limiter
        info["rate_limits"] = "redis"
    elif limiter is None:
        limiter = InMemoryRateLimiter(clock)
        info["rate_limits"] = "in-process"

    model: ChatModel = overrides.pop("model", None) or OfflineChatModel()
    info["model"] = "offline" if isinstance(model, OfflineChatModel) else type(model).__name__

    events = InMemoryEventPublisher(keep=0)
    events.subscribe(_log_event_subscriber(metrics))

    secret, generated = resolve_jwt_secret(settings.jwt_secret, settings.data_dir)
    if generated:
        info["jwt_secret"] = f"development secret in {settings.data_dir / 'jwt_secret'}"
    authenticator = overrides.pop("authenticator", None) or Authenticator(
        secret=secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        internal_service_key=settings.internal_service_key,
    )
    limits = RateLimits(limiter, settings.rates)
    container = Container(
        settings=settings,
        clock=clock,
        uow=uow,
        model=model,
        limiter=limiter,
        events=events,
        conversations=ConversationService(
            uow=uow, clock=clock, limits=limits, events=events, settings=settings.chat
        ),
        messages=MessageService(
            uow=uow,
            clock=clock,
            model=model,
            limits=limits,
            events=events,
            settings=settings.chat,
        ),
        authenticator=authenticator,
        metrics=metrics,
        readiness=readiness,
        info=info,
        closers=closers,
    )
    if overrides:
        raise TypeError(f"unknown overrides: {', '.join(sorted(overrides))}")
    return container
