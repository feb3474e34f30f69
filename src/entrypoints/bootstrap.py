"""The composition root: settings → adapters → services, used by every entrypoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.memory import (
    InMemoryEventPublisher,
    InMemoryIntegrationPublisher,
    InMemoryRateLimiter,
    InMemorySystemUsageReader,
    InMemoryUnitOfWorkFactory,
)
from adapters.offline import OfflineChatModel
from adapters.websocket.hub import ConnectionHub
from adapters.websocket.notifier import (
    HttpForwardNotifier,
    LocalNotifier,
    ManagedNotifier,
    RabbitMQNotifier,
)
from chatcore.assessment import (
    ArchiveResult,
    ArchiveUnavailableError,
    AssessmentSource,
    IntegrationPublisher,
    Notifier,
)
from chatcore.clock import SystemClock
from chatcore.events import DomainEvent, ModelCallFailed, ModelFellBack, ModelSkipped
from chatcore.fallback import FreeQuota, ModelChain, ModelGateway
from chatcore.limits import RateLimits
from chatcore.ports import ChatModel, Clock, RateLimiter, UnitOfWorkFactory
from chatcore.services import (
    ConversationService,
    LibraryService,
    MessageService,
    UsageService,
)
from chatcore.services.assessment import AssessmentService
from chatcore.usage import SystemUsageReader
from entrypoints.auth import Authenticator, resolve_jwt_secret
from entrypoints.logs import get_logger
from entrypoints.metrics import Metrics
from entrypoints.settings import Settings

__all__ = ["Container", "bootstrap"]

_log = get_logger("chatcore.bootstrap")

Check = Callable[[], Awaitable[bool]]
Closer = Callable[[], Awaitable[Any]]


@dataclass(slots=True, kw_only=True)
class Container:
    """Everything an entrypoint needs, built once; :meth:`aclose` releases it."""

    settings: Settings
    clock: Clock
    uow: UnitOfWorkFactory
    system_usage: SystemUsageReader
    model: ChatModel
    gateway: ModelGateway
    limiter: RateLimiter
    events: InMemoryEventPublisher
    conversations: ConversationService
    messages: MessageService
    usage: UsageService
    library: LibraryService
    assessment: AssessmentService
    assessment_source: AssessmentSource
    authenticator: Authenticator
    metrics: Metrics
    hub: ConnectionHub | None
    """This process's WebSocket connections (None in a process that serves none)."""
    notifier: Notifier
    readiness: dict[str, Check] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    closers: list[Closer] = field(default_factory=list)

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


@dataclass(slots=True)
class _Storage:
    uow: UnitOfWorkFactory
    system_usage: SystemUsageReader
    where: str
    ready: Check | None = None
    close: Closer | None = None


async def _database(settings: Settings, metrics: Metrics) -> _Storage:
    # Imported here so that in-memory users of bootstrap do not load SQLAlchemy.
    from adapters.postgres import (  # noqa: PLC0415
        HistoryCache,
        PostgresSystemUsageReader,
        PostgresUnitOfWorkFactory,
        create_engine,
        max_connections,
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
    engine = create_engine(url, settings.db_schema, pool_size=settings.db_pool_size)

    async def ready() -> bool:
        return await ping(engine)

    # Conversations' newest messages kept between messages (decision 0015).
    size = settings.history_cache_size
    history = HistoryCache(capacity=size) if size > 0 else None
    if history is not None:
        metrics.watch_history_cache(
            lambda: (history.hits, history.misses, history.stale, len(history))
        )
    # As many units of work at once as the pool has connections, the others served in
    # arrival order; as many connections as the pool keeps stay with the units of work.
    units = PostgresUnitOfWorkFactory(
        engine,
        max_open=max_connections(settings.db_pool_size),
        keep=settings.db_pool_size,
        history=history,
    )

    async def close() -> None:
        try:
            await units.aclose()  # before dispose: kept connections go back to the pool
        finally:
            await engine.dispose()

    return _Storage(units, PostgresSystemUsageReader(engine), where, ready, close)


async def _openrouter(settings: Settings, closers: list[Closer]) -> ChatModel:
    from adapters.openrouter import (  # noqa: PLC0415
        OpenRouterChatModel,
        build_http_client,
    )

    models = settings.models
    # One client for every call: its transport's pool takes and returns connections in
    # O(1), however many there are (see build_http_client).
    client = build_http_client(max_connections=256)
    closers.append(client.aclose)
    assert settings.openrouter_api_key is not None
    return OpenRouterChatModel(
        client=client,
        api_key=settings.openrouter_api_key,
        base_url=models.base_url,
        referer=models.referer,
        title=models.title,
        timeout_ms=models.timeout_ms,
        default_model=models.default_model,
    )


class _NoArchive:
    """The archive when ``ARCHIVE_SERVICE_URL`` is unset: every fetch is a clear failure."""

    async def fetch_result(self, result_id: str) -> ArchiveResult | None:
        raise ArchiveUnavailableError(
            f"cannot fetch result {result_id}: ARCHIVE_SERVICE_URL is not set"
        )


async def _assessment_io(
    settings: Settings,
    overrides: dict[str, Any],
    closers: list[Closer],
    info: dict[str, str],
) -> tuple[AssessmentSource, IntegrationPublisher]:
    source: AssessmentSource | None = overrides.pop("source", None)
    if source is None and settings.archive_service_url:
        from adapters.archive import ArchiveClient, build_archive_http_client  # noqa: PLC0415

        client = build_archive_http_client()
        closers.append(client.aclose)
        source = ArchiveClient(
            client=client,
            base_url=settings.archive_service_url,
            service_key=settings.internal_service_key,
        )
        info["archive"] = settings.archive_service_url
    elif source is None:
        source = _NoArchive()
        info["archive"] = "not configured (ARCHIVE_SERVICE_URL)"
    publisher: IntegrationPublisher | None = overrides.pop("publisher", None)
    if publisher is None and settings.rabbitmq_url:
        from adapters.rabbitmq import RabbitMQPublisher  # noqa: PLC0415

        rabbit = RabbitMQPublisher(settings.rabbitmq_url, settings.rabbitmq_exchange)
        await rabbit.start()
        closers.append(rabbit.close)
        publisher = rabbit
    elif publisher is None:
        publisher = InMemoryIntegrationPublisher()
    return source, publisher


def _chain(settings: Settings, offline: bool) -> ModelChain:
    if offline:
        return ModelChain(primary="offline")
    models = settings.models
    return ModelChain(
        primary=models.default_model,
        fallbacks=models.fallback_models,
        emergency=models.emergency_model,
        free_only=models.free_only,
        daily_budget_usd=models.daily_budget_usd,
    )


_LOUD = frozenset({"auth_failed", "payment_required"})


def _event_subscriber(metrics: Metrics) -> Callable[[DomainEvent], Awaitable[None]]:
    log = get_logger("chatcore.events")
    debug = logging.getLogger("chatcore.events")

    async def on_event(event: DomainEvent) -> None:
        metrics.observe_event(event)
        if isinstance(event, ModelCallFailed):
            level = log.error if event.kind in _LOUD else log.warning
            level(
                "model call failed",
                model=event.model,
                kind=event.kind,
                detail=event.detail,
                retry_after=event.retry_after,
                cooldown_seconds=event.cooldown_seconds,
            )
        elif isinstance(event, ModelSkipped):
            log.info("model skipped", model=event.model, reason=event.reason)
        elif isinstance(event, ModelFellBack):
            log.info("fell back", model=event.model, after=event.from_models)
        elif debug.isEnabledFor(logging.DEBUG):  # one line per answer: only when asked for
            log.debug("domain event", kind=type(event).__name__)

    return on_event


_BUILD: Any = object()


async def _sockets(
    settings: Settings,
    overrides: dict[str, Any],
    clock: Clock,
    *,
    closers: list[Closer],
    readiness: dict[str, Check],
    info: dict[str, str],
) -> tuple[ConnectionHub | None, Notifier]:
    """The hub and the notifier, from the ``hub``/``notifier`` overrides or built (and
    then started here and stopped by the closers). Pops the last overrides: any other
    left is refused before anything starts."""
    hub: ConnectionHub | None = overrides.pop("hub", _BUILD)
    given: Notifier | None = overrides.pop("notifier", None)
    if overrides:
        raise TypeError(f"unknown overrides: {', '.join(sorted(overrides))}")
    if hub is _BUILD:
        hub = ConnectionHub(ping_interval=settings.ws_ping_interval)
        closers.append(hub.aclose)  # after the notifier stops (closers run in reverse)
    if given is not None:
        return hub, given
    notifier: ManagedNotifier
    if settings.rabbitmq_url:
        notifier = RabbitMQNotifier(
            settings.rabbitmq_url, hub=hub, exchange=settings.notifications_exchange, clock=clock
        )
        readiness["notifications"] = notifier.ready
        info["notifications"] = f"rabbitmq exchange {settings.notifications_exchange}"
    else:
        # Without a broker only this process's sockets can hear it (none: it is lost).
        notifier = LocalNotifier(hub or ConnectionHub(), clock)
        info["notifications"] = "in-process"
    if settings.notification_service_url:
        notifier = HttpForwardNotifier(
            notifier,
            settings.notification_service_url,
            service_key=settings.internal_service_key,
        )
        info["notifications"] += f", forwarded to {settings.notification_service_url}"
    await notifier.start()
    closers.append(notifier.stop)
    return hub, notifier


async def bootstrap(settings: Settings, **overrides: Any) -> Container:
    """Build the container.

    Overridable by name: ``clock``, ``metrics``, ``uow`` (with ``system_usage``, or the
    in-memory reader of an ``InMemoryUnitOfWorkFactory``), ``limiter``, ``model`` (the
    provider every rung of ``chain`` is asked through), ``chain``, ``authenticator``,
    ``hub`` (None: this process serves no sockets, so its notifier only publishes),
    ``notifier`` (used as is: the caller starts and stops it).
    """
    closers: list[Closer] = []
    readiness: dict[str, Check] = {}
    info: dict[str, str] = {}
    clock: Clock = overrides.pop("clock", None) or SystemClock()
    metrics: Metrics = overrides.pop("metrics", None) or Metrics()

    uow: UnitOfWorkFactory | None = overrides.pop("uow", None)
    system_usage: SystemUsageReader | None = overrides.pop("system_usage", None)
    if uow is None:
        storage = await _database(settings, metrics)
        uow, info["database"] = storage.uow, storage.where
        system_usage = system_usage or storage.system_usage
        if storage.ready:
            readiness["database"] = storage.ready
        if storage.close:
            closers.append(storage.close)
    else:
        info["database"] = type(uow).__name__
        if system_usage is None and isinstance(uow, InMemoryUnitOfWorkFactory):
            system_usage = InMemorySystemUsageReader(uow.store)
    if system_usage is None:
        raise TypeError("a uow override needs a system_usage override too")

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

    model: ChatModel | None = overrides.pop("model", None)
    offline = model is None and settings.openrouter_api_key is None
    if model is None:
        model = OfflineChatModel() if offline else await _openrouter(settings, closers)
    chain: ModelChain = overrides.pop("chain", None) or _chain(settings, offline)
    info["model"] = "offline" if offline else " → ".join(chain.models)

    events = InMemoryEventPublisher(keep=0)
    events.subscribe(_event_subscriber(metrics))
    gateway = ModelGateway(
        provider=model,
        chain=chain,
        clock=clock,
        limiter=limiter,
        spend=system_usage,
        events=events,
        in_process=isinstance(model, OfflineChatModel),
        quota=FreeQuota(
            per_minute=settings.models.free_requests_per_minute,
            per_day=settings.models.free_requests_per_day,
        ),
    )

    secret, generated = resolve_jwt_secret(settings.jwt_secret, settings.data_dir)
    if generated:
        info["jwt_secret"] = f"development secret in {settings.data_dir / 'jwt_secret'}"
    authenticator = overrides.pop("authenticator", None) or Authenticator(
        secret=secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        internal_service_key=settings.internal_service_key,
    )
    source, publisher = await _assessment_io(settings, overrides, closers, info)
    hub, notifier = await _sockets(
        settings, overrides, clock, closers=closers, readiness=readiness, info=info
    )
    limits = RateLimits(limiter, settings.rates)
    return Container(
        settings=settings,
        clock=clock,
        uow=uow,
        system_usage=system_usage,
        model=model,
        gateway=gateway,
        limiter=limiter,
        events=events,
        conversations=ConversationService(
            uow=uow, clock=clock, limits=limits, events=events, settings=settings.chat
        ),
        messages=MessageService(
            uow=uow,
            clock=clock,
            gateway=gateway,
            limits=limits,
            events=events,
            settings=settings.chat,
            notifier=notifier,
        ),
        usage=UsageService(uow=uow, system=system_usage),
        library=LibraryService(uow=uow, clock=clock),
        assessment=AssessmentService(
            uow=uow,
            clock=clock,
            source=source,
            notifier=notifier,
            publisher=publisher,
            gateway=gateway,
            events=events,
            settings=settings.chat,
        ),
        assessment_source=source,
        authenticator=authenticator,
        metrics=metrics,
        hub=hub,
        notifier=notifier,
        readiness=readiness,
        info=info,
        closers=closers,
    )
