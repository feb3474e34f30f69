"""Engine plumbing: URLs, readiness, recovery after lost connections, embedded server."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres import (
    PostgresUnitOfWorkFactory,
    create_engine,
    migrate,
    ping,
    start_embedded,
    stop_embedded,
    to_async_url,
)
from chatcore.pagination import PageRequest
from chatcore.ports import ConversationFilter


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/chat", "postgresql+asyncpg://u:p@db:5432/chat"),
        ("postgres://u:p@db/chat", "postgresql+asyncpg://u:p@db/chat"),
        ("postgresql+asyncpg://u@db/chat", "postgresql+asyncpg://u@db/chat"),
        ("postgresql+psycopg://u@db/chat", "postgresql+asyncpg://u@db/chat"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql+asyncpg://postgres:@/postgres?host=%2Ftmp%2Fpg",
        ),
        ("postgresql://u:p%40ss@db/chat", "postgresql+asyncpg://u:p%40ss@db/chat"),
        ("postgresql://u@db/chat?sslmode=require", "postgresql+asyncpg://u@db/chat?ssl=require"),
    ],
)
def test_to_async_url(url: str, expected: str) -> None:
    assert to_async_url(url) == expected


def test_to_async_url_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        to_async_url("mysql://u@db/chat")


@pytest.mark.postgres
async def test_ping(pg_engine: AsyncEngine) -> None:
    assert await ping(pg_engine)
    nobody = create_engine("postgresql://postgres@127.0.0.1:1/postgres", pool_size=1)
    try:
        assert not await ping(nobody, timeout=2.0)
    finally:
        await nobody.dispose()


@pytest.mark.postgres
async def test_pool_recovers_when_its_connections_were_killed(pg_url: str) -> None:
    # What a database restart does to a pool: every pooled connection dies. The next
    # units of work must succeed without the service restarting.
    engine = create_engine(pg_url, pool_size=3)
    admin = create_async_engine(to_async_url(pg_url), poolclass=NullPool)
    factory = PostgresUnitOfWorkFactory(engine)
    try:
        pids = set()
        for _ in range(3):
            async with factory(uuid.uuid4()) as uow:
                conn = await uow.connection()
                pids.add((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())
        async with admin.connect() as conn:
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        for _ in range(3):
            async with factory(uuid.uuid4()) as uow:
                assert (
                    await uow.conversations.list(ConversationFilter(), PageRequest(limit=1)) == []
                )
        assert await ping(engine)
    finally:
        await engine.dispose()
        await admin.dispose()


@pytest.mark.postgres
async def test_embedded_server_starts_and_is_reused() -> None:
    # Also as root: pgserver then runs PostgreSQL as its own system user. (Not in
    # tmp_path, whose root pytest keeps at 0700, out of that user's reach.)
    directory = Path(tempfile.mkdtemp(prefix="chatcore-embedded-"))
    try:
        url = start_embedded(directory / "data")
        assert start_embedded(directory / "data") == url
        assert (directory / "data" / "pgdata" / "PG_VERSION").exists()
        await migrate(url)
        engine = create_engine(url, pool_size=1)
        try:
            assert await ping(engine)
        finally:
            await engine.dispose()
        stop_embedded(directory / "data")
        engine = create_engine(url, pool_size=1)
        try:
            assert not await ping(engine, timeout=1.0)
        finally:
            await engine.dispose()
        # Started again on the same data: the migrated schema is still there.
        url = start_embedded(directory / "data")
        await migrate(url)
    finally:
        stop_embedded(directory / "data")
        shutil.rmtree(directory, ignore_errors=True)


async def test_json_columns_round_trip_any_json_the_database_keeps(pg_engine: AsyncEngine) -> None:
    from sqlalchemy import bindparam  # noqa: PLC0415
    from sqlalchemy.dialects.postgresql import JSONB  # noqa: PLC0415

    value = {"big": 123456789012345678901234567890, "text": "Investigative–Artistic 職業 😀"}
    async with pg_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT :v AS v,"
                    " CAST('{\"huge\": 1' || repeat('0', 400) || '.5}' AS jsonb) AS huge"
                )
                .bindparams(bindparam("v", type_=JSONB))
                .columns(v=JSONB, huge=JSONB),
                {"v": value},
            )
        ).one()
    assert row.v == value
    # Beyond a double's range (jsonb keeps any numeric): read, as infinity, not an error.
    assert row.huge == {"huge": float("inf")}


async def test_the_pool_size_is_what_was_asked(pg_url: str) -> None:
    engine = create_engine(pg_url, pool_size=7)
    try:
        pool = engine.sync_engine.pool
        assert pool.size() == 7  # type: ignore[attr-defined]
        assert pool._max_overflow == 3  # type: ignore[attr-defined]
    finally:
        await engine.dispose()
