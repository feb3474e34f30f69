"""The use cases on the in-memory harness: state is asserted, nothing is mocked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from adapters.memory import InMemorySpendLedger
from chatcore.clock import FakeClock
from chatcore.domain import ContextType, ConversationStatus, Message, MessageStatus, SenderType
from chatcore.errors import (
    AIServiceUnavailableError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from chatcore.events import AnswerFailed, AnswerProduced, ConversationCreated, UserMessageStored
from chatcore.fallback import ModelChain, ModelGateway
from chatcore.limits import RateLimits, RatePolicy
from chatcore.models import ChatReply, ChatRequest, FailureKind, ModelError
from chatcore.pagination import PageRequest, decode_cursor
from chatcore.ports import ConversationFilter, StaleReadError
from chatcore.services import ChatSettings, CreateConversation, UpdateConversation
from chatcore.services.messages import (
    PREVIEW_LENGTH,
    MessageService,
    StreamCompleted,
    StreamFailed,
    _branch,
    preview,
)
from chatcore.testing import InMemorySystem, in_memory_system
from tests.unit.models import FailingModel, RecordingModel, ScriptedModel

ALICE = UUID("5f0c3b1e-7d2a-4c61-9a7e-2b8f4d6c1a90")
BOB = UUID("0b0b0b0b-0000-4000-8000-000000000000")


def system(**kwargs: Any) -> InMemorySystem:
    kwargs.setdefault("model", RecordingModel())
    kwargs.setdefault(
        "rate_policy", RatePolicy(messages_per_minute=1000, conversations_per_day=1000)
    )
    return in_memory_system(**kwargs)


async def test_create_with_defaults_and_persona() -> None:
    s = system()
    plain = await s.conversations.create(ALICE, CreateConversation())
    assert plain.title == "Percakapan Baru"
    assert plain.context_type is ContextType.GENERAL
    with_persona = await s.conversations.create(
        ALICE,
        CreateConversation(title="Karier", persona_profile={"archetype": "X"}, result_id="r1"),
    )
    assert with_persona.context_type is ContextType.ASSESSMENT
    assert with_persona.context_data == {"persona_profile": {"archetype": "X"}, "result_id": "r1"}
    assert isinstance(s.events.published[0], ConversationCreated)


ONE_UNIT = pytest.mark.parametrize("in_process", [False, True], ids=["two-units", "one-unit"])


@ONE_UNIT
async def test_send_stores_both_messages_usage_and_events(in_process: bool) -> None:
    s = system(in_process=in_process)
    conv = await s.conversations.create(ALICE, CreateConversation())
    result = await s.messages.send(ALICE, conv.id, "Halo")
    assert result.user_message.sender_type is SenderType.USER
    assert result.assistant_message.parent_message_id == result.user_message.id
    assert result.assistant_message.metadata["model"] == "recording"
    assert result.usage.total_tokens == 12
    page = await s.messages.list(ALICE, conv.id, PageRequest(limit=10), include_usage=True)
    assert [m.content for m in page.page.items] == ["Halo", "answer 1"]
    assert page.usage[result.assistant_message.id].model_used == "recording"
    kinds = [type(e) for e in s.events.published]
    assert kinds.index(UserMessageStored) < kinds.index(AnswerProduced)
    refreshed, _ = await s.conversations.get(ALICE, conv.id)
    # Moved up to the turn: the question's time (two units) or the answer's (one).
    turn = (result.user_message.created_at, result.assistant_message.created_at)
    assert conv.updated_at < refreshed.updated_at in turn
    assert [d["messageId"] for d in s.notifier.events(ALICE)] == [str(result.assistant_message.id)]


@ONE_UNIT
async def test_when_the_model_fails_the_user_message_is_kept(in_process: bool) -> None:
    s = system(model=FailingModel(), in_process=in_process)
    conv = await s.conversations.create(ALICE, CreateConversation())
    with pytest.raises(AIServiceUnavailableError) as caught:
        await s.messages.send(ALICE, conv.id, "Apakah pesanku tersimpan?")
    stored = await s.messages.get(ALICE, conv.id, caught.value.user_message_id)
    assert stored.content == "Apakah pesanku tersimpan?"
    assert caught.value.details == {
        "user_message_id": str(stored.id),
        "reasons": ["offline: failed (unavailable)"],
    }
    assert isinstance(s.events.published[-1], AnswerFailed)


async def test_history_follows_the_branch_of_the_parent() -> None:
    model = RecordingModel()
    s = system(model=model)
    conv = await s.conversations.create(ALICE, CreateConversation())
    first = await s.messages.send(ALICE, conv.id, "one")
    await s.messages.send(ALICE, conv.id, "two")
    # Branch off the first answer: "two" and its answer are not on this branch.
    await s.messages.send(ALICE, conv.id, "three", parent_message_id=first.assistant_message.id)
    prompt = [m.content for m in model.requests[-1].messages[1:]]
    assert prompt == ["one", "answer 1", "three"]
    # Without a parent, the newest message is the parent.
    await s.messages.send(ALICE, conv.id, "four")
    prompt = [m.content for m in model.requests[-1].messages[1:]]
    assert prompt == ["one", "answer 1", "three", "answer 3", "four"]


@st.composite
def _message_forests(draw: st.DrawFn) -> tuple[list[Message], UUID | None]:
    """Messages oldest first, each the child of an earlier one or a root (regenerated
    answers are siblings), as read newest first, possibly out of order; and a parent."""
    count = draw(st.integers(0, 30))
    conversation = uuid4()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    messages: list[Message] = []
    for i in range(count):
        parent = draw(st.none() | st.integers(0, i - 1)) if i else None
        messages.append(
            Message(
                id=uuid4(),
                conversation_id=conversation,
                user_id=ALICE,
                sender_type=SenderType.USER if i % 2 == 0 else SenderType.ASSISTANT,
                content=f"m{i}",
                parent_message_id=messages[parent].id if parent is not None else None,
                created_at=start + timedelta(seconds=i),
            )
        )
    recent = list(reversed(messages))
    if draw(st.booleans()):
        recent = draw(st.permutations(recent))
    if count and draw(st.booleans()):  # only part of the conversation was read
        recent = recent[: draw(st.integers(1, count))]
    parent_id = draw(st.none() | st.sampled_from([m.id for m in messages] + [uuid4()]))
    return recent, parent_id


@settings(max_examples=300, deadline=None)
@given(case=_message_forests())
def test_the_branch_is_the_chain_of_parents_within_what_was_read(
    case: tuple[list[Message], UUID | None],
) -> None:
    recent, parent_id = case
    by_id = {m.id: m for m in recent}
    expected: list[Message] = []
    current = by_id.get(parent_id) if parent_id else None
    while current is not None:
        expected.append(current)
        current = by_id.get(current.parent_message_id) if current.parent_message_id else None
    expected.reverse()
    assert _branch(recent, parent_id) == expected


async def test_parent_from_another_conversation_is_refused() -> None:
    s = system()
    a = await s.conversations.create(ALICE, CreateConversation())
    b = await s.conversations.create(ALICE, CreateConversation())
    sent = await s.messages.send(ALICE, a.id, "hi")
    with pytest.raises(ValidationError):
        await s.messages.send(ALICE, b.id, "x", parent_message_id=sent.user_message.id)
    with pytest.raises(ValidationError):
        await s.messages.send(ALICE, b.id, "x", parent_message_id=uuid4())


@pytest.mark.parametrize("content", ["", "   ", "\n\t", "x" * 10_001])
async def test_empty_or_oversized_content_is_refused(content: str) -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    with pytest.raises(ValidationError):
        await s.messages.send(ALICE, conv.id, content)
    assert s.store.messages == {}


async def test_another_users_conversation_is_not_found_everywhere() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    sent = await s.messages.send(ALICE, conv.id, "mine")
    calls = [
        s.conversations.get(BOB, conv.id),
        s.conversations.update(BOB, conv.id, UpdateConversation(title="stolen")),
        s.conversations.delete(BOB, conv.id),
        s.messages.send(BOB, conv.id, "hello"),
        s.messages.list(BOB, conv.id, PageRequest(limit=5)),
        s.messages.get(BOB, conv.id, sent.user_message.id),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            await call
    listed = await s.conversations.list(BOB, ConversationFilter(), PageRequest(limit=10))
    assert listed.items == []
    mine, _ = await s.conversations.get(ALICE, conv.id)
    assert mine.title != "stolen"


async def test_update_archive_and_delete() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    updated = await s.conversations.update(
        ALICE,
        conv.id,
        UpdateConversation(
            title="Rencana", status=ConversationStatus.ARCHIVED, metadata={"pinned": True}
        ),
    )
    assert (updated.title, updated.status, updated.metadata) == (
        "Rencana",
        ConversationStatus.ARCHIVED,
        {"pinned": True},
    )
    active = await s.conversations.list(ALICE, ConversationFilter(), PageRequest(limit=10))
    archived = await s.conversations.list(
        ALICE,
        ConversationFilter(statuses=frozenset({ConversationStatus.ARCHIVED})),
        PageRequest(limit=10),
    )
    assert active.items == []
    assert [c.id for c in archived.items] == [conv.id]
    with pytest.raises(ValidationError):
        await s.conversations.update(
            ALICE, conv.id, UpdateConversation(status=ConversationStatus.DELETED)
        )
    await s.conversations.delete(ALICE, conv.id)
    with pytest.raises(NotFoundError):
        await s.conversations.get(ALICE, conv.id)
    with pytest.raises(NotFoundError):
        await s.conversations.delete(ALICE, conv.id)
    with pytest.raises(NotFoundError):
        await s.messages.send(ALICE, conv.id, "still there?")


async def test_message_rate_limit_and_its_window() -> None:
    clock = FakeClock()
    s = system(clock=clock, rate_policy=RatePolicy(messages_per_minute=3, conversations_per_day=2))
    conv = await s.conversations.create(ALICE, CreateConversation())
    for _ in range(3):
        await s.messages.send(ALICE, conv.id, "hi")
    with pytest.raises(RateLimitedError) as caught:
        await s.messages.send(ALICE, conv.id, "one too many")
    assert 1 <= caught.value.retry_after <= 60
    # Another user is not affected.
    other = await s.conversations.create(BOB, CreateConversation())
    await s.messages.send(BOB, other.id, "hi")
    clock.advance(61)
    await s.messages.send(ALICE, conv.id, "after a minute")
    await s.conversations.create(ALICE, CreateConversation())
    with pytest.raises(RateLimitedError) as daily:
        await s.conversations.create(ALICE, CreateConversation())
    assert daily.value.retry_after > 3600


async def test_language_follows_settings_and_conversation_metadata() -> None:
    model = RecordingModel()
    s = system(model=model, settings=ChatSettings(language="en"))
    conv = await s.conversations.create(ALICE, CreateConversation())
    assert conv.title == "New Conversation"
    await s.messages.send(ALICE, conv.id, "hi")
    assert model.requests[-1].language == "en"
    indo = await s.conversations.create(ALICE, CreateConversation(metadata={"language": "id"}))
    await s.messages.send(ALICE, indo.id, "hai")
    assert model.requests[-1].language == "id"
    assert "Kamu adalah konselor karier" in model.requests[-1].messages[0].content


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(count=st.integers(0, 30), page_size=st.integers(1, 7), same_time=st.booleans())
async def test_pagination_returns_every_conversation_exactly_once(
    count: int, page_size: int, same_time: bool
) -> None:
    clock = FakeClock(step=timedelta(0) if same_time else timedelta(microseconds=1))
    s = system(clock=clock)
    created = {(await s.conversations.create(ALICE, CreateConversation())).id for _ in range(count)}
    seen: list[UUID] = []
    request = PageRequest(limit=page_size)
    for _ in range(count + 2):
        page = await s.conversations.list(ALICE, ConversationFilter(), request)
        seen.extend(c.id for c in page.items)
        if page.next_cursor is None:
            break
        request = PageRequest(limit=page_size, after=decode_cursor(page.next_cursor))
    assert len(seen) == len(set(seen)) == count
    assert set(seen) == created
    # Offset pages (the ``page`` parameter) agree with the cursor pages.
    by_offset: list[UUID] = []
    for number in range(count // page_size + 1):
        page = await s.conversations.list(
            ALICE, ConversationFilter(), PageRequest(limit=page_size, offset=number * page_size)
        )
        by_offset.extend(c.id for c in page.items)
    assert by_offset == seen


async def test_message_pagination_and_get_with_messages() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    for i in range(5):
        await s.messages.send(ALICE, conv.id, f"q{i}")
    seen: list[str] = []
    request = PageRequest(limit=3)
    while True:
        page = (await s.messages.list(ALICE, conv.id, request)).page
        seen.extend(m.content for m in page.items)
        if page.next_cursor is None:
            break
        request = PageRequest(limit=3, after=decode_cursor(page.next_cursor))
    assert seen == [x for i in range(5) for x in (f"q{i}", f"answer {i + 1}")]
    _, latest = await s.conversations.get(ALICE, conv.id, message_limit=3)
    assert [m.content for m in latest] == ["answer 4", "q4", "answer 5"]
    assert all(m.status is MessageStatus.COMPLETE for m in latest)


async def test_answers_cut_short_still_reach_the_usage_ledger() -> None:
    model = "m/paid"
    broken = ("partial", 3, ModelError(FailureKind.UNAVAILABLE, "gone", model=model))
    scripted = ScriptedModel({model: [broken, "one two three four five six"]})
    clock = FakeClock()
    s = system(model=scripted, chain=ModelChain(primary=model, free_only=False), clock=clock)
    conv = await s.conversations.create(ALICE, CreateConversation())

    updates = [u async for u in await s.messages.stream(ALICE, conv.id, "first")]
    assert isinstance(updates[-1], StreamFailed)
    clock.advance(60)  # past the model's cool-down
    stream = await s.messages.stream(ALICE, conv.id, "second")
    await anext(stream)  # user_message
    await anext(stream)  # the first piece
    await stream.aclose()  # the client went away

    records = sorted(s.store.usage.values(), key=lambda r: r.created_at)
    assert [r.model_used for r in records] == [model, model]
    # No answer of the model has told its price yet: the cost is not known.
    assert all(r.metadata == {"estimated": True, "cost_unknown": True} for r in records)
    assert all(r.usage.cost == 0 for r in records)
    assert records[0].usage.completion_tokens > 0
    assert not records[0].usage.is_free_model
    answers = [m for m in s.store.messages.values() if m.sender_type.value == "assistant"]
    assert {m.status.value for m in answers} == {"failed", "cancelled"}
    # Every answer says how long it took, whatever its end (the contract's message shape).
    assert all(m.metadata["processing_time_ms"] >= 0 for m in answers)
    assert all(m.metadata["model"] == model for m in answers)


async def test_a_paid_answer_cut_short_costs_its_tokens_at_the_models_last_price() -> None:
    model = "m/paid"
    scripted = ScriptedModel({model: ["a whole answer", "one two three four five six"]})
    chain = ModelChain(primary=model, free_only=False, daily_budget_usd=0.01)
    s = system(model=scripted, chain=chain)
    conv = await s.conversations.create(ALICE, CreateConversation())
    await s.messages.send(ALICE, conv.id, "first")  # 13 tokens for 0.002 USD

    stream = await s.messages.stream(ALICE, conv.id, "second")
    await anext(stream)  # user_message
    await anext(stream)  # the first piece
    await stream.aclose()  # the client went away: no usage from upstream

    complete, cut = sorted(s.store.usage.values(), key=lambda r: r.created_at)
    assert complete.usage.cost == pytest.approx(0.002)
    assert cut.metadata == {"estimated": True}
    price = 0.002 / 13
    assert cut.usage.cost == pytest.approx(price * cut.usage.total_tokens)
    assert cut.usage.cost > 0.008  # the prompt alone is long: the budget is spent now
    # The budget counts it: the paid model is not called again today.
    calls = len(scripted.calls)
    with pytest.raises(AIServiceUnavailableError) as failed:
        await s.messages.send(ALICE, conv.id, "third")
    [reason] = failed.value.reasons
    assert reason.startswith(f"{model}: skipped (daily budget spent")
    assert len(scripted.calls) == calls


async def test_every_new_answer_is_told_to_the_students_sockets() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    sent = await s.messages.send(ALICE, conv.id, "Karier apa yang cocok?")
    streamed = [u async for u in await s.messages.stream(ALICE, conv.id, "Dan jurusan?")]
    completed = streamed[-1]
    assert isinstance(completed, StreamCompleted)
    told = s.notifier.events(ALICE, "chat_message")
    answers = [sent.assistant_message, completed.assistant_message]
    assert told == [
        {
            "conversationId": str(conv.id),
            "messageId": str(m.id),
            "preview": preview(m.content),
        }
        for m in answers
    ]
    assert all(0 < len(t["preview"]) <= PREVIEW_LENGTH for t in told)
    assert s.notifier.events(BOB) == []


async def test_an_answer_cut_short_or_failed_is_not_told_and_a_broken_notifier_costs_nothing() -> (
    None
):
    s = system(model=FailingModel(FailureKind.UNAVAILABLE))
    conv = await s.conversations.create(ALICE, CreateConversation())
    with pytest.raises(AIServiceUnavailableError):
        await s.messages.send(ALICE, conv.id, "hello")
    assert s.notifier.events(ALICE, "chat_message") == []

    healthy = system()
    conv = await healthy.conversations.create(ALICE, CreateConversation())

    async def broken(user_id: UUID, event: str, data: dict[str, Any]) -> None:
        raise ConnectionError("broker away")

    healthy.notifier.notify = broken  # type: ignore[method-assign]
    sent = await healthy.messages.send(ALICE, conv.id, "hello")
    assert sent.assistant_message.content  # the answer stands


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("short", "short"),
        ("  spread \n over\tlines  ", "spread over lines"),
        ("word " * 40, ("word " * 23).strip() + "…"),
        ("x" * 200, "x" * 119 + "…"),
    ],
)
def test_preview(text: str, expected: str) -> None:
    assert preview(text) == expected
    assert len(preview(text)) <= PREVIEW_LENGTH


class _StaleOnce:
    """A unit-of-work factory whose first ``stale`` commits find a read answered from
    memory out of date, before anything is written (as the PostgreSQL adapter does)."""

    def __init__(self, inner: Any, stale: int) -> None:
        self._inner, self.stale, self.opened = inner, stale, 0

    def __call__(self, user_id: UUID) -> Any:
        self.opened += 1
        unit = self._inner(user_id)
        commit = unit.commit

        async def checked_commit() -> None:
            if self.stale:
                self.stale -= 1
                raise StaleReadError("changed since it was remembered")
            await commit()

        unit.commit = checked_commit
        return unit


def _messages_on(s: InMemorySystem, units: Any, per_minute: int) -> MessageService:
    return MessageService(
        uow=units,
        clock=s.clock,
        gateway=s.gateway,
        limits=RateLimits(s.limiter, RatePolicy(messages_per_minute=per_minute)),
        events=s.events,
        settings=s.settings,
        notifier=s.notifier,
    )


async def test_a_question_decided_on_an_out_of_date_read_is_asked_again_once() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    units = _StaleOnce(s.uow, stale=1)
    # One message a minute: the second attempt is not counted again.
    messages = _messages_on(s, units, per_minute=1)
    result = await messages.send(ALICE, conv.id, "Halo")
    assert units.opened == 3  # the question twice, then the answer
    page = await s.messages.list(ALICE, conv.id, PageRequest(limit=10))
    assert [m.content for m in page.page.items] == ["Halo", result.assistant_message.content]
    stored = [e for e in s.events.published if isinstance(e, UserMessageStored)]
    assert [e.message_id for e in stored] == [result.user_message.id]


async def test_a_second_stale_read_in_a_row_is_not_hidden() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    messages = _messages_on(s, _StaleOnce(s.uow, stale=2), per_minute=10)
    with pytest.raises(StaleReadError):
        await messages.send(ALICE, conv.id, "Halo")
    assert (await s.messages.list(ALICE, conv.id, PageRequest(limit=10))).page.items == []


class _Broken(RecordingModel):
    """A model that answers in process and fails as a bug would, not as a model does."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        raise RuntimeError("the advisor broke")


def _turns_on(s: InMemorySystem, units: Any, model: Any) -> MessageService:
    """A message service on ``units`` whose gateway answers in process with ``model``."""
    gateway = ModelGateway(
        provider=model,
        chain=ModelChain(primary="offline"),
        clock=s.clock,
        limiter=s.limiter,
        spend=InMemorySpendLedger(s.store),
        events=s.events,
        in_process=True,
    )
    return MessageService(
        uow=units,
        clock=s.clock,
        gateway=gateway,
        limits=RateLimits(s.limiter, RatePolicy(messages_per_minute=1)),
        events=s.events,
        settings=s.settings,
        notifier=s.notifier,
    )


def test_the_offline_advisor_answers_in_process_and_other_models_do_not() -> None:
    assert in_memory_system().gateway.in_process
    assert not in_memory_system(model=RecordingModel()).gateway.in_process


async def test_an_in_process_turn_is_one_unit_of_work() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    units = _StaleOnce(s.uow, stale=0)
    result = await _turns_on(s, units, RecordingModel()).send(ALICE, conv.id, "Halo")
    assert units.opened == 1
    page = await s.messages.list(ALICE, conv.id, PageRequest(limit=10), include_usage=True)
    assert [m.id for m in page.page.items] == [result.user_message.id, result.assistant_message.id]
    assert list(page.usage) == [result.assistant_message.id]


async def test_an_in_process_turn_on_an_out_of_date_read_is_run_again_once() -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    model = RecordingModel()
    units = _StaleOnce(s.uow, stale=1)
    # One message a minute: the second attempt is not counted again.
    result = await _turns_on(s, units, model).send(ALICE, conv.id, "Halo")
    assert units.opened == 2
    page = await s.messages.list(ALICE, conv.id, PageRequest(limit=10), include_usage=True)
    assert [m.content for m in page.page.items] == ["Halo", result.assistant_message.content]
    assert list(page.usage) == [result.assistant_message.id]
    stored = [e for e in s.events.published if isinstance(e, UserMessageStored)]
    assert [e.message_id for e in stored] == [result.user_message.id]
    answered = [e for e in s.events.published if isinstance(e, AnswerProduced)]
    assert [e.message_id for e in answered] == [result.assistant_message.id]

    again = _turns_on(s, _StaleOnce(s.uow, stale=2), model)
    other = await s.conversations.create(BOB, CreateConversation())
    with pytest.raises(StaleReadError):
        await again.send(BOB, other.id, "Halo")
    assert (await s.messages.list(BOB, other.id, PageRequest(limit=10))).page.items == []


@pytest.mark.parametrize(
    ("model", "raised"),
    [(FailingModel(), AIServiceUnavailableError), (_Broken(), RuntimeError)],
    ids=["no-model-answered", "bug"],
)
async def test_an_in_process_model_that_fails_keeps_the_question_alone(
    model: Any, raised: type[Exception]
) -> None:
    s = system()
    conv = await s.conversations.create(ALICE, CreateConversation())
    with pytest.raises(raised):
        await _turns_on(s, s.uow, model).send(ALICE, conv.id, "Apakah pesanku tersimpan?")
    page = await s.messages.list(ALICE, conv.id, PageRequest(limit=10), include_usage=True)
    assert [m.content for m in page.page.items] == ["Apakah pesanku tersimpan?"]
    assert page.usage == {}
    refreshed, _ = await s.conversations.get(ALICE, conv.id)
    assert refreshed.updated_at == page.page.items[0].created_at
    assert s.notifier.sent == []


@given(
    text=st.lists(
        st.sampled_from(["kata", " ", "\n\t  ", " " * 90, "x" * 35, "…", "\u00a0"]), max_size=120
    ).map("".join)
)
@example(text=("kata" + " " * 200) * 4)
def test_preview_is_the_start_of_the_text_on_one_line(text: str) -> None:
    flat = " ".join(text.split())
    shown = preview(text)
    assert len(shown) <= PREVIEW_LENGTH
    if len(flat) <= PREVIEW_LENGTH:
        assert shown == flat
    else:
        assert shown.endswith("…")
        assert flat.startswith(shown[:-1])
        # Cut at a word when a space falls in the second half of what is shown.
        cut = flat[: PREVIEW_LENGTH - 1]
        space = cut.rfind(" ")
        expected = cut[:space] if space > PREVIEW_LENGTH // 2 else cut
        assert shown == expected.rstrip() + "…"
