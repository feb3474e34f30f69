"""Engine construction: URLs, the async engine, and the readiness probe."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from adapters.postgres.tables import APP_ROLE, DEFAULT_SCHEMA

__all__ = ["create_engine", "max_connections", "ping", "to_async_url"]

_POSTGRES_SCHEMES = ("postgres", "postgresql")
# libpq's names of the TLS modes, which asyncpg accepts as its ``ssl`` argument.
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_JSON_ENCODER = msgspec.json.Encoder()


def _json_dumps(value: Any) -> str:
    # msgspec instead of the json module: the same JSON for our values, several times
    # faster, and every message row carries a JSON column.
    return _JSON_ENCODER.encode(value).decode()


def _json_loads(text: str | bytes) -> Any:
    try:
        return msgspec.json.decode(text)
    except msgspec.ValidationError:
        # A number beyond a double's range (jsonb keeps any numeric); the json module
        # reads it as infinity rather than failing the whole row.
        return json.loads(text)


def _as_asyncpg(url: URL) -> URL:
    backend = url.drivername.split("+", 1)[0]
    if backend not in _POSTGRES_SCHEMES:
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    url = url.set(drivername="postgresql+asyncpg")
    # libpq URLs (Heroku, managed services) say ``sslmode=require``; asyncpg would
    # refuse the unknown keyword, and calls the same thing ``ssl``.
    sslmode = url.query.get("sslmode")
    if isinstance(sslmode, str) and "ssl" not in url.query:
        if sslmode not in _SSL_MODES:
            raise ValueError(f"unknown sslmode {sslmode!r}")
        url = url.difference_update_query(["sslmode"]).update_query_dict({"ssl": sslmode})
    return url


def to_async_url(url: str) -> str:
    """Rewrite a PostgreSQL URL for SQLAlchemy with the asyncpg driver.

    Accepts ``postgresql://``, ``postgres://``, any ``postgresql+<driver>://`` and
    socket URLs such as pgserver's ``postgresql://postgres:@/postgres?host=/tmp/x``.

    Raises:
        ValueError: the URL is not a PostgreSQL one.
    """
    return _as_asyncpg(make_url(url)).render_as_string(hide_password=False)


def max_connections(pool_size: int) -> int:
    """The most connections an engine of :func:`create_engine` opens: the pool's
    ``pool_size`` plus an overflow of half as many under load."""
    return pool_size + pool_size // 2


def create_engine(url: str, schema: str = DEFAULT_SCHEMA, pool_size: int = 10) -> AsyncEngine:
    """An async engine on ``url`` whose statements address the tables in ``schema``.

    The pool keeps ``pool_size`` connections and opens up to half as many more under
    load. A unit of work holds one from its first round trip to its last, and most
    units of work are one round trip (decisions 0016 and 0017), so a few connections
    serve many requests in flight; more backends than that only make PostgreSQL spend
    more CPU per statement (docs/benchmarks.md, "Pool size").

    No ``pool_pre_ping`` (three round trips per checkout with asyncpg): a unit of work
    whose first statement meets a dead pooled connection retries once on a fresh one,
    after SQLAlchemy invalidated the whole pool, so the service recovers by itself when
    the database restarts.

    Every connection starts as the service's unprivileged role, ``chatcore_app``, with
    bitmap scans off (decision 0014): both are sent with the connection's start-up
    packet, so no transaction pays for them and no statement on these connections runs
    as the login role, even outside a unit of work. The login role must be allowed to
    switch to it, as for ``SET ROLE`` (a superuser, the tables' owner that ran the
    migrations, or a member of the role); the migrations create the role, so run them
    first.
    """
    connect_args: dict[str, Any] = {
        "server_settings": {
            "application_name": "chatcore",
            # Short OLTP statements: JIT compilation would only add latency.
            "jit": "off",
            # Row-level security applies to this role even when the login role is a
            # superuser or owns the tables; per transaction only the user is set.
            "role": APP_ROLE,
            # Decision 0012: a conversation's newest messages are an ordered index
            # scan that stops at the history window, never a bitmap scan and a sort.
            "enable_bitmapscan": "off",
        },
    }
    return create_async_engine(
        to_async_url(url),
        pool_size=pool_size,
        max_overflow=max_connections(pool_size) - pool_size,
        pool_timeout=10,
        connect_args=connect_args,
        execution_options={"schema_translate_map": {None: schema}},
        json_serializer=_json_dumps,
        json_deserializer=_json_loads,
    )


async def ping(engine: AsyncEngine, timeout: float = 2.0) -> bool:  # noqa: ASYNC109
    """Whether the database answers a trivial query within ``timeout`` seconds."""
    try:
        async with asyncio.timeout(timeout), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"
        return False
    return True
