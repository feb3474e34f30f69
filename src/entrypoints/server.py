"""The ASGI server behind ``chatcore serve``: uvicorn (docs/decisions/0009).

What the options are for:

- ``loop="uvloop"``, ``http="httptools"``: uvicorn's fast stack (plain asyncio on
  Windows, where uvloop does not exist).
- ``ws="websockets-sansio"``, ``ws_per_message_deflate=False``: about 25 KiB of server
  memory per idle notification socket. With deflate (uvicorn's default) every socket a
  browser opens keeps a zlib compressor and decompressor, about 37 KiB more, to
  compress frames of a few hundred bytes.
- ``lifespan="on"``: the lifespan opens the database pool (and the notifier) and
  closes them; a start-up that fails stops the server (exit status 3).
- ``access_log=False``: the request-context middleware writes one line per request.
  ``log_config=None``: uvicorn's own lines (start-up, shutdown, errors, and one
  ``"WebSocket /ws" [accepted]`` line per socket at ``info``) go through the app's
  structured logging instead of uvicorn's formatters.
- Graceful shutdown (SIGTERM or SIGINT): uvicorn stops accepting, closes every
  WebSocket with 1012 (*service restart*: clients reconnect), lets HTTP requests in
  flight finish (a streamed answer included) for up to
  :data:`GRACEFUL_SHUTDOWN_SECONDS`, cancels what is left (a cancelled stream is stored
  as a ``cancelled`` answer), and then runs the lifespan shutdown. After a SIGTERM
  the process ends by that signal (status 143), after a SIGINT with status 0.
- Proxy headers: ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only from
  the addresses in ``FORWARDED_ALLOW_IPS`` (uvicorn's variable, a comma list;
  default ``127.0.0.1,::1``; ``*`` trusts every peer), and then set the ASGI
  ``client`` and ``scheme``. chatcore itself reads neither; they show in uvicorn's
  WebSocket log line and in anything that reads the scope.
- WebSocket protocol pings: uvicorn pings every socket every
  :data:`WS_PROTOCOL_PING_SECONDS` on a timer of the connection's own and closes one
  whose peer does not answer within :data:`WS_PROTOCOL_PING_TIMEOUT` (1011). Browsers
  answer by themselves. The app's own ``ping`` frames (``WS_PING_INTERVAL``) stay: they
  are part of the socket's contract and the only heartbeat a browser script can see.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Final

import uvicorn

__all__ = [
    "APP_FACTORY",
    "GRACEFUL_SHUTDOWN_SECONDS",
    "KEEP_ALIVE_SECONDS",
    "WS_PROTOCOL_PING_SECONDS",
    "WS_PROTOCOL_PING_TIMEOUT",
    "run_server",
    "server_config",
    "server_options",
]

APP_FACTORY: Final = "entrypoints.http.app:create_app_from_env"

GRACEFUL_SHUTDOWN_SECONDS: Final = 20
"""How long requests in flight may run after a shutdown signal. Under 30 s with room
for the lifespan shutdown, so an orchestrator's usual 30 s grace period (Kubernetes'
default) ends with the pool closed rather than with a SIGKILL."""

KEEP_ALIVE_SECONDS: Final = 75
"""How long an idle keep-alive connection stays open. Longer than the idle timeout of
the usual gateways and load balancers (60 s), so that the gateway, not chatcore, closes
an idle connection; otherwise a request sent on a connection chatcore is closing at
that moment fails with a 502 (uvicorn's default is 5 s)."""

WS_PROTOCOL_PING_SECONDS: Final = 20.0
WS_PROTOCOL_PING_TIMEOUT: Final = 20.0


def server_options(*, log_level: str = "info") -> dict[str, Any]:
    """The uvicorn settings of ``chatcore serve`` (keyword arguments of
    ``uvicorn.Config`` and ``uvicorn.run``), without the app, address and workers."""
    return {
        "loop": "asyncio" if sys.platform == "win32" else "uvloop",
        "http": "httptools",
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_ping_interval": WS_PROTOCOL_PING_SECONDS,
        "ws_ping_timeout": WS_PROTOCOL_PING_TIMEOUT,
        "lifespan": "on",
        "access_log": False,
        "log_config": None,
        "log_level": log_level,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "proxy_headers": True,
        "forwarded_allow_ips": None,  # FORWARDED_ALLOW_IPS, else 127.0.0.1 and ::1
        "server_header": False,
    }


def server_config(
    app: str | Callable[..., Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    log_level: str = "info",
    factory: bool = False,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` with ``chatcore serve``'s settings, for serving ``app`` in a
    running event loop (``uvicorn.Server(config).serve(...)``), as the tests do."""
    return uvicorn.Config(
        app, host=host, port=port, factory=factory, **server_options(log_level=log_level)
    )


def run_server(*, host: str, port: int, workers: int = 1, log_level: str = "info") -> None:
    """Serve the app from the environment until a shutdown signal.

    With ``workers`` > 1 uvicorn's supervisor runs that many worker processes on one
    socket; each runs the lifespan, so each has its own database pool.
    """
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=host,
        port=port,
        workers=max(1, workers),
        **server_options(log_level=log_level),
    )
