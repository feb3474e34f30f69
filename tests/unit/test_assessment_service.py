"""The assessment journey in the core: events, notifications, exactly once per result."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any
from uuid import UUID

import msgspec
import pytest

from adapters.memory import (
    InMemoryAssessmentSource,
    InMemoryEventPublisher,
    InMemoryIntegrationPublisher,
    InMemoryRateLimiter,
    InMemorySpendLedger,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
)
from adapters.offline import OfflineChatModel
from chatcore.assessment import ArchiveResult, ArchiveUnavailableError, decode_analysis_event
from chatcore.clock import FakeClock
from chatcore.domain import ConversationStatus
from chatcore.fallback import ModelChain, ModelGateway
from chatcore.models import FailureKind, ModelError
from chatcore.services import ChatSettings
from chatcore.services.assessment import ANNOUNCED_AT, AssessmentService
from tests.conftest import load_fixture
from tests.unit.models import ScriptedModel

USER = UUID("5f0c3b1e-7d2a-4c61-9a7e-2b8f4d6c1a90")


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[UUID, str, dict[str, Any]]] = []

    async def notify(self, user_id: UUID, event: str, data: dict[str, Any]) -> None:
        self.sent.append((user_id, event, data))


def build(
    model: Any = None, chain: ModelChain | None = None
) -> tuple[
    AssessmentService,
    InMemoryStore,
    Recorder,
    InMemoryIntegrationPublisher,
    InMemoryAssessmentSource,
]:
    clock = FakeClock()
    store = InMemoryStore()
    source = InMemoryAssessmentSource()
    result = msgspec.convert(load_fixture("archive_result_v2.json")["data"], ArchiveResult)
    source.add(result)
    notifier, publisher, events = (
        Recorder(),
        InMemoryIntegrationPublisher(),
        InMemoryEventPublisher(),
    )
    gateway = ModelGateway(
        provider=model or OfflineChatModel(),
        chain=chain or ModelChain(primary="offline"),
        clock=clock,
        limiter=InMemoryRateLimiter(clock),
        spend=InMemorySpendLedger(store),
        events=events,
    )
    service = AssessmentService(
        uow=InMemoryUnitOfWorkFactory(store),
        clock=clock,
        source=source,
        notifier=notifier,
        publisher=publisher,
        gateway=gateway,
        events=events,
        settings=ChatSettings(),
    )
    return service, store, notifier, publisher, source


def event(name: str, **changes: Any) -> Any:
    body = load_fixture(f"event_analysis_{name}.json")
    body.update(changes)
    return decode_analysis_event(json.dumps(body).encode())


async def test_completed_creates_the_conversation_notifies_and_publishes() -> None:
    service, store, notifier, publisher, _ = build()
    made = await service.handle(event("completed"))
    assert made is not None
    assert made.created
    assert len(store.conversations) == 1
    assert made.welcome_message is not None
    assert made.welcome_message.metadata["model"] == "template"
    stages = [(e, d.get("stage"), d.get("progress")) for _, e, d in notifier.sent]
    assert stages == [
        ("assessment_progress", "analysis_complete", 75),
        ("assessment_progress", "chatbot_ready", 100),
        ("chatbot_ready", None, None),
    ]
    assert notifier.sent[-1][2] == {
        "conversationId": str(made.conversation.id),
        "resultId": "3d7a9c2e-5b4f-4a1d-9e8c-7f6b5a4d3c2b",
    }
    key, payload = publisher.published[0]
    assert key == "chatbot.conversation_ready"
    assert payload["eventType"] == "chatbot.conversation_ready"
    assert payload["conversationId"] == str(made.conversation.id)
    assert payload["userId"] == str(USER)


async def test_the_same_event_twice_and_at_once_gives_one_conversation() -> None:
    service, store, _, _, _ = build()
    results = await asyncio.gather(*(service.handle(event("completed")) for _ in range(3)))
    await service.handle(event("completed"))
    assert len(store.conversations) == 1
    assert len(store.messages) == 1  # one welcome
    assert len({r.conversation.id for r in results if r}) == 1
    assert sum(1 for r in results if r and r.created) == 1


async def test_started_and_failed_become_notifications() -> None:
    service, store, notifier, _, _ = build()
    await service.handle(event("started"))
    await service.handle(event("failed"))
    assert notifier.sent[0][1:] == (
        "assessment_progress",
        {
            "stage": "analysis_started",
            "progress": 50,
            "title": "Analisis dimulai",
            "message": "Hasil asesmenmu sedang dianalisis.",
            "resultId": None,
        },
    )
    assert notifier.sent[1][1:] == (
        "analysis-failed",
        {
            "resultId": None,
            "jobId": "a9b8c7d6-e5f4-4a3b-2c1d-0e9f8a7b6c5d",
            "error": "AI service timeout after 3 retries",
        },
    )
    assert store.conversations == {}


@pytest.mark.parametrize("problem", ["other user", "not completed", "unknown"])
async def test_results_that_must_create_nothing(problem: str) -> None:
    service, store, _, publisher, source = build()
    result_id = "3d7a9c2e-5b4f-4a1d-9e8c-7f6b5a4d3c2b"
    if problem == "other user":
        source.results[result_id].user_id = uuid.uuid4()
    elif problem == "not completed":
        source.results[result_id].status = "processing"
    else:
        source.results.clear()
    assert await service.handle(event("completed")) is None
    assert store.conversations == {}
    assert publisher.published == []


async def test_archive_down_is_a_passing_failure() -> None:
    service, store, _, _, source = build()
    source.down = True
    with pytest.raises(ArchiveUnavailableError):
        await service.handle(event("completed"))
    source.down = False
    assert await service.handle(event("completed")) is not None
    assert len(store.conversations) == 1


async def test_a_configured_model_writes_the_welcome_else_the_template() -> None:
    chain = ModelChain(primary="a/m:free")
    service, _, _, _, _ = build(ScriptedModel({"a/m:free": ["Halo dari model!"]}), chain)
    made = await service.handle(event("completed"))
    assert made is not None
    assert made.welcome_message is not None
    assert made.welcome_message.content == "Halo dari model!"
    assert made.welcome_message.metadata["model"] == "a/m:free"
    failing = ScriptedModel(
        {"a/m:free": [ModelError(FailureKind.UNAVAILABLE, "x", model="a/m:free")]}
    )
    service, _, _, _, _ = build(failing, chain)
    made = await service.handle(event("completed"))
    assert made is not None
    assert made.welcome_message is not None
    assert made.welcome_message.metadata["model"] == "template"
    assert "The Analytical Innovator" in made.welcome_message.content


@pytest.mark.parametrize(
    "metadata",
    [None, {}, {"processingTime": 98121.5, "retryCount": "0"}, {"assessmentName": 7}],
    ids=["null", "empty", "float-and-text", "number-name"],
)
async def test_informational_metadata_of_any_shape_does_not_cost_the_event(
    metadata: Any,
) -> None:
    service, store, notifier, _, _ = build()
    await service.handle(event("completed", metadata=metadata))
    assert len(store.conversations) == 1
    assert [name for _, name, _ in notifier.sent][-1] == "chatbot_ready"


def announcements(notifier: Recorder, publisher: InMemoryIntegrationPublisher) -> list[str]:
    told = [e for _, e, d in notifier.sent if e == "chatbot_ready" or d.get("progress") == 75]
    return told + [key for key, _ in publisher.published]


async def test_the_same_event_again_has_no_second_effect() -> None:
    service, store, notifier, publisher, source = build()
    first = await service.handle(event("completed"))
    assert first is not None
    told = announcements(notifier, publisher)
    assert told == ["assessment_progress", "chatbot_ready", "chatbot.conversation_ready"]
    announced = store.conversations[first.conversation.id].metadata[ANNOUNCED_AT]
    assert announced
    assert store.conversations[first.conversation.id].updated_at == first.conversation.updated_at

    again = await service.handle(event("completed"))
    assert again is not None
    assert (again.conversation.id, again.created) == (first.conversation.id, False)
    assert announcements(notifier, publisher) == told  # nobody told twice
    assert len(source.requests) == 1  # not even the archive asked again
    assert len(store.messages) == 1


async def test_an_announcement_that_failed_is_made_by_the_retry() -> None:
    service, store, _, publisher, _ = build()

    async def down(routing_key: str, payload: dict[str, Any]) -> None:
        raise ConnectionError("broker away")

    publish = publisher.publish
    publisher.publish = down  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await service.handle(event("completed"))
    [conversation] = store.conversations.values()
    assert ANNOUNCED_AT not in conversation.metadata

    publisher.publish = publish  # type: ignore[method-assign]
    retried = await service.handle(event("completed"))
    assert retried is not None
    assert retried.conversation.id == conversation.id
    assert [key for key, _ in publisher.published] == ["chatbot.conversation_ready"]
    await service.handle(event("completed"))
    assert len(publisher.published) == 1


def slow_publisher(publisher: InMemoryIntegrationPublisher, fail_first: bool = False) -> None:
    """Publishing takes a while (a broker round trip), so copies handled at once overlap;
    with ``fail_first`` the first publication fails."""
    publish = publisher.publish
    calls = 0

    async def slow(routing_key: str, payload: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        if fail_first and calls == 1:
            raise ConnectionError("broker away")
        await publish(routing_key, payload)

    publisher.publish = slow  # type: ignore[method-assign]


async def test_copies_of_the_event_handled_at_once_announce_once() -> None:
    service, store, notifier, publisher, _ = build()
    slow_publisher(publisher)
    made = await asyncio.gather(*(service.handle(event("completed")) for _ in range(3)))
    assert all(m is not None for m in made)
    assert len({m.conversation.id for m in made if m is not None}) == 1
    assert len(store.conversations) == 1
    ready = [e for _, e, _ in notifier.sent if e == "chatbot_ready"]
    assert ready == ["chatbot_ready"]
    assert [key for key, _ in publisher.published] == ["chatbot.conversation_ready"]
    [conversation] = store.conversations.values()
    assert conversation.metadata[ANNOUNCED_AT]


async def test_a_copy_waiting_on_an_announcement_that_fails_makes_it() -> None:
    # The first copy's announcement fails under the lock; its rollback lets the waiting
    # copy announce: nobody is left untold.
    service, store, _, publisher, _ = build()
    slow_publisher(publisher, fail_first=True)
    outcomes = await asyncio.gather(
        *(service.handle(event("completed")) for _ in range(2)), return_exceptions=True
    )
    assert sum(isinstance(o, ConnectionError) for o in outcomes) == 1
    assert [key for key, _ in publisher.published] == ["chatbot.conversation_ready"]
    [conversation] = store.conversations.values()
    assert conversation.metadata[ANNOUNCED_AT]


async def test_a_conversation_its_student_deleted_is_not_made_again_by_the_event() -> None:
    service, store, notifier, publisher, _ = build()
    made = await service.handle(event("completed"))
    assert made is not None
    conversation = store.conversations[made.conversation.id]
    conversation.change_status(ConversationStatus.DELETED, conversation.updated_at)
    sent = len(notifier.sent)

    assert await service.handle(event("completed")) is None
    assert list(store.conversations) == [made.conversation.id]
    assert len(notifier.sent) == sent
    assert len(publisher.published) == 1


async def test_asking_again_for_a_deleted_assessment_conversation_makes_a_new_one() -> None:
    service, store, _, publisher, _ = build()
    result_id = event("completed").resultId
    first = await service.from_assessment(USER, result_id)
    conversation = store.conversations[first.conversation.id]
    conversation.change_status(ConversationStatus.DELETED, conversation.updated_at)

    anew = await service.from_assessment(USER, result_id)
    assert anew.created
    assert anew.conversation.id != first.conversation.id
    assert anew.welcome_message is not None
    old = store.conversations[first.conversation.id]
    assert (old.status, old.result_id) == (ConversationStatus.DELETED, None)
    again = await service.from_assessment(USER, result_id)
    assert (again.conversation.id, again.created) == (anew.conversation.id, False)
    assert [key for key, _ in publisher.published] == ["chatbot.conversation_ready"] * 2
