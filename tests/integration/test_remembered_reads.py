"""Reads answered from memory (decision 0017): a conversation and its newest messages
that this process kept are handed out without a round trip, and checked later. The
unit's first write of the conversation checks them in the same statement; otherwise
the commit does, or the error that ends the unit. When another process changed the
conversation meanwhile, ``StaleReadError`` says so and nothing was written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres import HistoryCache, PostgresUnitOfWorkFactory
from chatcore.domain import (
    Conversation,
    ConversationStatus,
    Message,
    SenderType,
    Usage,
    UsageRecord,
    new_id,
)
from chatcore.errors import NotFoundError
from chatcore.ports import StaleReadError
from tests.integration.conftest import SCHEMA, SentQueries

pytestmark = pytest.mark.postgres

WINDOW = 6
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
async def here(pg_engine: AsyncEngine) -> AsyncIterator[PostgresUnitOfWorkFactory]:
    factory = PostgresUnitOfWorkFactory(pg_engine, max_open=3, keep=1, history=HistoryCache())
    try:
        yield factory
    finally:
        await factory.aclose()


@pytest.fixture
def there(other_engine: AsyncEngine) -> PostgresUnitOfWorkFactory:
    return PostgresUnitOfWorkFactory(other_engine, history=HistoryCache())


class Chat:
    """One conversation, and messages with strictly later times."""

    def __init__(self) -> None:
        self.conversation = Conversation(
            id=new_id(T0), user_id=uuid.uuid4(), title="t", created_at=T0, updated_at=T0
        )
        self.at = T0

    @property
    def user(self) -> uuid.UUID:
        return self.conversation.user_id

    def message(self, content: str = "") -> Message:
        self.at += timedelta(seconds=1)
        return Message(
            id=new_id(self.at),
            conversation_id=self.conversation.id,
            user_id=self.user,
            sender_type=SenderType.USER,
            content=content or f"question at {self.at:%H:%M:%S}",
            created_at=self.at,
        )


@pytest.fixture
async def chat(here: PostgresUnitOfWorkFactory) -> Chat:
    chat = Chat()
    async with here(chat.user) as uow:
        await uow.conversations.add(chat.conversation)
        await uow.commit()
    return chat


async def ask(factory: PostgresUnitOfWorkFactory, chat: Chat, message: Message) -> Conversation:
    """What the message route does with its first unit of work: the conversation with its
    newest messages, then the question."""
    async with factory(chat.user) as uow:
        found = await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
        assert found is not None
        await uow.messages.append(message)
        await uow.commit()
    return found[0]


async def stored(engine: AsyncEngine, chat: Chat) -> list[str]:
    """The conversation's messages as the database holds them, oldest first."""
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL ROLE NONE"))
        rows = await conn.execute(
            text(
                f"SELECT content FROM {SCHEMA}.messages WHERE conversation_id = :c "
                "ORDER BY created_at, id"
            ),
            {"c": chat.conversation.id},
        )
        return [row[0] for row in rows]


def watch(factory: PostgresUnitOfWorkFactory) -> SentQueries:
    """What the factory's one kept connection sends from now on."""
    assert factory.held.idle == 1
    return SentQueries(factory.held._idle[0][1])


async def test_a_remembered_question_is_one_round_trip_that_checks_and_writes(
    here: PostgresUnitOfWorkFactory, chat: Chat, pg_engine: AsyncEngine
) -> None:
    await ask(here, chat, chat.message("first"))  # read from the database, then kept
    await ask(here, chat, chat.message("second"))  # the functions created
    sent = watch(here)
    hits = here.history.hits if here.history else 0
    conversation = await ask(here, chat, chat.message("third"))
    assert await sent.kinds() == ["call"], sent.queries  # the checked append, nothing else
    assert here.history is not None
    assert here.history.hits == hits + 1
    assert conversation.updated_at == chat.at - timedelta(seconds=1)  # as "second" left it
    assert await stored(pg_engine, chat) == ["first", "second", "third"]


async def test_another_processs_message_makes_the_remembered_question_write_nothing(
    here: PostgresUnitOfWorkFactory,
    there: PostgresUnitOfWorkFactory,
    chat: Chat,
    pg_engine: AsyncEngine,
) -> None:
    await ask(here, chat, chat.message("mine"))
    await ask(there, chat, chat.message("from the other process"))
    with pytest.raises(StaleReadError):
        await ask(here, chat, chat.message("never written"))
    assert await stored(pg_engine, chat) == ["mine", "from the other process"]
    assert here.history is not None
    assert here.history.stale == 1
    # Run again, as the service does: read from the database, and written.
    async with here(chat.user) as uow:
        found = await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
        assert found is not None
        assert [m.content for m in found[1]] == ["from the other process", "mine"]
        await uow.messages.append(chat.message("again"))
        await uow.commit()
    assert await stored(pg_engine, chat) == ["mine", "from the other process", "again"]


def answered(chat: Chat, question: Message) -> tuple[Message, UsageRecord]:
    """An answer to ``question`` and its usage record, as the offline advisor's turn has."""
    answer = chat.message(f"answer to {question.content}")
    answer.sender_type, answer.parent_message_id = SenderType.ASSISTANT, question.id
    usage = UsageRecord(
        id=new_id(answer.created_at),
        user_id=chat.user,
        conversation_id=chat.conversation.id,
        message_id=answer.id,
        model_used="offline",
        usage=Usage(prompt_tokens=30, completion_tokens=20),
        processing_time_ms=1,
        created_at=answer.created_at,
    )
    return answer, usage


async def ask_and_answer(factory: PostgresUnitOfWorkFactory, chat: Chat, content: str) -> None:
    """What the message route does on the offline advisor: one unit of work for the
    conversation, the question, the answer and its usage."""
    async with factory(chat.user) as uow:
        assert await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
        question = chat.message(content)
        answer, usage = answered(chat, question)
        await uow.messages.append(question, answer, usage=usage)
        await uow.commit()


async def usage_rows(engine: AsyncEngine, chat: Chat) -> int:
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL ROLE NONE"))
        rows = await conn.execute(
            text(f"SELECT count(*) FROM {SCHEMA}.usage_tracking WHERE conversation_id = :c"),
            {"c": chat.conversation.id},
        )
        return int(rows.scalar_one())


async def test_a_remembered_turn_with_its_answer_is_one_round_trip(
    here: PostgresUnitOfWorkFactory,
    there: PostgresUnitOfWorkFactory,
    chat: Chat,
    pg_engine: AsyncEngine,
) -> None:
    await ask_and_answer(here, chat, "first")  # read from the database, then kept
    await ask_and_answer(here, chat, "second")  # the functions created
    sent = watch(here)
    await ask_and_answer(here, chat, "third")
    assert await sent.kinds() == ["call"], sent.queries  # the checked turn, nothing else
    contents = await stored(pg_engine, chat)
    assert contents[-2:] == ["third", "answer to third"]
    assert await usage_rows(pg_engine, chat) == 3

    # Another process wrote meanwhile: neither message nor the usage row is written.
    await ask(there, chat, chat.message("from the other process"))
    with pytest.raises(StaleReadError):
        await ask_and_answer(here, chat, "never written")
    assert (await stored(pg_engine, chat))[-1] == "from the other process"
    assert await usage_rows(pg_engine, chat) == 3


@pytest.mark.parametrize("change", ["rename", "archive", "delete", "context"])
async def test_another_processs_change_to_the_conversation_is_seen(
    here: PostgresUnitOfWorkFactory, there: PostgresUnitOfWorkFactory, chat: Chat, change: str
) -> None:
    await ask(here, chat, chat.message())
    async with there(chat.user) as uow:
        conversation = await uow.conversations.get(chat.conversation.id)
        assert conversation is not None
        later = chat.at + timedelta(minutes=1)
        if change == "rename":
            conversation.rename("renamed elsewhere", later)
        elif change == "archive":
            conversation.change_status(ConversationStatus.ARCHIVED, later)
        elif change == "delete":
            conversation.change_status(ConversationStatus.DELETED, later)
        else:
            conversation.replace_context_data({"persona": "changed"}, later)
        await uow.conversations.save(conversation)
        await uow.commit()
    with pytest.raises(StaleReadError):
        await ask(here, chat, chat.message())
    async with here(chat.user) as uow:
        found = await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
        await uow.commit()
    assert found is not None
    fresh = found[0]
    assert (fresh.title, fresh.status, fresh.context_data) == (
        conversation.title,
        conversation.status,
        conversation.context_data,
    )


async def test_this_processs_own_changes_keep_the_conversation_remembered(
    here: PostgresUnitOfWorkFactory, chat: Chat
) -> None:
    await ask(here, chat, chat.message())
    async with here(chat.user) as uow:
        found = await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
        assert found is not None
        found[0].rename("renamed here", chat.at + timedelta(minutes=1))
        await uow.conversations.save(found[0])
        await uow.commit()
    assert here.history is not None
    stale = here.history.stale
    conversation = await ask(here, chat, chat.message())
    assert conversation.title == "renamed here"
    assert here.history.stale == stale


async def test_a_read_only_unit_is_checked_at_commit(
    here: PostgresUnitOfWorkFactory, there: PostgresUnitOfWorkFactory, chat: Chat
) -> None:
    await ask(here, chat, chat.message())

    async def read_alone() -> None:
        async with here(chat.user) as uow:
            assert await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
            await uow.commit()

    await read_alone()  # the check's function created
    sent = watch(here)
    await read_alone()
    assert await sent.kinds() == ["call"]  # the check, where the read would have been
    await ask(there, chat, chat.message())
    with pytest.raises(StaleReadError):
        await read_alone()


async def test_a_write_that_does_not_check_is_preceded_by_the_check(
    here: PostgresUnitOfWorkFactory,
    there: PostgresUnitOfWorkFactory,
    chat: Chat,
    pg_engine: AsyncEngine,
) -> None:
    await ask(here, chat, chat.message("kept"))
    await ask(there, chat, chat.message("elsewhere"))

    async def add_after_reading() -> None:
        async with here(chat.user) as uow:
            assert await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
            await uow.messages.add(chat.message("never written"))
            await uow.commit()

    with pytest.raises(StaleReadError):
        await add_after_reading()
    assert await stored(pg_engine, chat) == ["kept", "elsewhere"]


async def test_an_error_decided_on_an_out_of_date_read_becomes_stale_read(
    here: PostgresUnitOfWorkFactory, there: PostgresUnitOfWorkFactory, chat: Chat
) -> None:
    async def refuse(reason: Exception) -> Any:
        async with here(chat.user) as uow:
            assert await uow.conversations.get_with_recent(chat.conversation.id, WINDOW)
            raise reason

    await ask(here, chat, chat.message())
    # Nothing changed: the unit's own error stands.
    with pytest.raises(NotFoundError):
        await refuse(NotFoundError("as the kept copy says"))
    await ask(there, chat, chat.message())
    with pytest.raises(StaleReadError) as raised:
        await refuse(NotFoundError("as the kept copy says"))
    assert isinstance(raised.value.__cause__, NotFoundError)
    assert here.held.idle == 1  # the connection went back all the same


async def test_another_user_is_never_answered_from_the_owners_copy(
    here: PostgresUnitOfWorkFactory, chat: Chat
) -> None:
    await ask(here, chat, chat.message())
    async with here(uuid.uuid4()) as uow:
        assert await uow.conversations.get_with_recent(chat.conversation.id, WINDOW) is None
