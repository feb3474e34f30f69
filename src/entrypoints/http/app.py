"""The Litestar application factory."""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request
from litestar.di import Provide
from litestar.exceptions import SerializationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin

import chatcore
from entrypoints.bootstrap import Container, bootstrap
from entrypoints.http.assessment import AssessmentController, SuggestionController
from entrypoints.http.conversations import ConversationController
from entrypoints.http.deps import provide_container, provide_principal
from entrypoints.http.errors import EXCEPTION_HANDLERS
from entrypoints.http.health import health, live, ready
from entrypoints.http.health import metrics as metrics_endpoint
from entrypoints.http.middleware import RequestContext
from entrypoints.http.usage import ConversationUsageController, UsageController
from entrypoints.http.ws import notifications_socket
from entrypoints.logs import configure_logging, get_logger
from entrypoints.metrics import Metrics
from entrypoints.settings import DEFAULTS_LOGGED_ENV, Settings, load_settings

__all__ = ["GC_YOUNG_THRESHOLD", "ChatcoreApp", "create_app", "create_app_from_env"]

_log = get_logger("chatcore.app")


class ChatcoreRequest(Request[Any, Any, Any]):
    """A request whose JSON body may be nested too deeply to decode: that is the
    client's error (400), not a RecursionError (500)."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except RecursionError:
            raise SerializationException("the JSON body is nested too deeply") from None


GC_YOUNG_THRESHOLD = 20_000
"""The collector's first threshold in a server process (CPython's default is 700): how
many more container objects may be alive than at the last collection before the
youngest generation is collected. Every request in flight keeps a few hundred objects
alive (rows, messages, the prompt), so with the default a server under load collected
four thousand times in 15 s, and the generations above it with it: about a tenth of the
worker's CPU on the message route. The other two thresholds stay CPython's."""

SHUTDOWN_DRAIN_SECONDS = 5.0
"""How long the lifespan shutdown waits for HTTP exchanges still finishing before it
closes the container (see :meth:`ChatcoreApp.wait_for_requests`)."""


class ChatcoreApp(Litestar):
    """Litestar with the request context around *every* HTTP exchange, unmatched
    routes included (Litestar's own middleware runs only once a route matched)."""

    request_context: RequestContext
    in_flight: set[asyncio.Task[Any]]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - ASGI servers call apps from a task
            await self.request_context.around(scope, receive, send, super().__call__)
            return
        self.in_flight.add(task)
        try:
            await self.request_context.around(scope, receive, send, super().__call__)
        finally:
            self.in_flight.discard(task)

    async def wait_for_requests(self, timeout: float) -> int:  # noqa: ASYNC109
        """Wait up to ``timeout`` seconds for the HTTP exchanges still running; returns
        how many were left after it.

        A server that gives up on a request at shutdown (uvicorn, once its graceful
        shutdown time is over) cancels it and runs the lifespan shutdown at once. A
        cancelled answer stream then still has to store its answer as ``cancelled``,
        which needs the storage the lifespan shutdown is about to close.
        """
        pending = {task for task in self.in_flight if not task.done()}
        if not pending:
            return 0
        _, still = await asyncio.wait(pending, timeout=timeout)
        return len(still)


def _log_startup(container: Container, *, log_defaults: bool) -> None:
    settings = container.settings
    for name, using in settings.explain_defaults().items() if log_defaults else ():
        _log.info("default in use", variable=name, using=using)
    _log.info("chatcore ready", version=chatcore.__version__, **container.info)


def create_app(
    settings: Settings | None = None,
    *,
    container: Container | None = None,
    log_defaults: bool = True,
    freeze_gc: bool = False,
    **overrides: Any,
) -> ChatcoreApp:
    """Build the app. With ``container`` given it is used as is (and not closed);
    otherwise one is bootstrapped from ``settings`` (and ``overrides``) at start-up.
    ``freeze_gc``: once started, move every object so far out of the garbage
    collector's reach (``gc.freeze``) and collect the youngest generation only past
    :data:`GC_YOUNG_THRESHOLD` objects; for a server process that runs one app."""
    settings = settings or (container.settings if container else load_settings())
    metrics = container.metrics if container else overrides.pop("metrics", None) or Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        owned = container is None
        built = container or await bootstrap(settings, metrics=metrics, **overrides)
        app.state.container = built
        if owned:
            _log_startup(built, log_defaults=log_defaults)
        if freeze_gc:
            # Everything made at start-up (modules, the container, compiled statements)
            # lives as long as the process: keep it out of the collector's full passes,
            # which otherwise walk it all and stall every request for tens of ms.
            gc.collect()
            gc.freeze()
            _, middle, oldest = gc.get_threshold()
            gc.set_threshold(GC_YOUNG_THRESHOLD, middle, oldest)
        try:
            yield
        finally:
            if owned:
                left = 0
                if isinstance(app, ChatcoreApp):
                    left = await app.wait_for_requests(SHUTDOWN_DRAIN_SECONDS)
                if left:
                    _log.warning("closing with requests still running", requests=left)
                await built.aclose()

    app = ChatcoreApp(
        route_handlers=[
            ConversationController,
            AssessmentController,
            SuggestionController,
            ConversationUsageController,
            UsageController,
            live,
            ready,
            health,
            metrics_endpoint,
            notifications_socket,
        ],
        dependencies={
            "container": Provide(provide_container, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        request_class=ChatcoreRequest,
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="chatcore",
            version=chatcore.__version__,
            description="AI career-advisor chat service. Authenticate with a Bearer JWT.",
            path="/schema",
            render_plugins=[ScalarRenderPlugin(), SwaggerRenderPlugin()],
        ),
        debug=False,
        logging_config=None,  # logging is configure_logging's; Litestar's would replace it
    )
    app.request_context = RequestContext(metrics)
    app.in_flight = set()
    return app


def create_app_from_env() -> ChatcoreApp:
    """Factory for ASGI servers: settings from the environment, logging configured."""
    settings = load_settings(os.environ)
    configure_logging(settings.log_level, settings.log_format)
    return create_app(
        settings, log_defaults=os.environ.get(DEFAULTS_LOGGED_ENV) != "1", freeze_gc=True
    )
