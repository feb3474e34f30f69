"""Conversations' newest messages kept in memory (adapters.postgres.history, decision
0015): what a unit of work reads through the cache is always what the database holds,
whoever wrote it, and the database sends the messages only when they changed."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres import HistoryCache, PostgresUnitOfWorkFactory
from chatcore.domain import (
    Conversation,
    Message,
    MessageStatus,
    SenderType,
    Usage,
    UsageRecord,
    new_id,
)
from chatcore.ports import StaleReadError
from tests.integration.conftest import SCHEMA

pytestmark = pytest.mark.postgres

WINDOW = 6
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def conversation_of(user: UUID) -> Conversation:
    return Conversation(id=new_id(T0), user_id=user, title="t", created_at=T0, updated_at=T0)


class Writer:
    """Messages of one conversation, with strictly later times, written through a factory."""

    def __init__(self, conversation: Conversation) -> None:
        self.conversation = conversation
        self.at = T0

    def message(self, sender: SenderType = SenderType.USER, **fields: Any) -> Message:
        self.at += timedelta(seconds=1)
        return Message(
            id=new_id(self.at),
            conversation_id=self.conversation.id,
            user_id=self.conversation.user_id,
            sender_type=sender,
            content=fields.pop("content", f"message at {self.at:%H:%M:%S}"),
            created_at=self.at,
            **fields,
        )

    def usage(self, message: Message) -> UsageRecord:
        return UsageRecord(
            id=new_id(self.at),
            user_id=message.user_id,
            conversation_id=message.conversation_id,
            message_id=message.id,
            model_used="offline",
            usage=Usage(prompt_tokens=3, completion_tokens=4),
            processing_time_ms=1,
            created_at=self.at,
        )


async def recent(factory: PostgresUnitOfWorkFactory, user: UUID, cid: UUID) -> list[Message] | None:
    """The newest messages as a committed unit of work reads them. A read answered from
    memory that the commit finds out of date is read again, as the service does."""
    try:
        return await _recent_once(factory, user, cid)
    except StaleReadError:
        return await _recent_once(factory, user, cid)


async def _recent_once(
    factory: PostgresUnitOfWorkFactory, user: UUID, cid: UUID
) -> list[Message] | None:
    async with factory(user) as uow:
        found = await uow.conversations.get_with_recent(cid, WINDOW)
        await uow.commit()
    return None if found is None else found[1]


async def append(factory: PostgresUnitOfWorkFactory, *new: Message) -> None:
    async with factory(new[0].user_id) as uow:
        await uow.messages.append(*new)
        await uow.commit()


async def answer(
    factory: PostgresUnitOfWorkFactory, writer: Writer, message: Message, *, insert: bool
) -> None:
    async with factory(message.user_id) as uow:
        await uow.messages.store_answer(message, writer.usage(message), insert=insert)
        await uow.commit()


async def version_of(engine: AsyncEngine, cid: UUID) -> int:
    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL ROLE NONE"))
        found = await conn.execute(
            text(f"SELECT history_version FROM {SCHEMA}.conversations WHERE id = :c"), {"c": cid}
        )
        return int(found.scalar_one())


def newest(got: list[Message] | None) -> tuple[str, MessageStatus]:
    assert got
    return got[0].content, got[0].status


def same(got: list[Message] | None, want: list[Message] | None) -> None:
    assert got is not None
    assert want is not None
    assert [(m.id, m.content, m.status, m.metadata) for m in got] == [
        (m.id, m.content, m.status, m.metadata) for m in want
    ]


@pytest.fixture
async def conversation(pg_engine: AsyncEngine) -> Conversation:
    conversation = conversation_of(uuid.uuid4())
    async with PostgresUnitOfWorkFactory(pg_engine)(conversation.user_id) as uow:
        await uow.conversations.add(conversation)
        await uow.commit()
    return conversation


async def test_an_unchanged_conversation_is_answered_from_memory(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    truth = PostgresUnitOfWorkFactory(pg_engine)
    writer, user = Writer(conversation), conversation.user_id
    assert await recent(cached, user, conversation.id) == []  # read, as a message does
    assert cache.hits == 0
    question = writer.message()
    await append(cached, question)
    reply = writer.message(SenderType.ASSISTANT, parent_message_id=question.id)
    await answer(cached, writer, reply, insert=True)
    # Each write moved the conversation's counter, and the kept copy with it.
    assert await version_of(pg_engine, conversation.id) == 2
    hits = cache.hits
    first = await recent(cached, user, conversation.id)
    assert cache.hits == hits + 1  # known since the writes: no messages were read
    same(first, await recent(truth, user, conversation.id))
    assert [m.id for m in first or []] == [reply.id, question.id]


async def test_another_processs_writes_are_read_at_the_next_message(
    pg_engine: AsyncEngine, other_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    here = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    there = PostgresUnitOfWorkFactory(other_engine, history=HistoryCache())
    truth = PostgresUnitOfWorkFactory(pg_engine)
    writer, user = Writer(conversation), conversation.user_id
    await append(here, writer.message())
    await recent(here, user, conversation.id)  # kept here
    # The other process inserts a question and a streaming answer, then completes it.
    question = writer.message()
    pending = writer.message(
        SenderType.ASSISTANT, content="", status=MessageStatus.STREAMING, parent_message_id=None
    )
    await append(there, question, pending)
    got = await recent(here, user, conversation.id)
    assert cache.stale == 1  # answered from memory, found out of date, read again
    same(got, await recent(truth, user, conversation.id))
    assert got is not None
    assert got[0].status is MessageStatus.STREAMING
    pending.content, pending.status = "the whole answer", MessageStatus.COMPLETE
    await answer(there, writer, pending, insert=False)
    got = await recent(here, user, conversation.id)
    same(got, await recent(truth, user, conversation.id))
    assert newest(got) == ("the whole answer", MessageStatus.COMPLETE)


async def test_a_rolled_back_write_leaves_the_kept_copy_as_it_was(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    truth = PostgresUnitOfWorkFactory(pg_engine)
    writer, user = Writer(conversation), conversation.user_id
    await recent(cached, user, conversation.id)  # a copy to move
    kept = writer.message()
    await append(cached, kept)

    async def fails() -> None:
        async with cached(user) as uow:
            await uow.messages.append(writer.message(content="never committed"))
            raise LookupError("the use case failed")

    with pytest.raises(LookupError):
        await fails()
    hits = cache.hits
    got = await recent(cached, user, conversation.id)
    assert cache.hits == hits + 1  # the copy as the committed append left it
    same(got, await recent(truth, user, conversation.id))
    assert [m.id for m in got or []] == [kept.id]


async def test_a_change_to_a_written_message_after_the_write_is_not_kept(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    # The service goes on changing its own Message objects (a streamed answer): what is
    # kept is what was written, until it is written again.
    cache = HistoryCache()
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    writer, user = Writer(conversation), conversation.user_id
    await recent(cached, user, conversation.id)  # a copy for the writes to move
    pending = writer.message(SenderType.ASSISTANT, content="", status=MessageStatus.STREAMING)
    await append(cached, pending)
    pending.content, pending.status = "half of it", MessageStatus.COMPLETE
    hits = cache.hits
    assert newest(await recent(cached, user, conversation.id)) == ("", MessageStatus.STREAMING)
    async with cached(user) as uow:
        await uow.messages.save(pending)
        await uow.commit()
    assert newest(await recent(cached, user, conversation.id)) == (
        "half of it",
        MessageStatus.COMPLETE,
    )
    assert cache.hits == hits + 2  # both answered from the kept copy


async def test_another_users_read_finds_nothing_though_the_owners_copy_is_kept(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    await recent(cached, conversation.user_id, conversation.id)
    await append(cached, Writer(conversation).message())
    assert len(cache) == 1
    assert await recent(cached, uuid.uuid4(), conversation.id) is None


async def test_a_shorter_read_is_served_from_a_longer_copy_and_a_longer_one_is_not(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    writer, user = Writer(conversation), conversation.user_id
    await append(cached, *(writer.message() for _ in range(WINDOW + 2)))
    await recent(cached, user, conversation.id)  # a miss: the append had no copy to move
    async with cached(user) as uow:
        hits = cache.hits
        found = await uow.conversations.get_with_recent(conversation.id, 2)
        assert found is not None
        assert len(found[1]) == 2
        assert cache.hits == hits + 1
        longer = await uow.conversations.get_with_recent(conversation.id, WINDOW + 2)
        assert longer is not None
        assert len(longer[1]) == WINDOW + 2
        assert cache.hits == hits + 1  # read from the database


async def test_a_copy_is_read_again_once_it_is_older_than_max_age(
    pg_engine: AsyncEngine, conversation: Conversation
) -> None:
    # A bound on what a writer that does not move history_version could leave stale.
    clock = Clock()
    cache = HistoryCache(max_age=60, clock=clock)
    cached = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    writer, user = Writer(conversation), conversation.user_id
    await append(cached, writer.message())
    await recent(cached, user, conversation.id)
    async with pg_engine.connect() as conn:  # behind the counter's back
        await conn.execute(text("SET LOCAL ROLE NONE"))
        await conn.execute(
            text(f"UPDATE {SCHEMA}.messages SET content = 'edited' WHERE conversation_id = :c"),
            {"c": conversation.id},
        )
        await conn.commit()
    clock.now = 30
    got = await recent(cached, user, conversation.id)
    assert got is not None
    assert got[0].content != "edited"
    clock.now = 61
    got = await recent(cached, user, conversation.id)
    assert got is not None
    assert got[0].content == "edited"


async def test_writers_at_the_same_moment_leave_a_copy_true_to_the_database(
    pg_engine: AsyncEngine, other_engine: AsyncEngine, conversation: Conversation
) -> None:
    cache = HistoryCache()
    here = PostgresUnitOfWorkFactory(pg_engine, history=cache)
    there = PostgresUnitOfWorkFactory(other_engine, history=HistoryCache())
    truth = PostgresUnitOfWorkFactory(pg_engine)
    writer, user = Writer(conversation), conversation.user_id
    for _ in range(5):
        batch = [writer.message() for _ in range(6)]
        await asyncio.gather(*(append(here if i % 3 else there, m) for i, m in enumerate(batch)))
        same(await recent(here, user, conversation.id), await recent(truth, user, conversation.id))


@pytest.mark.parametrize("seed", range(4))
async def test_any_mix_of_writers_reads_what_the_database_holds(
    pg_engine: AsyncEngine, other_engine: AsyncEngine, conversation: Conversation, seed: int
) -> None:
    rng = random.Random(seed)
    here = PostgresUnitOfWorkFactory(pg_engine, history=HistoryCache(capacity=2))
    there = PostgresUnitOfWorkFactory(other_engine, history=HistoryCache())
    truth = PostgresUnitOfWorkFactory(pg_engine)
    writer, user = Writer(conversation), conversation.user_id
    written: list[Message] = []
    for _ in range(25):
        factory = rng.choice((here, here, there))
        action = rng.choice(("append", "pair", "answer", "save", "answer-save", "read"))
        if action == "append":
            message = writer.message()
            await append(factory, message)
            written.append(message)
        elif action == "pair":
            pair = [writer.message(), writer.message(SenderType.ASSISTANT, content="")]
            await append(factory, *pair)
            written.extend(pair)
        elif action == "answer":
            message = writer.message(SenderType.ASSISTANT)
            await answer(factory, writer, message, insert=True)
            written.append(message)
        elif written and action in ("save", "answer-save"):
            target = rng.choice(written)
            target.content = f"edited {rng.random():.6f}"
            target.status = rng.choice(list(MessageStatus))
            if action == "save":
                async with factory(user) as uow:
                    await uow.messages.save(target)
                    await uow.commit()
            else:
                await answer(factory, writer, target, insert=False)
        same(await recent(here, user, conversation.id), await recent(truth, user, conversation.id))
