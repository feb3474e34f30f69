"""Fixtures for tests against a real PostgreSQL server.

Which server (``pg_server_url``), in this order:

1. ``CHATCORE_TEST_PG=embedded`` forces an embedded pgserver (PostgreSQL 16) in a
   temporary directory, whatever else is available;
2. ``CHATCORE_TEST_DATABASE_URL``, else ``DATABASE_URL``, when set;
3. a server at ``postgresql://postgres@127.0.0.1:5432/postgres`` if one answers
   within a second;
4. else an embedded pgserver, so that a fresh machine runs these tests too.

The login role must be able to create databases. Each test session gets its own
database, ``chatcore_test_<hex>``, migrated once and dropped at the end, so several
runs can share a server. Tests keep to their own users (fresh UUIDs) inside it.

Async engines belong to an event loop and pytest-asyncio gives each test its own,
so ``pg_engine`` is function-scoped; the session-scoped fixtures are synchronous and
run their async work in a private ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres import create_engine, migrate, start_embedded, stop_embedded, to_async_url

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCHEMA = "chat"


async def _answers(url: str, seconds: float) -> bool:
    engine = create_async_engine(
        to_async_url(url), poolclass=NullPool, connect_args={"timeout": seconds}
    )
    try:
        async with asyncio.timeout(seconds + 0.5), engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:
        return False
    finally:
        await engine.dispose()
    return True


async def _admin(url: str, *statements: str) -> None:
    engine = create_async_engine(
        to_async_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


def database_url(server_url: str, database: str) -> str:
    """``server_url`` pointing at another database of the same server."""
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


async def create_database(server_url: str, prefix: str = "chatcore_test") -> str:
    """Create a uniquely named empty database; return its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    await _admin(server_url, f'CREATE DATABASE "{name}"')
    return database_url(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = make_url(url).database
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server whose login role may create databases."""
    if os.environ.get("CHATCORE_TEST_PG", "").lower() != "embedded":
        for variable in ("CHATCORE_TEST_DATABASE_URL", "DATABASE_URL"):
            if url := os.environ.get(variable):
                yield url
                return
        if asyncio.run(_answers(LOCAL_URL, seconds=1.0)):
            yield LOCAL_URL
            return
    # Not under pytest's tmp_path: pytest tightens its root back to 0700 while the
    # server (run as user "pgserver" when we are root) still needs to traverse it.
    directory = Path(tempfile.mkdtemp(prefix="chatcore-test-pg-"))
    try:
        yield start_embedded(directory)
    finally:
        stop_embedded(directory)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def create_db(pg_server_url: str) -> Iterator[Callable[[], Awaitable[str]]]:
    """``await create_db()`` makes an empty database, dropped at the end of the session."""
    created: list[str] = []

    async def create() -> str:
        url = await create_database(pg_server_url)
        created.append(url)
        return url

    yield create

    async def drop_all() -> None:
        for url in created:
            await drop_database(pg_server_url, url)

    asyncio.run(drop_all())


@pytest.fixture(scope="session")
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh database, migrated (schema ``chat``), dropped at the end of the session."""
    url = asyncio.run(create_database(pg_server_url))
    try:
        asyncio.run(migrate(url, SCHEMA))
        yield url
    finally:
        asyncio.run(drop_database(pg_server_url, url))


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """The service's engine on ``pg_url``, on the running test's event loop: its
    connections run as the service's role, ``chatcore_app`` (decision 0014)."""
    engine = create_engine(pg_url, SCHEMA, pool_size=5)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def other_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """A second service process on ``pg_url``: its own pool (and, in the tests that
    give it one, its own cache of conversations)."""
    engine = create_engine(pg_url, SCHEMA, pool_size=3)
    try:
        yield engine
    finally:
        await engine.dispose()


class SentQueries:
    """Every statement one asyncpg connection sends, by kind (asyncpg's query logger):
    ``call`` for a scoped call, else the statement's first word; a scoped call's
    function creation (once per statement and connection) left out."""

    def __init__(self, driver: Any) -> None:
        self.queries: list[str] = []
        driver.add_query_logger(lambda record: self.queries.append(" ".join(record.query.split())))

    async def kinds(self) -> list[str]:
        await asyncio.sleep(0.05)  # asyncpg calls its query loggers soon, not at once
        return [
            "call" if q.startswith("SELECT * FROM pg_temp.chatcore_") else q.split()[0]
            for q in self.queries
            if not q.startswith("CREATE FUNCTION pg_temp.")
        ]


def login_role_engine(url: str, pool_size: int = 5) -> AsyncEngine:
    """An engine like the service's (schema, JSON codecs) whose connections stay the login
    role (a superuser here), with the planner's defaults: for setting up and inspecting
    what the service's role may not, and for showing what that role changes."""
    engine = create_engine(url, SCHEMA, pool_size=pool_size)

    @event.listens_for(engine.sync_engine, "connect")
    def _as_login_role(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.run_async(
            lambda driver: driver.execute("SET ROLE NONE; SET enable_bitmapscan = on")
        )

    return engine


@pytest.fixture
async def login_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    """:func:`login_role_engine` on ``pg_url``, on the running test's event loop."""
    engine = login_role_engine(pg_url)
    try:
        yield engine
    finally:
        await engine.dispose()
