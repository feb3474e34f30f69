"""Units of work keep their connections between them (HeldConnections): reused without
a checkout, never carrying a user's scope or a transaction, given back on close, and
renewed when the database killed them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres import PostgresUnitOfWorkFactory, create_engine, to_async_url
from adapters.postgres.tables import APP_ROLE
from tests.integration.conftest import SCHEMA

pytestmark = pytest.mark.postgres

_PID = text("SELECT pg_backend_pid()")


@pytest.fixture
async def engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(pg_url, SCHEMA, pool_size=3)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def admin(pg_url: str) -> AsyncIterator[AsyncEngine]:
    admin = create_async_engine(to_async_url(pg_url), poolclass=NullPool)
    try:
        yield admin
    finally:
        await admin.dispose()


async def _pid(factory: PostgresUnitOfWorkFactory) -> int:
    async with factory(uuid.uuid4()) as uow:
        ((pid,),) = await uow.fetch(_PID, {})
        await uow.commit()
    return int(pid)


async def _our_backends(admin: AsyncEngine, pg_url: str) -> int:
    database = pg_url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    async with admin.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = :db AND application_name = 'chatcore'"
            ),
            {"db": database},
        )
        return int(found.scalar_one())


async def test_a_kept_connection_is_reused_without_scope_or_transaction(
    engine: AsyncEngine,
) -> None:
    factory = PostgresUnitOfWorkFactory(engine, max_open=4, keep=2)
    try:
        first = await _pid(factory)
        assert await _pid(factory) == first
        assert factory.held.idle == 1
        # Between units of work the kept connection is outside any transaction and
        # acts for nobody: the scope ended with the transaction.
        _, driver = factory.held._idle[0]
        assert not driver.is_in_transaction()
        assert await driver.fetchval("SELECT current_setting('app.current_user_id', true)") in (
            None,
            "",
        )
        # It still runs as the service's role (its session setting, decision 0014), so a
        # statement sent on it outside a unit of work sees no user's rows.
        assert await driver.fetchval("SELECT current_user") == APP_ROLE
        assert await driver.fetchval(f"SELECT count(*) FROM {SCHEMA}.conversations") == 0

        # A unit of work that fails mid-transaction leaves its connection rolled back.
        async def fails() -> None:
            async with factory(uuid.uuid4()) as uow:
                await uow.fetch(_PID, {})
                raise LookupError("the use case failed")

        with pytest.raises(LookupError):
            await fails()
        assert factory.held.idle == 1
        assert not factory.held._idle[0][1].is_in_transaction()
    finally:
        await factory.aclose()


async def test_no_more_than_keep_connections_are_kept_and_close_gives_them_back(
    engine: AsyncEngine, admin: AsyncEngine, pg_url: str
) -> None:
    factory = PostgresUnitOfWorkFactory(engine, max_open=4, keep=2)
    gate = asyncio.Event()

    async def hold() -> None:
        async with factory(uuid.uuid4()) as uow:
            await uow.fetch(_PID, {})
            await gate.wait()

    tasks = [asyncio.ensure_future(hold()) for _ in range(4)]
    await asyncio.sleep(0.3)
    gate.set()
    await asyncio.gather(*tasks)
    assert factory.held.idle == 2
    await factory.aclose()
    assert factory.held.idle == 0
    await engine.dispose()
    assert await _our_backends(admin, pg_url) == 0


async def test_a_cancelled_statement_does_not_leave_its_connection_kept(
    engine: AsyncEngine,
) -> None:
    factory = PostgresUnitOfWorkFactory(engine, max_open=2, keep=2)
    try:
        started = asyncio.Event()

        async def slow() -> None:
            async with factory(uuid.uuid4()) as uow:
                started.set()
                await uow.fetch(text("SELECT pg_sleep(5)"), {})

        task = asyncio.ensure_future(slow())
        await started.wait()
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _, driver in factory.held._idle:
            assert not driver.is_in_transaction()
        await asyncio.wait_for(_pid(factory), 10)  # the next unit of work just works
    finally:
        await factory.aclose()


async def test_kept_connections_killed_by_the_database_are_renewed(
    engine: AsyncEngine, admin: AsyncEngine
) -> None:
    factory = PostgresUnitOfWorkFactory(engine, max_open=4, keep=3)
    try:
        gate = asyncio.Event()
        pids: set[int] = set()

        async def hold() -> None:
            async with factory(uuid.uuid4()) as uow:
                ((pid,),) = await uow.fetch(_PID, {})
                pids.add(int(pid))
                await gate.wait()

        tasks = [asyncio.ensure_future(hold()) for _ in range(3)]
        await asyncio.sleep(0.3)
        gate.set()
        await asyncio.gather(*tasks)
        assert factory.held.idle == 3
        async with admin.connect() as conn:
            for pid in pids:
                await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        # What a database restart does: every kept connection is dead. The next units
        # of work succeed on new ones.
        fresh = {await _pid(factory) for _ in range(3)}
        assert not fresh & pids
    finally:
        await factory.aclose()


async def test_a_unit_of_work_refuses_an_engine_whose_connections_run_as_the_login_role(
    pg_url: str, admin: AsyncEngine
) -> None:
    # An engine made without create_engine logs in as the (superuser) login role: its
    # statements would bypass row-level security, so no unit of work runs on it.
    plain = create_async_engine(to_async_url(pg_url), poolclass=NullPool)
    factory = PostgresUnitOfWorkFactory(plain)
    try:
        with pytest.raises(RuntimeError, match="chatcore_app"):
            async with factory(uuid.uuid4()):
                pass
        assert factory.held.idle == 0
    finally:
        await factory.aclose()
        await plain.dispose()
    assert await _our_backends(admin, pg_url) == 0


async def test_the_service_engine_starts_every_connection_as_the_service_role(
    engine: AsyncEngine,
) -> None:
    # Outside any unit of work too: the role and the planner setting are the
    # connection's own, from its start-up packet (decision 0014).
    async with engine.connect() as conn:
        role, bitmapscan, user = (
            await conn.execute(
                text(
                    "SELECT current_user, current_setting('enable_bitmapscan'),"
                    " current_setting('app.current_user_id', true)"
                )
            )
        ).one()
    assert (role, bitmapscan, user or None) == (APP_ROLE, "off", None)
