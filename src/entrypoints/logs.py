"""Structured logging: JSON lines (or a console renderer on a TTY) with the request id."""

from __future__ import annotations

import logging
import sys

import structlog

__all__ = ["configure_logging", "get_logger"]

# What the websockets library logs at info for every socket, through uvicorn's logger,
# with nothing to tell one socket from another (uvicorn's own line per accepted socket,
# which names the client, stays).
_WEBSOCKET_CHATTER = frozenset({"connection open", "connection closed"})


def _not_websocket_chatter(record: logging.LogRecord) -> bool:
    return record.msg not in _WEBSOCKET_CHATTER


def configure_logging(level: str = "info", fmt: str | None = None) -> None:
    """Route structlog and the standard library through one renderer.

    ``fmt`` is ``json`` or ``console``; None picks console on a TTY, JSON otherwise.
    Context bound with ``structlog.contextvars`` (the request id) lands on every line.
    """
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            # First: a line below the level costs one level check, not the whole chain
            # (a debug line per domain event, the request line at LOG_LEVEL=warning).
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in (
        "sqlalchemy.engine",
        "asyncio",
        "httpx",
        "aiormq",
        "aio_pika",
        "pgserver",
        "alembic",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    logging.getLogger("uvicorn.error").addFilter(_not_websocket_chatter)  # once: same object


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
