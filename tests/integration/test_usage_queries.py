"""Service-wide usage (admin figures, the paid-model budget), in memory and on PostgreSQL.

The same assertions run against ``InMemorySystemUsageReader`` and
``PostgresSystemUsageReader``. Each PostgreSQL test gets a database of its own, so the
service-wide figures are exactly this test's rows. The PostgreSQL-only tests prove
the analytics role's limits with raw SQL: every user's usage rows, nothing else.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.memory import InMemoryStore, InMemorySystemUsageReader, InMemoryUnitOfWorkFactory
from adapters.postgres import (
    ANALYTICS_ROLE,
    APP_ROLE,
    PostgresSystemUsageReader,
    PostgresUnitOfWorkFactory,
    create_engine,
    migrate,
)
from chatcore.domain import Conversation, Message, SenderType, Usage, UsageRecord, new_id
from chatcore.fallback import SpendLedger
from chatcore.ports import UnitOfWorkFactory
from chatcore.usage import GroupBy, SystemUsageReader, UsageWindow, summarize

SCHEMA = "chat"
FREE = "qwen/qwen3-235b-a22b-07-25:free"
PAID = "openai/gpt-4o-mini"
T0 = datetime(2025, 6, 2, 9, 30, tzinfo=UTC)  # a Monday


@dataclass(slots=True)
class System:
    uow: UnitOfWorkFactory
    reader: SystemUsageReader
    engine: AsyncEngine | None = None


@pytest.fixture
async def fresh_engine(create_db: Callable[[], Awaitable[str]]) -> AsyncIterator[AsyncEngine]:
    """An engine on a database of this test's own, migrated."""
    url = await create_db()
    await migrate(url, SCHEMA)
    engine = create_engine(url, SCHEMA, pool_size=3)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def system(request: pytest.FixtureRequest) -> System:
    if request.param == "memory":
        store = InMemoryStore()
        return System(InMemoryUnitOfWorkFactory(store), InMemorySystemUsageReader(store))
    engine: AsyncEngine = request.getfixturevalue("fresh_engine")
    return System(PostgresUnitOfWorkFactory(engine), PostgresSystemUsageReader(engine), engine)


async def answer(
    factory: UnitOfWorkFactory,
    user: UUID,
    at: datetime,
    model: str = FREE,
    cost: float = 0.0,
    *,
    prompt: int = 10,
    fell_back: bool = False,
    commit: bool = True,
) -> UsageRecord:
    """One conversation with one answer and its usage record, as the user."""
    conversation = Conversation(
        id=new_id(at), user_id=user, title="usage", created_at=at, updated_at=at
    )
    message = Message(
        id=new_id(at),
        conversation_id=conversation.id,
        user_id=user,
        sender_type=SenderType.ASSISTANT,
        content="answer",
        created_at=at,
    )
    record = UsageRecord(
        id=new_id(at),
        user_id=user,
        conversation_id=conversation.id,
        message_id=message.id,
        model_used=model,
        usage=Usage(
            prompt_tokens=prompt,
            completion_tokens=5,
            cost=cost,
            is_free_model=model.endswith(":free"),
        ),
        processing_time_ms=100,
        created_at=at,
        time_to_first_token_ms=30,
        attempts=(f"{model}: answered",),
        fell_back=fell_back,
    )
    async with factory(user) as uow:
        await uow.conversations.add(conversation)
        await uow.messages.add(message)
        await uow.usage.add(record)
        if commit:
            await uow.commit()
    return record


async def test_the_reader_sees_every_users_usage(system: System) -> None:
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    records = [
        await answer(system.uow, alice, T0, prompt=1),
        await answer(
            system.uow, alice, T0 + timedelta(hours=1), PAID, 0.125, prompt=2, fell_back=True
        ),
        await answer(system.uow, bob, T0 + timedelta(days=1), prompt=4),
        await answer(system.uow, bob, T0 + timedelta(days=8), PAID, 0.25, prompt=8, fell_back=True),
        await answer(system.uow, carol, T0 + timedelta(days=40), prompt=16),
    ]
    window = UsageWindow(start=T0, end=T0 + timedelta(days=40))  # carol's is at the end
    totals = await system.reader.totals(window)
    assert totals == summarize(records[:4])
    assert (totals.requests, totals.prompt_tokens, totals.cost) == (4, 15, 0.375)
    assert (totals.free_requests, totals.fallback_requests) == (2, 2)
    assert [(m.model, m.requests) for m in totals.models] == [(PAID, 2), (FREE, 2)]  # by name
    assert (await system.reader.totals(UsageWindow())).prompt_tokens == 31

    weeks = await system.reader.series(UsageWindow(), GroupBy.WEEK)
    assert [(b.period_start, b.totals.requests, b.totals.prompt_tokens) for b in weeks] == [
        (datetime(2025, 6, 2, tzinfo=UTC), 3, 7),
        (datetime(2025, 6, 9, tzinfo=UTC), 1, 8),
        (datetime(2025, 7, 7, tzinfo=UTC), 1, 16),
    ]
    months = await system.reader.series(window, GroupBy.MONTH)
    assert [(b.period_start, b.totals) for b in months] == [
        (datetime(2025, 6, 1, tzinfo=UTC), summarize(records[:4]))
    ]
    assert await system.reader.series(UsageWindow(end=T0), GroupBy.DAY) == []

    # Each user, through the unit of work, still sees only their own.
    async with system.uow(alice) as uow:
        mine = await uow.usage.totals(UsageWindow())
    assert mine == summarize(records[:2])


async def test_paid_cost_since_sums_paid_answers_from_that_instant(system: System) -> None:
    midnight = datetime(2025, 6, 3, tzinfo=UTC)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    assert await system.reader.paid_cost_since(midnight) == 0.0
    await answer(system.uow, alice, midnight - timedelta(microseconds=1), PAID, 5.0)  # yesterday
    await answer(system.uow, alice, midnight, PAID, 0.1)  # counts: the bound is inclusive
    await answer(system.uow, bob, midnight + timedelta(hours=3), PAID, 0.2)
    await answer(system.uow, bob, midnight + timedelta(hours=4), FREE, 0.0)
    # A "free" model with a cost (a provider's surprise) is not paid spend.
    await answer(system.uow, bob, midnight + timedelta(hours=5), "x/y:free", 0.7)
    # Not committed: not spent.
    await answer(system.uow, bob, midnight + timedelta(hours=6), PAID, 9.0, commit=False)

    assert await system.reader.paid_cost_since(midnight) == 0.3  # exact, not 0.30000000000000004
    assert await system.reader.paid_cost_since(midnight + timedelta(hours=1)) == 0.2
    assert await system.reader.paid_cost_since(midnight - timedelta(days=1)) == 5.3
    assert await system.reader.paid_cost_since(midnight + timedelta(days=1)) == 0.0
    # The reader is the fallback policy's spend ledger.
    ledger: SpendLedger = system.reader
    assert await ledger.paid_cost_since(midnight) == 0.3


async def test_users_counts_distinct_users_in_the_window(system: System) -> None:
    assert await system.reader.users(UsageWindow()) == 0
    alice, bob, carol = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for user, hours in ((alice, 0), (alice, 1), (bob, 2), (carol, 30)):
        await answer(system.uow, user, T0 + timedelta(hours=hours))
    assert await system.reader.users(UsageWindow()) == 3
    assert await system.reader.users(UsageWindow(start=T0, end=T0 + timedelta(days=1))) == 2
    assert await system.reader.users(UsageWindow(start=T0 + timedelta(hours=1))) == 3
    assert await system.reader.users(UsageWindow(start=T0 + timedelta(hours=2))) == 2
    assert await system.reader.users(UsageWindow(end=T0)) == 0
    assert await system.reader.users(UsageWindow(end=T0 + timedelta(microseconds=1))) == 1


# --- the analytics role, proved with raw SQL (PostgreSQL only) -----------------------


async def as_role(conn: AsyncConnection, role: str, user: UUID | None = None) -> None:
    await conn.execute(text(f"SET LOCAL ROLE {role}"))
    if user is not None:
        await conn.execute(
            text("SELECT set_config('app.current_user_id', :u, true)"), {"u": str(user)}
        )


def sqlstate(exc: DBAPIError) -> str | None:
    return getattr(exc.orig, "sqlstate", None)


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["conversations", "messages"])
async def test_analytics_role_cannot_read_conversations_or_messages(
    fresh_engine: AsyncEngine, table: str
) -> None:
    factory = PostgresUnitOfWorkFactory(fresh_engine)
    await answer(factory, uuid.uuid4(), T0)
    async with fresh_engine.connect() as conn:
        await conn.begin()
        await as_role(conn, ANALYTICS_ROLE)
        with pytest.raises(DBAPIError) as refused:
            await conn.execute(text(f"SELECT * FROM {SCHEMA}.{table}"))
    assert sqlstate(refused.value) == "42501"  # insufficient_privilege: permission denied
    assert "permission denied" in str(refused.value.orig)


@pytest.mark.postgres
async def test_analytics_role_reads_every_users_usage_and_writes_nothing(
    fresh_engine: AsyncEngine,
) -> None:
    factory = PostgresUnitOfWorkFactory(fresh_engine)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    mine = await answer(factory, alice, T0)
    theirs = await answer(factory, bob, T0, PAID, 0.5)

    async with fresh_engine.connect() as conn:
        await conn.begin()
        # No user set at all (and then one set): every row either way.
        await as_role(conn, ANALYTICS_ROLE)
        rows = (await conn.execute(text(f"SELECT id, user_id FROM {SCHEMA}.usage_tracking"))).all()
        assert {tuple(row) for row in rows} == {(mine.id, alice), (theirs.id, bob)}
        await conn.execute(
            text("SELECT set_config('app.current_user_id', :u, true)"), {"u": str(alice)}
        )
        count = await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.usage_tracking"))
        assert count.scalar() == 2
        for statement in (
            f"UPDATE {SCHEMA}.usage_tracking SET cost_credits = 0",
            f"DELETE FROM {SCHEMA}.usage_tracking",
            f"INSERT INTO {SCHEMA}.usage_tracking (id, user_id, model_used)"
            " VALUES (gen_random_uuid(), gen_random_uuid(), 'x')",
        ):
            with pytest.raises(DBAPIError) as refused:
                async with conn.begin_nested():
                    await conn.execute(text(statement))
            assert sqlstate(refused.value) == "42501", statement


@pytest.mark.postgres
async def test_service_role_still_sees_only_its_users_usage(fresh_engine: AsyncEngine) -> None:
    factory = PostgresUnitOfWorkFactory(fresh_engine)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    mine = await answer(factory, alice, T0)
    await answer(factory, bob, T0, PAID, 0.5)
    async with fresh_engine.connect() as conn:
        await conn.begin()
        await as_role(conn, APP_ROLE, alice)
        rows = (await conn.execute(text(f"SELECT id FROM {SCHEMA}.usage_tracking"))).all()
        assert [row[0] for row in rows] == [mine.id]
    async with fresh_engine.connect() as conn:
        await conn.begin()
        await as_role(conn, APP_ROLE)  # no user: nothing
        count = await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.usage_tracking"))
        assert count.scalar() == 0


@pytest.mark.postgres
async def test_the_reader_runs_as_the_analytics_role_for_one_transaction(
    fresh_engine: AsyncEngine,
) -> None:
    reader = PostgresSystemUsageReader(fresh_engine)
    await answer(PostgresUnitOfWorkFactory(fresh_engine), uuid.uuid4(), T0, PAID, 0.5)
    assert await reader.paid_cost_since(T0) == 0.5
    # The role ended with the reader's transaction: the pooled connection is the
    # service's role again, with bitmap scans off (decision 0014).
    async with fresh_engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT current_user, current_setting('enable_bitmapscan')"))
        ).one()
    assert tuple(row) == (APP_ROLE, "off")
