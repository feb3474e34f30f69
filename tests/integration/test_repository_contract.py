"""One contract for the repositories, run against the in-memory and the PostgreSQL adapter.

Both implementations must behave the same through the ports (``chatcore.ports``), so
that unit tests on the in-memory adapter say something about production. Every test
works with fresh user ids, so the PostgreSQL runs share one database safely.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres import PostgresUnitOfWork, PostgresUnitOfWorkFactory, create_engine
from chatcore.domain import (
    ContextType,
    Conversation,
    ConversationStatus,
    Message,
    MessageStatus,
    Reaction,
    ReactionKind,
    SenderType,
    Usage,
    UsageRecord,
    new_id,
)
from chatcore.pagination import Cursor, PageRequest
from chatcore.ports import ConversationFilter, UnitOfWork, UnitOfWorkFactory
from chatcore.usage import (
    GroupBy,
    ModelUsage,
    UsageBucket,
    UsageTotals,
    UsageWindow,
    bucket_start,
    summarize,
)

T0 = datetime(2025, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
ALL_STATUSES = frozenset(ConversationStatus)
LISTABLE = frozenset({ConversationStatus.ACTIVE, ConversationStatus.ARCHIVED})


@pytest.fixture(params=["memory", pytest.param("postgres", marks=pytest.mark.postgres)])
def uow_factory(request: pytest.FixtureRequest) -> UnitOfWorkFactory:
    """A unit-of-work factory of each implementation, with its own empty-enough store."""
    if request.param == "memory":
        memory = pytest.importorskip("adapters.memory")
        factory: UnitOfWorkFactory = memory.InMemoryUnitOfWorkFactory(memory.InMemoryStore())
        return factory
    return PostgresUnitOfWorkFactory(request.getfixturevalue("pg_engine"))


def make_conversation(user_id: UUID, at: datetime = T0, **fields: Any) -> Conversation:
    return Conversation(
        id=fields.pop("id", None) or new_id(at),
        user_id=user_id,
        title=fields.pop("title", "Career plans"),
        created_at=fields.pop("created_at", at),
        updated_at=fields.pop("updated_at", at),
        **fields,
    )


def make_message(conversation: Conversation, at: datetime, **fields: Any) -> Message:
    return Message(
        id=new_id(at),
        conversation_id=conversation.id,
        user_id=conversation.user_id,
        sender_type=fields.pop("sender_type", SenderType.USER),
        content=fields.pop("content", "What should I study?"),
        created_at=at,
        **fields,
    )


async def store(factory: UnitOfWorkFactory, user_id: UUID, *items: Conversation | Message) -> None:
    async with factory(user_id) as uow:
        for item in items:
            if isinstance(item, Conversation):
                await uow.conversations.add(item)
            else:
                await uow.messages.add(item)
        await uow.commit()


async def list_all(
    factory: UnitOfWorkFactory, user_id: UUID, where: ConversationFilter, page_size: int
) -> list[Conversation]:
    """Every page, each starting after the previous page's last item."""
    seen: list[Conversation] = []
    after: Cursor | None = None
    async with factory(user_id) as uow:
        for _ in range(1000):
            page = await uow.conversations.list(where, PageRequest(limit=page_size, after=after))
            assert len(page) <= page_size
            seen.extend(page)
            if len(page) < page_size:
                return seen
            after = Cursor(page[-1].updated_at, page[-1].id)
    raise AssertionError("pagination does not end")


def expected_order(items: list[Conversation], where: ConversationFilter) -> list[Conversation]:
    kept = [
        c
        for c in items
        if c.status in where.statuses
        and c.status is not ConversationStatus.DELETED
        and (where.context_type is None or c.context_type is where.context_type)
    ]
    return sorted(kept, key=lambda c: (c.updated_at, c.id), reverse=True)


# --- round trips ---------------------------------------------------------------------


async def test_conversation_round_trip_keeps_every_field(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    original = make_conversation(
        user,
        title="Ünïcode ✓ — “quotes” and 'apostrophes'",
        context_type=ContextType.ASSESSMENT,
        context_data={
            "resultsId": str(uuid.uuid4()),
            "assessment_data": {"riasec": {"investigative": 91, "artistic": 40}},
            "persona_profile": {"archetype": "The Analyst", "strengths": ["a", "b"]},
            "nested": [1, 2.5, True, None, {"deep": ["x"]}],
        },
        metadata={"pinned": True, "tags": ["career"], "score": 0.75},
        status=ConversationStatus.ARCHIVED,
        created_at=T0,
        updated_at=T0 + timedelta(microseconds=1),
    )
    await store(uow_factory, user, original)

    async with uow_factory(user) as uow:
        loaded = await uow.conversations.get(original.id)
    assert loaded == original
    assert loaded is not None
    assert loaded.context_type is ContextType.ASSESSMENT
    assert loaded.status is ConversationStatus.ARCHIVED
    assert loaded.updated_at.utcoffset() == timedelta(0)
    assert loaded.updated_at - loaded.created_at == timedelta(microseconds=1)


async def test_conversation_save_writes_back_the_mutable_fields(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    original = make_conversation(user)
    await store(uow_factory, user, original)

    later = T0 + timedelta(minutes=5, microseconds=7)
    async with uow_factory(user) as uow:
        conversation = await uow.conversations.get(original.id)
        assert conversation is not None
        conversation.rename("  A   new title ", later)
        conversation.change_status(ConversationStatus.ARCHIVED, later)
        conversation.replace_metadata({"k": [1, {"v": None}]}, later)
        conversation.replace_context_data({"resultsId": "r-1"}, later)
        await uow.conversations.save(conversation)
        await uow.commit()

    async with uow_factory(user) as uow:
        loaded = await uow.conversations.get(original.id)
    assert loaded == conversation
    assert loaded is not None
    assert (loaded.title, loaded.created_at, loaded.updated_at) == ("A new title", T0, later)


async def test_message_round_trip_and_save(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    question = make_message(conversation, T0 + timedelta(seconds=1))
    answer = make_message(
        conversation,
        T0 + timedelta(seconds=2, microseconds=1),
        sender_type=SenderType.ASSISTANT,
        content="",
        parent_message_id=question.id,
        status=MessageStatus.STREAMING,
        metadata={"model": "offline"},
    )
    await store(uow_factory, user, conversation, question, answer)

    async with uow_factory(user) as uow:
        assert await uow.messages.get(conversation.id, question.id) == question
        loaded = await uow.messages.get(conversation.id, answer.id)
        assert loaded == answer
        assert loaded is not None
        assert loaded.sender_type is SenderType.ASSISTANT
        assert loaded.status is MessageStatus.STREAMING
        loaded.content = "Consider data science. 🚀"
        loaded.status = MessageStatus.COMPLETE
        loaded.metadata = {"model": "offline", "finish_reason": "stop", "processing_time_ms": 12}
        await uow.messages.save(loaded)
        await uow.commit()

    async with uow_factory(user) as uow:
        assert await uow.messages.get(conversation.id, answer.id) == loaded


async def test_usage_add_and_for_messages(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    answers = [
        make_message(conversation, T0 + timedelta(seconds=i), sender_type=SenderType.ASSISTANT)
        for i in range(3)
    ]
    await store(uow_factory, user, conversation, *answers)
    records = [
        UsageRecord(
            id=new_id(T0),
            user_id=user,
            conversation_id=conversation.id,
            message_id=answer.id,
            model_used=model,
            usage=Usage(
                prompt_tokens=100 + i,
                completion_tokens=20 * i,
                cost=cost,
                is_free_model=cost == 0,
            ),
            processing_time_ms=250 + i,
            created_at=T0 + timedelta(seconds=i, microseconds=3),
            metadata={"fallback": i > 0},
        )
        for i, (answer, model, cost) in enumerate(
            zip(
                answers[:2],
                ["qwen/qwen3-235b-a22b-07-25:free", "openai/gpt-4o-mini"],
                [0.0, 0.00012345],
                strict=True,
            )
        )
    ]
    async with uow_factory(user) as uow:
        for record in records:
            await uow.usage.add(record)
        await uow.commit()

    async with uow_factory(user) as uow:
        found = await uow.usage.for_messages([a.id for a in answers] + [uuid.uuid4()])
        assert found == {r.message_id: r for r in records}
        assert found[answers[1].id].usage.total_tokens == 121
        assert await uow.usage.for_messages([]) == {}
        assert await uow.usage.for_messages([answers[2].id]) == {}
    async with uow_factory(uuid.uuid4()) as uow:
        assert await uow.usage.for_messages([a.id for a in answers]) == {}


async def test_append_inserts_the_messages_and_moves_only_updated_at_up(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user, metadata={"pinned": True})
    await store(uow_factory, user, conversation)
    later = T0 + timedelta(minutes=5)
    question = make_message(conversation, later)
    answer = make_message(
        conversation,
        later + timedelta(seconds=1),
        sender_type=SenderType.ASSISTANT,
        content="",
        parent_message_id=question.id,
        status=MessageStatus.STREAMING,
    )
    async with uow_factory(user) as uow:
        await uow.messages.append(question, answer)
        await uow.commit()
    async with uow_factory(user) as uow:
        assert await uow.messages.recent(conversation.id, 10) == [answer, question]
        stored = await uow.conversations.get(conversation.id)
    assert stored is not None
    assert stored.updated_at == answer.created_at
    assert (stored.title, stored.metadata) == (conversation.title, conversation.metadata)

    # Never back: an older message leaves updated_at where it is.
    older = make_message(conversation, T0 + timedelta(minutes=1))
    async with uow_factory(user) as uow:
        await uow.messages.append(older)
        await uow.commit()
    async with uow_factory(user) as uow:
        again = await uow.conversations.get(conversation.id)
    assert again is not None
    assert again.updated_at == answer.created_at

    async with uow_factory(user) as uow:
        await uow.messages.append()  # nothing to do
        other = make_conversation(user)
        with pytest.raises(ValueError, match="one conversation"):
            await uow.messages.append(question, make_message(other, later))


async def test_append_with_usage_writes_the_turn_and_its_usage_together(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    await store(uow_factory, user, conversation)
    question = make_message(conversation, T0 + timedelta(seconds=1))
    answer = make_message(
        conversation,
        T0 + timedelta(seconds=2),
        sender_type=SenderType.ASSISTANT,
        content="Try data science.",
        parent_message_id=question.id,
    )
    record = make_usage(
        answer, at=T0 + timedelta(seconds=3), ttft=4, attempts=("offline answered",)
    )

    async with uow_factory(user) as uow:  # not committed: nothing
        await uow.messages.append(question, answer, usage=record)
    async with uow_factory(user) as uow:
        assert await uow.messages.recent(conversation.id, 10) == []
        assert await uow.usage.for_messages([answer.id]) == {}

    async with uow_factory(user) as uow:
        await uow.messages.append(question, answer, usage=record)
        await uow.commit()
    async with uow_factory(user) as uow:
        assert await uow.messages.recent(conversation.id, 10) == [answer, question]
        assert await uow.usage.for_messages([answer.id, question.id]) == {answer.id: record}
        stored = await uow.conversations.get(conversation.id)
    assert stored is not None
    assert stored.updated_at == answer.created_at

    async with uow_factory(user) as uow:
        with pytest.raises(ValueError, match="usage record of one of its messages"):
            await uow.messages.append(make_message(conversation, T0), usage=record)
        with pytest.raises(ValueError, match="usage record of one of its messages"):
            await uow.messages.append(usage=record)

    # Another user's conversation: neither the messages nor the usage row is written.
    async def intrude() -> None:
        async with uow_factory(uuid.uuid4()) as uow:
            late = make_message(conversation, T0 + timedelta(minutes=1))
            await uow.messages.append(late, usage=make_usage(late))
            await uow.commit()

    with pytest.raises(PermissionError):
        await intrude()
    async with uow_factory(user) as uow:
        assert len(await uow.messages.recent(conversation.id, 10)) == 2


async def test_append_without_commit_leaves_nothing(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    await store(uow_factory, user, conversation)
    async with uow_factory(user) as uow:
        await uow.messages.append(make_message(conversation, T0 + timedelta(hours=1)))
    async with uow_factory(user) as uow:
        assert await uow.messages.recent(conversation.id, 10) == []
        assert await uow.conversations.get(conversation.id) == conversation


@pytest.mark.parametrize("insert", [True, False])
async def test_store_answer_writes_the_answer_and_its_usage_together(
    uow_factory: UnitOfWorkFactory, insert: bool
) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    answer = make_message(
        conversation,
        T0 + timedelta(seconds=1),
        sender_type=SenderType.ASSISTANT,
        content="" if not insert else "Try data science.",
        status=MessageStatus.STREAMING if not insert else MessageStatus.COMPLETE,
    )
    if insert:
        await store(uow_factory, user, conversation)
    else:
        await store(uow_factory, user, conversation, answer)
        answer.content = "Try data science."
        answer.status = MessageStatus.COMPLETE
        answer.metadata = {"model": "m:free"}
    record = UsageRecord(
        id=new_id(T0),
        user_id=user,
        conversation_id=conversation.id,
        message_id=answer.id,
        model_used="m:free",
        usage=Usage(prompt_tokens=120, completion_tokens=30, cost=0.0, is_free_model=True),
        processing_time_ms=42,
        created_at=T0 + timedelta(seconds=2),
        time_to_first_token_ms=7,
        attempts=("m:free answered",),
    )
    async with uow_factory(user) as uow:
        await uow.messages.store_answer(answer, record, insert=insert)
        await uow.commit()
    async with uow_factory(user) as uow:
        assert await uow.messages.get(conversation.id, answer.id) == answer
        assert await uow.usage.for_messages([answer.id]) == {answer.id: record}

    # Another user's answer: neither the message nor the usage row is written. The
    # refusal comes from the write or, where writes are sent at commit, from the commit.
    async def intrude() -> None:
        async with uow_factory(uuid.uuid4()) as uow:
            await uow.messages.store_answer(
                make_message(conversation, T0, sender_type=SenderType.ASSISTANT),
                record,
                insert=True,
            )
            await uow.commit()

    with pytest.raises(PermissionError):
        await intrude()


async def test_get_with_recent_is_get_and_recent_together(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    profile = {"persona": {"archetype": "The Analyst", "scores": list(range(50))}}
    conversation = make_conversation(
        user, context_type=ContextType.ASSESSMENT, context_data=profile, metadata={"a": 1}
    )
    empty = make_conversation(user, metadata={"b": 2})
    history = [make_message(conversation, T0 + timedelta(seconds=i)) for i in range(7)]
    await store(uow_factory, user, conversation, empty, *history)
    async with uow_factory(user) as uow:
        for limit in (1, 5, 7, 60):
            found = await uow.conversations.get_with_recent(conversation.id, limit)
            assert found == (
                await uow.conversations.get(conversation.id),
                await uow.messages.recent(conversation.id, limit),
            )
            assert found is not None
            assert found[0].context_data == profile
        assert await uow.conversations.get_with_recent(empty.id, 60) == (empty, [])
        assert await uow.conversations.get_with_recent(conversation.id, 0) == (conversation, [])
        assert await uow.conversations.get_with_recent(uuid.uuid4(), 60) is None
    async with uow_factory(uuid.uuid4()) as uow:  # another user
        assert await uow.conversations.get_with_recent(conversation.id, 60) is None


# --- transactions and isolation ------------------------------------------------------


async def test_nothing_stays_without_commit(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    message = make_message(conversation, T0)
    async with uow_factory(user) as uow:
        await uow.conversations.add(conversation)
        await uow.messages.add(message)

    async def fail_midway() -> None:
        async with uow_factory(user) as uow:
            await uow.conversations.add(make_conversation(user))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await fail_midway()

    async with uow_factory(user) as uow:
        assert await uow.conversations.get(conversation.id) is None
        assert await uow.conversations.list(ConversationFilter(), PageRequest(limit=10)) == []
        assert await uow.messages.list(conversation.id, PageRequest(limit=10)) == []


async def test_changes_after_a_commit_need_another_commit(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    first, second = make_conversation(user), make_conversation(user)
    async with uow_factory(user) as uow:
        await uow.conversations.add(first)
        await uow.commit()
        await uow.conversations.add(second)
    async with uow_factory(user) as uow:
        assert await uow.conversations.get(first.id) == first
        assert await uow.conversations.get(second.id) is None


async def test_another_user_can_neither_see_nor_change(uow_factory: UnitOfWorkFactory) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = make_conversation(alice)
    message = make_message(conversation, T0)
    await store(uow_factory, alice, conversation, message)

    async with uow_factory(bob) as uow:
        assert await uow.conversations.get(conversation.id) is None
        where = ConversationFilter(statuses=ALL_STATUSES)
        assert await uow.conversations.list(where, PageRequest(limit=100)) == []
        assert await uow.messages.get(conversation.id, message.id) is None
        assert await uow.messages.list(conversation.id, PageRequest(limit=10)) == []
        assert await uow.messages.recent(conversation.id, 10) == []
        hijacked = make_conversation(alice, id=conversation.id, title="Hijacked")
        await uow.conversations.save(hijacked)  # touches nothing, reveals nothing
        edited = make_message(conversation, T0, content="Hijacked")
        edited.id = message.id
        await uow.messages.save(edited)
        await uow.commit()

    async with uow_factory(alice) as uow:
        assert await uow.conversations.get(conversation.id) == conversation
        assert await uow.messages.get(conversation.id, message.id) == message


async def test_rows_of_another_user_cannot_be_added(uow_factory: UnitOfWorkFactory) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()

    async def add_for_alice() -> None:
        async with uow_factory(bob) as uow:
            await uow.conversations.add(make_conversation(alice))
            await uow.commit()

    with pytest.raises(PermissionError):
        await add_for_alice()
    async with uow_factory(alice) as uow:
        assert await uow.conversations.list(ConversationFilter(), PageRequest(limit=5)) == []


# --- one conversation per assessment result ------------------------------------------


def new_result_id() -> str:
    return f"result-{uuid.uuid4()}"


async def add_for_result(factory: UnitOfWorkFactory, conversation: Conversation) -> bool:
    async with factory(conversation.user_id) as uow:
        added = await uow.conversations.add_for_result(conversation)
        await uow.commit()
    return added


async def by_result(factory: UnitOfWorkFactory, user: UUID, result_id: str) -> Conversation | None:
    async with factory(user) as uow:
        return await uow.conversations.get_by_result(result_id)


async def test_result_id_round_trips_through_add_get_list_and_save(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, result = uuid.uuid4(), new_result_id()
    with_result = make_conversation(user, context_type=ContextType.ASSESSMENT, result_id=result)
    without = make_conversation(user, T0 + timedelta(seconds=1))
    await store(uow_factory, user, with_result, without)

    async with uow_factory(user) as uow:
        assert await uow.conversations.get(with_result.id) == with_result
        assert await uow.conversations.get(without.id) == without
        assert await uow.conversations.list(ConversationFilter(), PageRequest(limit=5)) == [
            without,
            with_result,
        ]
        loaded = await uow.conversations.get_by_result(result)
        assert loaded == with_result
        assert loaded is not None
        # save writes back what may change; the result is fixed at creation.
        loaded.rename("Renamed", T0 + timedelta(minutes=1))
        loaded.result_id = new_result_id()
        await uow.conversations.save(loaded)
        await uow.commit()

    async with uow_factory(user) as uow:
        saved = await uow.conversations.get(with_result.id)
        assert saved is not None
        assert (saved.title, saved.result_id) == ("Renamed", result)
        assert await uow.conversations.get_by_result(result) == saved
        assert loaded.result_id is not None
        assert await uow.conversations.get_by_result(loaded.result_id) is None


async def test_add_for_result_creates_one_conversation_per_result(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), new_result_id()
    first = make_conversation(alice, result_id=result, title="First")
    again = make_conversation(alice, result_id=result, title="Again")
    bobs = make_conversation(bob, result_id=result, title="Bob's")

    assert await add_for_result(uow_factory, first) is True
    assert await add_for_result(uow_factory, again) is False
    # The index spans users: Bob gets False, and learns nothing else.
    assert await add_for_result(uow_factory, bobs) is False

    assert await by_result(uow_factory, alice, result) == first
    assert await by_result(uow_factory, bob, result) is None
    assert await by_result(uow_factory, alice, new_result_id()) is None
    async with uow_factory(alice) as uow:
        assert await uow.conversations.get(again.id) is None
        listed = await uow.conversations.list(ConversationFilter(), PageRequest(limit=5))
        assert listed == [first]
    async with uow_factory(bob) as uow:
        assert await uow.conversations.get(bobs.id) is None
        assert await uow.conversations.list(ConversationFilter(), PageRequest(limit=5)) == []

    # Another result is another story, for either user.
    assert await add_for_result(uow_factory, make_conversation(bob, result_id=new_result_id()))


async def test_a_deleted_conversation_keeps_its_result(uow_factory: UnitOfWorkFactory) -> None:
    user, result = uuid.uuid4(), new_result_id()
    conversation = make_conversation(user, result_id=result)
    assert await add_for_result(uow_factory, conversation)
    async with uow_factory(user) as uow:
        conversation.change_status(ConversationStatus.DELETED, T0 + timedelta(seconds=1))
        await uow.conversations.save(conversation)
        await uow.commit()

    assert await add_for_result(uow_factory, make_conversation(user, result_id=result)) is False
    # get_by_result finds deleted ones too (the service decides what to answer).
    assert await by_result(uow_factory, user, result) == conversation
    async with uow_factory(user) as uow:
        where = ConversationFilter(statuses=ALL_STATUSES)
        assert await uow.conversations.list(where, PageRequest(limit=5)) == []


async def test_add_for_result_refuses_no_result_and_another_users_row(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), new_result_id()
    async with uow_factory(alice) as uow:
        with pytest.raises(ValueError, match="result_id"):
            await uow.conversations.add_for_result(make_conversation(alice))

    async def add_for_alice() -> None:
        async with uow_factory(bob) as uow:
            await uow.conversations.add_for_result(make_conversation(alice, result_id=result))

    with pytest.raises(PermissionError):
        await add_for_alice()
    # Nothing was taken: the result is still free.
    assert await add_for_result(uow_factory, make_conversation(alice, result_id=result))


async def test_a_plain_add_of_a_taken_result_fails(uow_factory: UnitOfWorkFactory) -> None:
    user, result = uuid.uuid4(), new_result_id()
    first = make_conversation(user, result_id=result)
    await store(uow_factory, user, first)

    async def add_again() -> None:
        async with uow_factory(user) as uow:
            await uow.conversations.add(make_conversation(user, result_id=result))
            await uow.commit()

    with pytest.raises((ValueError, IntegrityError)):
        await add_again()
    assert await by_result(uow_factory, user, result) == first


async def test_staged_results_are_the_unit_of_works_own(uow_factory: UnitOfWorkFactory) -> None:
    user, result = uuid.uuid4(), new_result_id()
    conversation = make_conversation(user, result_id=result)
    async with uow_factory(user) as uow:
        assert await uow.conversations.add_for_result(conversation)
        # Visible inside the unit of work, taken for it too...
        assert await uow.conversations.get_by_result(result) == conversation
        assert not await uow.conversations.add_for_result(make_conversation(user, result_id=result))
        # ...and reading it elsewhere neither sees it nor waits for it.
        assert await by_result(uow_factory, user, result) is None
    # Rolled back: the result is free again.
    assert await by_result(uow_factory, user, result) is None
    again = make_conversation(user, result_id=result)
    assert await add_for_result(uow_factory, again)
    assert await by_result(uow_factory, user, result) == again


async def backend_pid(uow: UnitOfWork) -> int | None:
    """The PostgreSQL backend of a unit of work (None in memory)."""
    if not isinstance(uow, PostgresUnitOfWork):
        return None
    connection = await uow.connection()
    pid: int = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
    return pid


async def wait_until_blocked(
    factory: UnitOfWorkFactory, pid: int | None, task: asyncio.Future[Any]
) -> None:
    """Until ``task`` waits for another transaction (PostgreSQL: a lock wait)."""
    if pid is None:
        # In memory the wait is an asyncio one: the task stays pending while the loop turns.
        for _ in range(20):
            await asyncio.sleep(0)
        assert not task.done(), "the second insert did not wait for the first transaction"
        return
    assert isinstance(factory, PostgresUnitOfWorkFactory)
    for _ in range(500):
        assert not task.done(), "the second insert did not wait for the first transaction"
        async with factory.engine.connect() as watcher:
            # Another session's wait shows only to its login role (the service's role
            # sees no other backend's details); the rollback at the end restores it.
            await watcher.execute(text("SET LOCAL ROLE NONE"))
            waiting = await watcher.execute(
                text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
            if waiting.scalar() == "Lock":
                return
        await asyncio.sleep(0.01)
    raise AssertionError("the second insert never waited for the first transaction")


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
async def test_a_concurrent_insert_waits_for_the_first_transaction(
    uow_factory: UnitOfWorkFactory, first_commits: bool
) -> None:
    # Deterministic: the first transaction holds the result, uncommitted, while the second
    # one's insert waits; it then returns False (first committed) or inserts (rolled back).
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), new_result_id()
    first = make_conversation(alice, result_id=result)
    second = make_conversation(bob, result_id=result)
    async with uow_factory(bob) as two:
        pid = await backend_pid(two)
        waiting: asyncio.Future[bool] | None = None
        try:
            async with uow_factory(alice) as one:
                assert await one.conversations.add_for_result(first)
                waiting = asyncio.ensure_future(two.conversations.add_for_result(second))
                await wait_until_blocked(uow_factory, pid, waiting)
                if first_commits:
                    await one.commit()
                # else: leaving the block rolls back
            assert await asyncio.wait_for(waiting, timeout=10) is not first_commits
        finally:
            if waiting is not None:
                waiting.cancel()
        await two.commit()
    winner = first if first_commits else second
    assert await by_result(uow_factory, winner.user_id, result) == winner
    loser = second if first_commits else first
    assert await by_result(uow_factory, loser.user_id, result) is None


async def test_concurrent_callers_create_exactly_one(uow_factory: UnitOfWorkFactory) -> None:
    # The same event delivered twice at once, and the HTTP route racing the consumer:
    # each caller in its own transaction, all of them staged before any commits.
    user, other, result = uuid.uuid4(), uuid.uuid4(), new_result_id()
    candidates = [make_conversation(u, result_id=result) for u in (user, user, other, user)]

    async def create(conversation: Conversation) -> bool:
        async with uow_factory(conversation.user_id) as uow:
            added = await uow.conversations.add_for_result(conversation)
            await asyncio.sleep(0.01)  # let the others reach their insert
            await uow.commit()
            return added

    outcomes = await asyncio.gather(*(create(c) for c in candidates))
    assert sorted(outcomes) == [False, False, False, True]
    (winner,) = (c for c, added in zip(candidates, outcomes, strict=True) if added)
    assert await by_result(uow_factory, winner.user_id, result) == winner
    loser = other if winner.user_id == user else user
    assert await by_result(uow_factory, loser, result) is None


@pytest.mark.postgres
async def test_two_engines_racing_for_one_result_create_one(
    pg_engine: AsyncEngine, pg_url: str
) -> None:
    # Two service instances (two engines, two pools) on the same database, many rounds.
    other = create_engine(pg_url, "chat", pool_size=2)
    try:
        factories = (PostgresUnitOfWorkFactory(pg_engine), PostgresUnitOfWorkFactory(other))
        user = uuid.uuid4()
        for _ in range(20):
            result = new_result_id()
            candidates = [make_conversation(user, result_id=result) for _ in factories]
            outcomes = await asyncio.gather(
                *(add_for_result(f, c) for f, c in zip(factories, candidates, strict=True))
            )
            assert sorted(outcomes) == [False, True]
            (winner,) = (c for c, added in zip(candidates, outcomes, strict=True) if added)
            assert await by_result(factories[0], user, result) == winner
    finally:
        await other.dispose()


# --- row locks -----------------------------------------------------------------------


@pytest.mark.parametrize("first_commits", [True, False], ids=["commit", "rollback"])
async def test_a_lock_waits_for_the_unit_of_work_that_holds_it(
    uow_factory: UnitOfWorkFactory, first_commits: bool
) -> None:
    # The check-then-write of an announcement: the second locker waits, then reads what
    # the first committed (or, after a rollback, the row as it was).
    user = uuid.uuid4()
    conversation = make_conversation(user, metadata={"source": "assessment"})
    await store(uow_factory, user, conversation)
    async with uow_factory(user) as two:
        pid = await backend_pid(two)
        waiting: asyncio.Future[Conversation | None] | None = None
        try:
            async with uow_factory(user) as one:
                held = await one.conversations.lock(conversation.id)
                assert held == conversation
                waiting = asyncio.ensure_future(two.conversations.lock(conversation.id))
                await wait_until_blocked(uow_factory, pid, waiting)
                # a plain read does not wait for the lock
                async with uow_factory(user) as reader:
                    assert await reader.conversations.get(conversation.id) == conversation
                held.metadata = {**held.metadata, "announced_at": "now"}
                await one.conversations.save(held)
                if first_commits:
                    await one.commit()
            seen = await asyncio.wait_for(waiting, timeout=10)
        finally:
            if waiting is not None:
                waiting.cancel()
        assert seen is not None
        expected = {"source": "assessment", **({"announced_at": "now"} if first_commits else {})}
        assert seen.metadata == expected
        await two.commit()


async def test_a_lock_is_released_by_commit_and_held_again_by_the_same_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    await store(uow_factory, user, conversation)
    async with uow_factory(user) as one:
        assert await one.conversations.lock(conversation.id) == conversation
        assert await one.conversations.lock(conversation.id) == conversation  # its own
        await one.commit()
        async with uow_factory(user) as two:  # free after the commit: no wait
            assert await asyncio.wait_for(two.conversations.lock(conversation.id), 10)
            await two.commit()


async def test_another_users_conversation_cannot_be_locked(uow_factory: UnitOfWorkFactory) -> None:
    owner, intruder = uuid.uuid4(), uuid.uuid4()
    conversation = make_conversation(owner)
    await store(uow_factory, owner, conversation)
    async with uow_factory(intruder) as uow:
        assert await uow.conversations.lock(conversation.id) is None
        assert await uow.conversations.lock(uuid.uuid4()) is None
    async with uow_factory(owner) as uow:  # the intruder's attempt held nothing
        assert await asyncio.wait_for(uow.conversations.lock(conversation.id), 10)


# --- in-memory specifics -------------------------------------------------------------


async def test_memory_commit_refuses_a_result_committed_behind_its_back() -> None:
    # The claim makes a second unit of work wait, so through the repositories a staged
    # result is never committed by another one meanwhile; commit still guards the index
    # (and applies nothing) should the store change underneath.
    memory = pytest.importorskip("adapters.memory")
    factory = memory.InMemoryUnitOfWorkFactory(memory.InMemoryStore())
    user, result = uuid.uuid4(), new_result_id()
    staged = make_conversation(user, result_id=result)
    elsewhere = make_conversation(user, result_id=result)
    async with factory(user) as uow:
        assert await uow.conversations.add_for_result(staged)
        await uow.messages.add(make_message(staged, T0))
        factory.store.conversations[elsewhere.id] = elsewhere
        factory.store.conversation_by_result[result] = elsewhere.id
        with pytest.raises(ValueError, match="exists"):
            await uow.commit()
    assert staged.id not in factory.store.conversations
    assert factory.store.messages == {}
    assert factory.store.result_claims == {}


async def test_memory_waiting_on_a_unit_of_work_of_the_same_task_raises() -> None:
    # PostgreSQL would hang (the waiting session's own task holds the other one open).
    memory = pytest.importorskip("adapters.memory")
    factory = memory.InMemoryUnitOfWorkFactory(memory.InMemoryStore())
    user, result = uuid.uuid4(), new_result_id()
    async with factory(user) as one, factory(user) as two:
        assert await one.conversations.add_for_result(make_conversation(user, result_id=result))
        with pytest.raises(RuntimeError, match="never return"):
            await two.conversations.add_for_result(make_conversation(user, result_id=result))


# --- conversation listing ------------------------------------------------------------


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=3),  # few distinct times: many ties
            st.sampled_from(list(ConversationStatus)),
            st.sampled_from(list(ContextType)),
        ),
        max_size=12,
    ),
    page_size=st.integers(min_value=1, max_value=5),
    statuses=st.sets(st.sampled_from(list(ConversationStatus)), min_size=1),
    context_type=st.none() | st.sampled_from(list(ContextType)),
)
async def test_keyset_pages_return_each_conversation_once_in_order(
    uow_factory: UnitOfWorkFactory,
    rows: list[tuple[int, ConversationStatus, ContextType]],
    page_size: int,
    statuses: set[ConversationStatus],
    context_type: ContextType | None,
) -> None:
    user = uuid.uuid4()  # a fresh user per example: examples share the store
    items = [
        make_conversation(
            user,
            created_at=T0,
            updated_at=T0 + timedelta(microseconds=tick),
            status=status,
            context_type=kind,
        )
        for tick, status, kind in rows
    ]
    await store(uow_factory, user, *items)
    where = ConversationFilter(statuses=frozenset(statuses), context_type=context_type)
    listed = await list_all(uow_factory, user, where, page_size)
    assert listed == expected_order(items, where)


async def test_identical_timestamps_are_ordered_by_id(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    items = [make_conversation(user) for _ in range(7)]  # all at T0
    await store(uow_factory, user, *items)
    expected = sorted(items, key=lambda c: c.id, reverse=True)
    for page_size in range(1, 9):
        assert await list_all(uow_factory, user, ConversationFilter(), page_size) == expected


async def test_filters_and_deleted_conversations(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    at = [T0 + timedelta(seconds=i) for i in range(4)]
    active = make_conversation(user, at[0])
    guidance = make_conversation(user, at[1], context_type=ContextType.CAREER_GUIDANCE)
    archived = make_conversation(user, at[2], status=ConversationStatus.ARCHIVED)
    deleted = make_conversation(user, at[3], status=ConversationStatus.DELETED)
    await store(uow_factory, user, active, guidance, archived, deleted)
    page = PageRequest(limit=10)

    async with uow_factory(user) as uow:
        listed = uow.conversations.list
        assert await listed(ConversationFilter(), page) == [guidance, active]
        by_archived = ConversationFilter(statuses=frozenset({ConversationStatus.ARCHIVED}))
        assert await listed(by_archived, page) == [archived]
        assert await listed(ConversationFilter(statuses=LISTABLE), page) == [
            archived,
            guidance,
            active,
        ]
        by_deleted = ConversationFilter(statuses=frozenset({ConversationStatus.DELETED}))
        assert await listed(by_deleted, page) == []
        assert await listed(ConversationFilter(statuses=ALL_STATUSES), page) == [
            archived,
            guidance,
            active,
        ]
        career = ConversationFilter(statuses=LISTABLE, context_type=ContextType.CAREER_GUIDANCE)
        assert await listed(career, page) == [guidance]
        assessment = ConversationFilter(context_type=ContextType.ASSESSMENT)
        assert await listed(assessment, page) == []
        # A deleted conversation is still there for get (the service answers 404 itself).
        assert await uow.conversations.get(deleted.id) == deleted


async def test_deleting_removes_from_the_list(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    await store(uow_factory, user, conversation)
    async with uow_factory(user) as uow:
        conversation.change_status(ConversationStatus.DELETED, T0 + timedelta(seconds=1))
        await uow.conversations.save(conversation)
        await uow.commit()
    async with uow_factory(user) as uow:
        where = ConversationFilter(statuses=ALL_STATUSES)
        assert await uow.conversations.list(where, PageRequest(limit=5)) == []
        assert await uow.conversations.get(conversation.id) == conversation


async def test_offset_pages(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    items = [make_conversation(user, T0 + timedelta(seconds=i % 3)) for i in range(8)]
    await store(uow_factory, user, *items)
    expected = expected_order(items, ConversationFilter())
    async with uow_factory(user) as uow:
        for size in (1, 3, 5, 8, 9):
            pages = [
                await uow.conversations.list(
                    ConversationFilter(), PageRequest(limit=size, offset=offset)
                )
                for offset in range(0, len(items) + size, size)
            ]
            assert [c for page in pages for c in page] == expected
        past_the_end = PageRequest(limit=5, offset=len(items))
        assert await uow.conversations.list(ConversationFilter(), past_the_end) == []
        assert await uow.conversations.list(ConversationFilter(), PageRequest(limit=0)) == []


# --- message listing -----------------------------------------------------------------


async def test_messages_pages_recent_and_get(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation, other = make_conversation(user), make_conversation(user)
    # Groups of identical timestamps: the id breaks the ties.
    messages = [
        make_message(conversation, T0 + timedelta(microseconds=i // 3), content=f"m{i}")
        for i in range(10)
    ]
    elsewhere = make_message(other, T0)
    await store(uow_factory, user, conversation, other, *reversed(messages), elsewhere)
    expected = sorted(messages, key=lambda m: (m.created_at, m.id))

    async with uow_factory(user) as uow:
        for size in range(1, 12):
            keyset: list[Message] = []
            after: Cursor | None = None
            while True:
                page = await uow.messages.list(
                    conversation.id, PageRequest(limit=size, after=after)
                )
                keyset.extend(page)
                if len(page) < size:
                    break
                after = Cursor(page[-1].created_at, page[-1].id)
            assert keyset == expected
            offset_pages = [
                await uow.messages.list(conversation.id, PageRequest(limit=size, offset=offset))
                for offset in range(0, len(messages) + size, size)
            ]
            assert [m for page in offset_pages for m in page] == expected

        assert await uow.messages.recent(conversation.id, 4) == expected[::-1][:4]
        assert await uow.messages.recent(conversation.id, 50) == expected[::-1]
        assert await uow.messages.recent(conversation.id, 0) == []
        assert await uow.messages.list(other.id, PageRequest(limit=5)) == [elsewhere]

        assert await uow.messages.get(conversation.id, messages[0].id) == messages[0]
        # A message is only found through its own conversation.
        assert await uow.messages.get(other.id, messages[0].id) is None
        assert await uow.messages.get(conversation.id, elsewhere.id) is None
        assert await uow.messages.get(conversation.id, uuid.uuid4()) is None


# --- the usage ledger: new fields, totals and series ----------------------------------

FREE = "qwen/qwen3-235b-a22b-07-25:free"
FALLBACK = "meta-llama/llama-3.2-3b-instruct:free"
PAID = "openai/gpt-4o-mini"


def make_usage(
    answer: Message,
    model: str = FREE,
    *,
    at: datetime | None = None,
    prompt: int = 100,
    completion: int = 50,
    cost: float = 0.0,
    ms: int = 200,
    ttft: int | None = None,
    attempts: tuple[str, ...] = (),
    fell_back: bool = False,
) -> UsageRecord:
    created = at if at is not None else answer.created_at
    return UsageRecord(
        id=new_id(created),
        user_id=answer.user_id,
        conversation_id=answer.conversation_id,
        message_id=answer.id,
        model_used=model,
        usage=Usage(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost=cost,
            is_free_model=model.endswith(":free"),
        ),
        processing_time_ms=ms,
        created_at=created,
        time_to_first_token_ms=ttft,
        attempts=attempts,
        fell_back=fell_back,
    )


async def ledger(
    factory: UnitOfWorkFactory,
    conversation: Conversation,
    specs: list[dict[str, Any]],
    *,
    new_conversation: bool = True,
) -> list[UsageRecord]:
    """Store ``conversation`` (unless told), an answer per spec and its usage record."""
    user = conversation.user_id
    answers = [
        make_message(conversation, spec["at"], sender_type=SenderType.ASSISTANT) for spec in specs
    ]
    records = [make_usage(answer, **spec) for answer, spec in zip(answers, specs, strict=True)]
    items: list[Conversation | Message] = [conversation] if new_conversation else []
    await store(factory, user, *items, *answers)
    async with factory(user) as uow:
        for record in records:
            await uow.usage.add(record)
        await uow.commit()
    return records


async def test_usage_fallback_fields_round_trip(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    attempts = (
        "qwen/qwen3-235b-a22b-07-25:free: failed (rate_limited)",
        "meta-llama/llama-3.2-3b-instruct:free: skipped (cooling down) — “ü”",
        "openai/gpt-4o-mini: answered",
    )
    records = await ledger(
        uow_factory,
        conversation,
        [
            {
                "at": T0,
                "model": PAID,
                "cost": 0.00012345,
                "ttft": 321,
                "attempts": attempts,
                "fell_back": True,
            },
            {"at": T0 + timedelta(seconds=1)},  # the defaults: no first token, no attempts
        ],
    )
    async with uow_factory(user) as uow:
        found = await uow.usage.for_messages([r.message_id for r in records])
    assert found == {r.message_id: r for r in records}
    first, second = found[records[0].message_id], found[records[1].message_id]
    assert (first.time_to_first_token_ms, first.attempts, first.fell_back) == (321, attempts, True)
    assert isinstance(first.attempts, tuple)
    assert (second.time_to_first_token_ms, second.attempts, second.fell_back) == (None, (), False)


async def test_usage_totals_per_user_and_conversation(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    first, second = make_conversation(user), make_conversation(user)
    start, end = T0, T0 + timedelta(days=1)
    await ledger(
        uow_factory,
        first,
        [
            # Just before the window, exactly at its start, inside, exactly at its end.
            {"at": start - timedelta(microseconds=1), "prompt": 1000},
            {"at": start, "prompt": 10, "completion": 5, "ms": 100, "ttft": 40},
            {
                "at": start + timedelta(hours=1),
                "model": FALLBACK,
                "prompt": 20,
                "completion": 7,
                "ms": 301,
                "fell_back": True,
            },
            {
                "at": start + timedelta(hours=2),
                "model": PAID,
                "prompt": 30,
                "completion": 9,
                "cost": 0.1,
                "ms": 500,
                "ttft": 80,
                "fell_back": True,
            },
            {"at": end, "prompt": 2000},
        ],
    )
    await ledger(
        uow_factory,
        second,
        [
            {
                "at": start + timedelta(hours=3),
                "model": PAID,
                "prompt": 40,
                "completion": 11,
                "cost": 0.2,
                "ms": 700,
                "ttft": 90,
                "fell_back": True,
            },
            {"at": end - timedelta(microseconds=1), "prompt": 50, "completion": 13, "ms": 201},
        ],
    )
    window = UsageWindow(start=start, end=end)
    async with uow_factory(user) as uow:
        totals = await uow.usage.totals(window)
        only_first = await uow.usage.totals(window, first.id)
        everything = await uow.usage.totals(UsageWindow())
        since = await uow.usage.totals(UsageWindow(start=end))
        until = await uow.usage.totals(UsageWindow(end=start))
        nothing = await uow.usage.totals(window, uuid.uuid4())
    assert totals == UsageTotals(
        requests=5,
        prompt_tokens=150,
        completion_tokens=45,
        total_tokens=195,
        cost=0.3,  # exact: 0.1 + 0.2 would be 0.30000000000000004 in floats
        free_requests=3,
        fallback_requests=3,
        models=(
            # Most used first; ties by name.
            ModelUsage(
                model=PAID,
                requests=2,
                prompt_tokens=70,
                completion_tokens=20,
                total_tokens=90,
                cost=0.3,
                free_requests=0,
                fallback_requests=2,
                avg_processing_time_ms=600.0,
                avg_time_to_first_token_ms=85.0,
            ),
            ModelUsage(
                model=FREE,
                requests=2,
                prompt_tokens=60,
                completion_tokens=18,
                total_tokens=78,
                free_requests=2,
                avg_processing_time_ms=150.5,
                avg_time_to_first_token_ms=40.0,  # the one record that has it
            ),
            ModelUsage(
                model=FALLBACK,
                requests=1,
                prompt_tokens=20,
                completion_tokens=7,
                total_tokens=27,
                free_requests=1,
                fallback_requests=1,
                avg_processing_time_ms=301.0,
                avg_time_to_first_token_ms=None,
            ),
        ),
    )
    assert totals.fallback_rate == 3 / 5
    assert totals.free_model_share == 3 / 5
    assert (only_first.requests, only_first.prompt_tokens, only_first.cost) == (3, 60, 0.1)
    assert [m.model for m in only_first.models] == [FALLBACK, PAID, FREE]
    assert (everything.requests, everything.prompt_tokens) == (7, 3150)
    assert (since.requests, since.prompt_tokens) == (1, 2000)
    assert (until.requests, until.prompt_tokens) == (1, 1000)
    assert nothing == UsageTotals()

    # Another user sees none of it; an empty ledger gives zeros, no models.
    async with uow_factory(uuid.uuid4()) as uow:
        assert await uow.usage.totals(UsageWindow()) == UsageTotals()
        assert await uow.usage.totals(window, first.id) == UsageTotals()
        assert await uow.usage.series(UsageWindow(), GroupBy.DAY) == []


async def test_usage_series_by_day_week_and_month(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation, other = make_conversation(user), make_conversation(user)
    jakarta = timezone(timedelta(hours=7))
    times = [
        datetime(2025, 1, 31, 23, 59, 59, 999999, tzinfo=UTC),  # Fri; January
        datetime(2025, 2, 1, 0, 0, tzinfo=UTC),  # Sat; February; week of Jan 27
        datetime(2025, 2, 2, 23, 30, tzinfo=UTC),  # Sun; still the week of Jan 27
        datetime(2025, 2, 3, 6, 0, tzinfo=jakarta),  # Sun 23:00 UTC: the UTC day counts
        datetime(2025, 2, 3, 0, 0, tzinfo=UTC),  # Mon: a new week
        datetime(2025, 3, 3, 12, 0, tzinfo=UTC),  # Mon; March
    ]
    models = [FREE, PAID, FREE, FALLBACK, PAID, FREE]
    specs = [
        {"at": at, "model": model, "prompt": 10 * (i + 1), "cost": 0.01 if model == PAID else 0.0}
        for i, (at, model) in enumerate(zip(times, models, strict=True))
    ]
    await ledger(uow_factory, conversation, specs)
    # Elsewhere: only in the user-wide series.
    await ledger(uow_factory, other, [{"at": datetime(2025, 2, 10, tzinfo=UTC), "prompt": 1}])

    def utc(year: int, month: int, day: int) -> datetime:
        return datetime(year, month, day, tzinfo=UTC)

    async with uow_factory(user) as uow:
        window = UsageWindow()
        by_day = await uow.usage.series(window, GroupBy.DAY, conversation.id)
        by_week = await uow.usage.series(window, GroupBy.WEEK, conversation.id)
        by_month = await uow.usage.series(window, GroupBy.MONTH, conversation.id)
        user_weeks = await uow.usage.series(window, GroupBy.WEEK)
        # The window bounds apply to records, not to periods.
        part = UsageWindow(start=times[1], end=times[5])
        part_months = await uow.usage.series(part, GroupBy.MONTH, conversation.id)
        part_days = await uow.usage.series(part, GroupBy.DAY, conversation.id)

    def shape(buckets: list[UsageBucket]) -> list[tuple[datetime, int, int, float]]:
        return [
            (b.period_start, b.totals.requests, b.totals.prompt_tokens, b.totals.cost)
            for b in buckets
        ]

    assert shape(by_day) == [
        (utc(2025, 1, 31), 1, 10, 0.0),
        (utc(2025, 2, 1), 1, 20, 0.01),
        (utc(2025, 2, 2), 2, 70, 0.0),
        (utc(2025, 2, 3), 1, 50, 0.01),
        (utc(2025, 3, 3), 1, 60, 0.0),
    ]
    assert shape(by_week) == [
        (utc(2025, 1, 27), 4, 100, 0.01),
        (utc(2025, 2, 3), 1, 50, 0.01),
        (utc(2025, 3, 3), 1, 60, 0.0),
    ]
    assert shape(by_month) == [
        (utc(2025, 1, 1), 1, 10, 0.0),
        (utc(2025, 2, 1), 4, 140, 0.02),
        (utc(2025, 3, 1), 1, 60, 0.0),
    ]
    assert shape(user_weeks) == [
        (utc(2025, 1, 27), 4, 100, 0.01),
        (utc(2025, 2, 3), 1, 50, 0.01),
        (utc(2025, 2, 10), 1, 1, 0.0),
        (utc(2025, 3, 3), 1, 60, 0.0),
    ]
    assert shape(part_months) == [(utc(2025, 2, 1), 4, 140, 0.02)]
    assert [b.period_start for b in part_days] == [utc(2025, 2, d) for d in (1, 2, 3)]
    # Each bucket carries its own per-model breakdown.
    week = by_week[0].totals
    assert [(m.model, m.requests) for m in week.models] == [(FREE, 2), (FALLBACK, 1), (PAID, 1)]
    assert all(b.period_start.utcoffset() == timedelta(0) for b in by_day)


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=120 * 24 * 3600 * 10**6),  # µs over 4 months
            # "Zeta" sorts before "meta" in byte order, after it in most collations.
            st.sampled_from([FREE, FALLBACK, PAID, "offline", "Zeta/z-1"]),
            st.integers(min_value=0, max_value=4000),  # prompt
            st.integers(min_value=0, max_value=1000),  # completion
            st.integers(min_value=0, max_value=10**6),  # cost in 1e-8 USD
            st.integers(min_value=0, max_value=60000),  # processing ms
            st.none() | st.integers(min_value=0, max_value=10000),  # time to first token
            st.booleans(),  # fell back
            st.booleans(),  # which conversation
        ),
        max_size=15,
    ),
    bounds=st.tuples(
        st.none() | st.integers(min_value=0, max_value=14),
        st.none() | st.integers(min_value=0, max_value=14),
    ),
    group_by=st.sampled_from(list(GroupBy)),
    by_conversation=st.booleans(),
)
async def test_usage_totals_and_series_agree_with_the_records(
    uow_factory: UnitOfWorkFactory,
    rows: list[tuple[int, str, int, int, int, int, int | None, bool, bool]],
    bounds: tuple[int | None, int | None],
    group_by: GroupBy,
    by_conversation: bool,
) -> None:
    # Both adapters against one pure reference (chatcore.usage.summarize, bucket_start):
    # so the in-memory and the PostgreSQL ledger give identical results, floats included.
    user = uuid.uuid4()
    conversations = [make_conversation(user), make_conversation(user)]
    base = datetime(2024, 12, 1, tzinfo=UTC)
    answers: list[Message] = []
    records: list[UsageRecord] = []
    for offset, model, prompt, completion, cost, ms, ttft, fell_back, which in rows:
        at = base + timedelta(microseconds=offset)
        answer = make_message(conversations[which], at, sender_type=SenderType.ASSISTANT)
        answers.append(answer)
        records.append(
            make_usage(
                answer,
                model,
                prompt=prompt,
                completion=completion,
                cost=cost / 10**8,  # the ledger keeps 8 decimal places
                ms=ms,
                ttft=ttft,
                fell_back=fell_back,
            )
        )
    await store(uow_factory, user, *conversations, *answers)
    async with uow_factory(user) as uow:
        for record in records:
            await uow.usage.add(record)
        await uow.commit()

    # Window bounds: either open, or one of the record times (inclusive/exclusive edges).
    times = sorted(r.created_at for r in records) or [base]
    start_i, end_i = bounds
    window = UsageWindow(
        start=None if start_i is None else times[start_i % len(times)],
        end=None if end_i is None else times[end_i % len(times)],
    )
    conversation_id = conversations[0].id if by_conversation else None
    chosen = [
        r
        for r in records
        if (window.start is None or r.created_at >= window.start)
        and (window.end is None or r.created_at < window.end)
        and (conversation_id is None or r.conversation_id == conversation_id)
    ]
    periods: dict[datetime, list[UsageRecord]] = {}
    for record in chosen:
        periods.setdefault(bucket_start(record.created_at, group_by), []).append(record)
    expected_series = [
        UsageBucket(period_start=start, totals=summarize(periods[start]))
        for start in sorted(periods)
    ]

    async with uow_factory(user) as uow:
        assert await uow.usage.totals(window, conversation_id) == summarize(chosen)
        assert await uow.usage.series(window, group_by, conversation_id) == expected_series


async def test_a_deleted_conversation_can_give_its_result_up(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), new_result_id()
    conversation = make_conversation(alice, result_id=result)
    assert await add_for_result(uow_factory, conversation)
    async with uow_factory(alice) as uow:  # not deleted: it keeps its result
        assert await uow.conversations.release_result(conversation.id) is False
    async with uow_factory(alice) as uow:
        conversation.change_status(ConversationStatus.DELETED, T0 + timedelta(seconds=1))
        await uow.conversations.save(conversation)
        await uow.commit()
    async with uow_factory(bob) as uow:  # another user's: invisible, untouched
        assert await uow.conversations.release_result(conversation.id) is False
        await uow.commit()
    assert await by_result(uow_factory, alice, result) == conversation

    async with uow_factory(alice) as uow:
        assert await uow.conversations.release_result(conversation.id) is True
        assert await uow.conversations.get_by_result(result) is None
        await uow.commit()
    async with uow_factory(alice) as uow:
        assert await uow.conversations.release_result(conversation.id) is False  # done
        kept = await uow.conversations.get(conversation.id)
        assert kept is not None
        assert (kept.status, kept.result_id) == (ConversationStatus.DELETED, None)

    anew = make_conversation(alice, result_id=result, title="Anew")
    assert await add_for_result(uow_factory, anew) is True
    assert await by_result(uow_factory, alice, result) == anew
    assert await add_for_result(uow_factory, make_conversation(alice, result_id=result)) is False


async def test_a_result_given_up_is_taken_in_the_same_unit_of_work(
    uow_factory: UnitOfWorkFactory,
) -> None:
    user, result = uuid.uuid4(), new_result_id()
    conversation = make_conversation(user, result_id=result)
    assert await add_for_result(uow_factory, conversation)
    async with uow_factory(user) as uow:
        conversation.change_status(ConversationStatus.DELETED, T0 + timedelta(seconds=1))
        await uow.conversations.save(conversation)
        await uow.commit()
    anew = make_conversation(user, result_id=result, title="Anew")
    async with uow_factory(user) as uow:
        assert await uow.conversations.release_result(conversation.id)
        assert await uow.conversations.add_for_result(anew) is True
        await uow.commit()
    assert await by_result(uow_factory, user, result) == anew


# --- search ----------------------------------------------------------------------------


async def search_all(
    factory: UnitOfWorkFactory, user: UUID, terms: tuple[str, ...], limit: int
) -> list[Message]:
    """Follow the keyset to the end, a page of ``limit`` at a time."""
    found: list[Message] = []
    page = PageRequest(limit=limit)
    while True:
        async with factory(user) as uow:
            rows = await uow.messages.search(terms, page)
        found += [row.message for row in rows]
        if len(rows) < limit:
            return found
        last = rows[-1].message
        page = PageRequest(limit=limit, after=Cursor(at=last.created_at, id=last.id))


async def test_search_matches_word_starts_of_every_term_newest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    active = make_conversation(alice, title="Plans")
    archived = make_conversation(alice, T0 + timedelta(seconds=1), title="Old plans")
    deleted = make_conversation(alice, T0 + timedelta(seconds=2))
    archived.change_status(ConversationStatus.ARCHIVED, T0 + timedelta(seconds=3))
    deleted.change_status(ConversationStatus.DELETED, T0 + timedelta(seconds=3))
    texts = [
        (active, "Karier di bidang Data Science?"),
        (archived, "data engineering atau karier lain"),
        (deleted, "karier data yang dihapus"),
        (active, "Jurusan statistika"),
        (active, "metadata saja, bukan kata itu"),
    ]
    mine = [make_message(c, T0 + timedelta(minutes=i), content=t) for i, (c, t) in enumerate(texts)]
    bobs = make_conversation(bob)
    await store(uow_factory, alice, active, archived, deleted, *mine)
    await store(uow_factory, bob, bobs, make_message(bobs, T0, content="karier data rahasia"))

    async with uow_factory(alice) as uow:
        rows = await uow.messages.search(("data", "kar"), PageRequest(limit=10))
    assert [r.message for r in rows] == [mine[1], mine[0]]  # newest first, no deleted one
    assert [r.conversation_title for r in rows] == ["Old plans", "Plans"]
    # "data" starts no word of "metadata"; case does not matter.
    assert await search_all(uow_factory, alice, ("data",), 10) == [mine[1], mine[0]]
    assert await search_all(uow_factory, alice, ("STATIS".lower(),), 10) == [mine[3]]
    assert await search_all(uow_factory, alice, ("nothing",), 10) == []
    assert [m.user_id for m in await search_all(uow_factory, bob, ("data",), 10)] == [bob]


async def test_search_pages_give_every_hit_exactly_once(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    same_time = T0 + timedelta(minutes=5)  # ties are broken by id
    hits = [
        make_message(
            conversation,
            same_time if i % 3 == 0 else T0 + timedelta(seconds=i),
            content=f"magang nomor {i}",
        )
        for i in range(11)
    ]
    await store(uow_factory, user, conversation, *hits)
    expected = sorted(hits, key=lambda m: (m.created_at, m.id), reverse=True)
    for limit in (1, 3, 11, 20):
        assert await search_all(uow_factory, user, ("magang",), limit) == expected


# --- reactions -------------------------------------------------------------------------


def make_reaction(message: Message, kind: ReactionKind, at: datetime, **fields: Any) -> Reaction:
    return Reaction(
        id=new_id(at),
        message_id=message.id,
        conversation_id=message.conversation_id,
        user_id=fields.pop("user_id", message.user_id),
        reaction=kind,
        created_at=at,
        updated_at=at,
        **fields,
    )


async def put_reaction(factory: UnitOfWorkFactory, user: UUID, reaction: Reaction) -> None:
    async with factory(user) as uow:
        await uow.reactions.put(reaction)
        await uow.commit()


async def test_reactions_are_one_per_kind_and_message(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    answer = make_message(conversation, T0, sender_type=SenderType.ASSISTANT)
    await store(uow_factory, user, conversation, answer)

    first = make_reaction(answer, ReactionKind.LIKE, T0, feedback="clear")
    async with uow_factory(user) as uow:
        assert await uow.reactions.put(first) == first
        helpful = await uow.reactions.put(
            make_reaction(answer, ReactionKind.HELPFUL, T0 + timedelta(seconds=1))
        )
        await uow.commit()
    later = T0 + timedelta(minutes=1)
    again = make_reaction(answer, ReactionKind.LIKE, later, feedback="very clear")
    async with uow_factory(user) as uow:
        stored = await uow.reactions.put(again)
        await uow.commit()
    # The same kind again: the first row, with the new feedback and time.
    assert (stored.id, stored.created_at) == (first.id, first.created_at)
    assert (stored.feedback, stored.updated_at) == ("very clear", later)
    async with uow_factory(user) as uow:
        assert await uow.reactions.for_message(answer.id) == [stored, helpful]
        assert await uow.reactions.remove(answer.id, [ReactionKind.LIKE, ReactionKind.DISLIKE]) == 1
        await uow.commit()
    async with uow_factory(user) as uow:
        assert await uow.reactions.for_message(answer.id) == [helpful]
        assert await uow.reactions.remove(answer.id, [ReactionKind.LIKE]) == 0
        # Not committed: rolled back.
        assert await uow.reactions.remove(answer.id, [ReactionKind.HELPFUL]) == 1
    async with uow_factory(user) as uow:
        assert await uow.reactions.for_message(answer.id) == [helpful]


async def test_reactions_of_another_user_are_invisible_and_refused(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    conversation = make_conversation(alice)
    answer = make_message(conversation, T0, sender_type=SenderType.ASSISTANT)
    await store(uow_factory, alice, conversation, answer)
    async with uow_factory(alice) as uow:
        await uow.reactions.put(make_reaction(answer, ReactionKind.LIKE, T0))
        await uow.commit()

    async with uow_factory(bob) as uow:
        assert await uow.reactions.for_message(answer.id) == []
        assert await uow.reactions.remove(answer.id, list(ReactionKind)) == 0
        await uow.commit()
    with pytest.raises(PermissionError):  # a row in Alice's name, written by Bob
        await put_reaction(uow_factory, bob, make_reaction(answer, ReactionKind.DISLIKE, T0))
    # Bob's row on Alice's message: the (conversation, user) foreign key refuses it.
    with pytest.raises(ValueError):  # noqa: PT011 - each adapter words it its own way
        await put_reaction(
            uow_factory, bob, make_reaction(answer, ReactionKind.DISLIKE, T0, user_id=bob)
        )
    async with uow_factory(alice) as uow:
        assert [r.reaction for r in await uow.reactions.for_message(answer.id)] == [
            ReactionKind.LIKE
        ]


async def test_a_reaction_needs_an_existing_message(uow_factory: UnitOfWorkFactory) -> None:
    user = uuid.uuid4()
    conversation = make_conversation(user)
    await store(uow_factory, user, conversation)
    ghost = make_message(conversation, T0)  # never stored
    with pytest.raises(ValueError):  # noqa: PT011 - each adapter words it its own way
        await put_reaction(uow_factory, user, make_reaction(ghost, ReactionKind.LIKE, T0))
