"""Scoped calls (decision 0016): a unit of work's reads before any write, and its only
write at commit, each in one round trip of its own, under row-level security; kept
writes that never commit are never written; and the fallback when the database
refuses the temporary functions."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres import PostgresUnitOfWorkFactory, create_engine
from chatcore.domain.conversation import ContextType, Conversation
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, SenderType, Usage, UsageRecord
from tests.integration.conftest import SCHEMA, SentQueries

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)


@pytest.fixture
async def factory(pg_engine: AsyncEngine) -> AsyncIterator[PostgresUnitOfWorkFactory]:
    factory = PostgresUnitOfWorkFactory(pg_engine, max_open=3, keep=1)
    try:
        yield factory
    finally:
        await factory.aclose()


def _conversation(user: uuid.UUID) -> Conversation:
    return Conversation(
        id=new_id(T0),
        user_id=user,
        title="Scoped",
        context_type=ContextType.GENERAL,
        created_at=T0,
        updated_at=T0,
    )


def _message(conversation: Conversation, at: datetime, sender: SenderType) -> Message:
    return Message(
        id=new_id(at),
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        sender_type=sender,
        content=f"{sender.value} at {at.isoformat()}",
        created_at=at,
    )


def _usage(answer: Message) -> UsageRecord:
    return UsageRecord(
        id=new_id(answer.created_at),
        user_id=answer.user_id,
        conversation_id=answer.conversation_id,
        message_id=answer.id,
        model_used="offline",
        usage=Usage(prompt_tokens=10, completion_tokens=5, cost=0.0, is_free_model=True),
        processing_time_ms=3,
        created_at=answer.created_at,
    )


async def _store(factory: PostgresUnitOfWorkFactory, conversation: Conversation) -> None:
    async with factory(conversation.user_id) as uow:
        await uow.conversations.add(conversation)
        await uow.commit()


async def _watch(factory: PostgresUnitOfWorkFactory) -> SentQueries:
    """Warm a kept connection (its functions created), then log what it sends."""
    assert factory.held.idle == 1
    _, driver = factory.held._idle[0]
    return SentQueries(driver)


async def _turn(
    factory: PostgresUnitOfWorkFactory, conversation: Conversation, at: datetime
) -> None:
    """What the message route does: the conversation with its recent messages, the
    question; then the answer with its usage row."""
    async with factory(conversation.user_id) as uow:
        found = await uow.conversations.get_with_recent(conversation.id, 60)
        assert found is not None
        await uow.messages.append(_message(conversation, at, SenderType.USER))
        await uow.commit()
    answer = _message(conversation, at + timedelta(seconds=1), SenderType.ASSISTANT)
    async with factory(conversation.user_id) as uow:
        await uow.messages.store_answer(answer, _usage(answer), insert=True)
        await uow.commit()


async def test_a_message_turn_is_three_round_trips_without_begin_or_commit(
    factory: PostgresUnitOfWorkFactory,
) -> None:
    conversation = _conversation(uuid.uuid4())
    await _store(factory, conversation)
    await _turn(factory, conversation, T0 + timedelta(minutes=1))  # creates the functions
    sent = await _watch(factory)
    await _turn(factory, conversation, T0 + timedelta(minutes=2))
    # The read, the question, the answer: one scoped call each, nothing else.
    assert await sent.kinds() == ["call", "call", "call"], sent.queries
    _, driver = factory.held._idle[0]
    assert not driver.is_in_transaction()
    # Each call's scope ended with its transaction: the connection acts for nobody.
    assert await driver.fetchval("SELECT current_setting('app.current_user_id', true)") in (
        None,
        "",
    )
    async with factory(conversation.user_id) as uow:
        found = await uow.conversations.get_with_recent(conversation.id, 60)
    assert found is not None
    assert [m.sender_type for m in found[1]] == [SenderType.ASSISTANT, SenderType.USER] * 2


async def test_two_writes_and_a_locking_read_run_in_one_transaction(
    factory: PostgresUnitOfWorkFactory,
) -> None:
    conversation = _conversation(uuid.uuid4())
    await _store(factory, conversation)
    sent = await _watch(factory)
    answer = _message(conversation, T0 + timedelta(seconds=5), SenderType.ASSISTANT)
    async with factory(conversation.user_id) as uow:
        await uow.messages.add(answer)
        await uow.usage.add(_usage(answer))
        await uow.commit()
    # (The message is inserted with a CTE that counts the conversation's history.)
    assert await sent.kinds() == ["BEGIN;", "WITH", "INSERT", "COMMIT"], sent.queries
    sent.queries.clear()
    async with factory(conversation.user_id) as uow:
        assert await uow.conversations.lock(conversation.id) is not None
        await uow.commit()
    assert await sent.kinds() == ["BEGIN;", "SELECT", "COMMIT"], sent.queries


async def test_a_kept_write_is_never_written_without_commit_but_is_read_back_before(
    factory: PostgresUnitOfWorkFactory,
) -> None:
    conversation = _conversation(uuid.uuid4())
    await _store(factory, conversation)
    question = _message(conversation, T0 + timedelta(seconds=1), SenderType.USER)
    async with factory(conversation.user_id) as uow:
        await uow.messages.append(question)
        # Read after the write: the write is sent first, in the transaction.
        assert await uow.messages.get(conversation.id, question.id) == question
        # No commit: the transaction is rolled back.
    async with factory(conversation.user_id) as uow:
        await uow.messages.append(question)
        # Nothing read, no commit: never sent at all.
    async with factory(conversation.user_id) as uow:
        assert await uow.messages.get(conversation.id, question.id) is None
        found = await uow.conversations.get_with_recent(conversation.id, 60)
    assert found is not None
    assert found[1] == []


async def test_scoped_calls_act_for_their_user_only(
    factory: PostgresUnitOfWorkFactory,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = _conversation(alice)
    await _store(factory, conversation)
    await _turn(factory, conversation, T0 + timedelta(minutes=1))
    sent = await _watch(factory)
    async with factory(bob) as uow:
        assert await uow.conversations.get_with_recent(conversation.id, 60) is None
        assert await uow.messages.get(conversation.id, conversation.id) is None
    intruder = _message(conversation, T0 + timedelta(minutes=3), SenderType.ASSISTANT)

    async def intrude() -> None:
        async with factory(bob) as uow:
            await uow.messages.store_answer(intruder, _usage(intruder), insert=True)
            await uow.commit()

    with pytest.raises(PermissionError):
        await intrude()
    assert await sent.kinds() == ["call", "call", "call"], sent.queries
    async with factory(alice) as uow:
        assert await uow.messages.get(conversation.id, intruder.id) is None
        found = await uow.conversations.get_with_recent(conversation.id, 60)
    assert found is not None
    assert len(found[1]) == 2


async def test_a_function_dropped_from_the_session_is_created_again(
    factory: PostgresUnitOfWorkFactory,
) -> None:
    conversation = _conversation(uuid.uuid4())
    await _store(factory, conversation)
    await _turn(factory, conversation, T0 + timedelta(minutes=1))
    _, driver = factory.held._idle[0]
    await driver.execute("DISCARD TEMP")
    await _turn(factory, conversation, T0 + timedelta(minutes=2))
    async with factory(conversation.user_id) as uow:
        found = await uow.conversations.get_with_recent(conversation.id, 60)
    assert found is not None
    assert len(found[1]) == 4


async def test_a_dead_kept_connection_is_renewed_before_a_write_alone(
    factory: PostgresUnitOfWorkFactory, login_engine: AsyncEngine
) -> None:
    conversation = _conversation(uuid.uuid4())
    await _store(factory, conversation)
    _, driver = factory.held._idle[0]
    pid = driver.get_server_pid()
    async with login_engine.connect() as conn:
        await conn.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
    answer = _message(conversation, T0 + timedelta(seconds=9), SenderType.ASSISTANT)
    async with factory(conversation.user_id) as uow:
        await uow.messages.store_answer(answer, _usage(answer), insert=True)
        await uow.commit()
    async with factory(conversation.user_id) as uow:
        assert await uow.messages.get(conversation.id, answer.id) == answer


async def test_without_temporary_functions_units_of_work_use_transactions(
    pg_url: str, login_engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    database = pg_url.rsplit("/", 1)[1].split("?", maxsplit=1)[0]
    async with login_engine.connect() as conn:
        await conn.execute(text(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC'))
        await conn.commit()
    engine = create_engine(pg_url, SCHEMA, pool_size=2)
    factory = PostgresUnitOfWorkFactory(engine, max_open=2, keep=1)
    try:
        conversation = _conversation(uuid.uuid4())
        await _store(factory, conversation)
        with caplog.at_level(logging.WARNING, logger="chatcore.database"):
            await _turn(factory, conversation, T0 + timedelta(minutes=1))
        assert factory.statements.scoped_calls is False
        assert any("scoped calls are off" in r.getMessage() for r in caplog.records)
        sent = await _watch(factory)
        await _turn(factory, conversation, T0 + timedelta(minutes=2))
        kinds = await sent.kinds()
        assert "call" not in kinds, sent.queries
        assert kinds.count("COMMIT") == 2, sent.queries
        async with factory(conversation.user_id) as uow:
            found = await uow.conversations.get_with_recent(conversation.id, 60)
        assert found is not None
        assert len(found[1]) == 4
    finally:
        await factory.aclose()
        await engine.dispose()
        async with login_engine.connect() as conn:
            await conn.execute(text(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC'))
            await conn.commit()
