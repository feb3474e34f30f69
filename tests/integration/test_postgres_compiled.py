"""Statements run on the driver connection (adapters.postgres.compiled), against
PostgreSQL: the same rows as SQLAlchemy's own execution, compiled once per engine,
and a lost connection reported as such."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres import PostgresUnitOfWorkFactory, to_async_url
from adapters.postgres.compiled import compile_statement
from adapters.postgres.repositories import paid_cost_statement
from adapters.postgres.tables import conversations
from chatcore.domain.conversation import ContextType, Conversation
from chatcore.domain.message import Message, SenderType, Usage, UsageRecord
from chatcore.usage import UsageWindow

pytestmark = pytest.mark.postgres

_NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def _conversation(user: uuid.UUID) -> Conversation:
    return Conversation(
        id=uuid.uuid4(),
        user_id=user,
        title="Compiled",
        context_type=ContextType.GENERAL,
        created_at=_NOW,
        updated_at=_NOW,
    )


async def test_each_statement_is_compiled_once_for_all_units_of_work(
    pg_engine: AsyncEngine,
) -> None:
    factory = PostgresUnitOfWorkFactory(pg_engine)
    user = uuid.uuid4()
    for _ in range(3):
        async with factory(user) as uow:
            assert await uow.conversations.get(uuid.uuid4()) is None
    assert len(factory.statements) == 1
    async with factory(user) as uow:
        await uow.conversations.add(_conversation(user))
        await uow.commit()
    assert len(factory.statements) == 2


async def test_rows_are_those_of_sqlalchemys_own_execution(pg_engine: AsyncEngine) -> None:
    factory = PostgresUnitOfWorkFactory(pg_engine)
    user = uuid.uuid4()
    conversation = _conversation(user)
    answer = Message(
        id=uuid.uuid4(),
        conversation_id=conversation.id,
        user_id=user,
        sender_type=SenderType.ASSISTANT,
        content="An answer.",
        created_at=_NOW,
    )
    async with factory(user) as uow:
        await uow.conversations.add(conversation)
        await uow.messages.add(answer)
        await uow.usage.add(
            UsageRecord(
                id=uuid.uuid4(),
                user_id=user,
                conversation_id=conversation.id,
                message_id=answer.id,
                model_used="paid/model",
                usage=Usage(
                    prompt_tokens=10, completion_tokens=5, cost=0.00012345, is_free_model=False
                ),
                processing_time_ms=12,
                created_at=_NOW,
            )
        )
        await uow.commit()
        params = {"since": datetime(2026, 11, 2, tzinfo=UTC)}
        # A numeric column that SQLAlchemy reads as a float (asdecimal=False): the
        # conversion depends on the type the server gives the column.
        direct = await uow.fetch(paid_cost_statement(), params)
        through_sqlalchemy = (
            await (await uow.connection()).execute(paid_cost_statement(), params)
        ).all()
        assert [tuple(r) for r in direct] == [tuple(r) for r in through_sqlalchemy]
        assert isinstance(direct[0][0], float)
        assert direct[0][0] == pytest.approx(0.00012345)
        # JSON and UUIDs come back as SQLAlchemy reads them too.
        found = await uow.conversations.get(conversation.id)
        assert found is not None
        assert found.id == conversation.id
        assert found.context_data == {}
        assert isinstance(found.metadata, dict)
        totals = await uow.usage.totals(UsageWindow())
        assert totals.cost == pytest.approx(0.00012345)


async def test_a_missing_parameter_is_refused_before_anything_is_sent(
    pg_engine: AsyncEngine,
) -> None:
    statement = select(conversations.c.id).where(conversations.c.id == bindparam("cid"))
    compiled = compile_statement(statement, pg_engine.dialect, {None: "chat"})
    assert compiled.sql.count("$1") == 1
    assert "chat.conversations" in compiled.sql
    with pytest.raises(KeyError, match="cid"):
        compiled.arguments({})
    assert compiled.arguments({"cid": "x"}) == ["x"]


def test_parameters_rendered_at_execution_are_refused(pg_engine: AsyncEngine) -> None:
    statement = select(conversations.c.id).where(
        conversations.c.id.in_(bindparam("ids", expanding=True))
    )
    with pytest.raises(ValueError, match="ids"):
        compile_statement(statement, pg_engine.dialect, {None: "chat"})


async def test_a_connection_lost_in_a_unit_of_work_is_a_connection_error(
    pg_url: str, pg_engine: AsyncEngine
) -> None:
    factory = PostgresUnitOfWorkFactory(pg_engine)
    admin = create_async_engine(to_async_url(pg_url), poolclass=NullPool)
    user = uuid.uuid4()
    try:
        async with factory(user) as uow:
            ((pid,),) = await uow.fetch(text("SELECT pg_backend_pid()"), {})
            async with admin.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
            with pytest.raises(ConnectionError, match="lost"):
                await uow.fetch(text("SELECT 1"), {})
        # The dead connection was not pooled: the next unit of work just works.
        for _ in range(3):
            async with factory(user) as uow:
                assert await uow.fetch(text("SELECT 1"), {}) == [(1,)]
    finally:
        await admin.dispose()
