"""The context builder keeps within its budget and never loses what matters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from hypothesis import example, given, settings
from hypothesis import strategies as st

from chatcore.context import BuiltContext, build_context, minimum_budget
from chatcore.domain import Message, MessageStatus, SenderType, parse_profile
from chatcore.prompts import system_prompt
from chatcore.tokens import estimate_message_tokens
from tests.conftest import load_fixture

PROFILE = parse_profile(
    load_fixture("archive_result_v2.json")["data"]["assessment_data"],
    load_fixture("archive_result_v2.json")["data"]["persona_profile"],
)
CONV = uuid4()
USER = uuid4()
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _history(contents: list[str]) -> list[Message]:
    return [
        Message(
            id=uuid4(),
            conversation_id=CONV,
            user_id=USER,
            sender_type=SenderType.USER if i % 2 == 0 else SenderType.ASSISTANT,
            content=text,
            created_at=T0 + timedelta(seconds=i),
        )
        for i, text in enumerate(contents)
    ]


def _total(messages: tuple[Any, ...]) -> int:
    return sum(estimate_message_tokens(m.content) for m in messages)


def _in_english(messages: list[Message], extra: int) -> BuiltContext:
    """The prompt for "q" with ``extra`` tokens of budget above the minimum."""
    return build_context(
        question="q",
        history=messages,
        profile=None,
        language="en",
        budget=minimum_budget("en") + extra,
    )


texts = st.text(min_size=1, max_size=3000)
nonblank = texts.filter(lambda s: bool(s.strip()))


@settings(max_examples=200, deadline=None)
@given(
    history=st.lists(texts, max_size=30),
    question=st.text(min_size=1, max_size=10_000),
    language=st.sampled_from(["id", "en"]),
    extra=st.integers(min_value=0, max_value=8000),
    with_profile=st.booleans(),
)
def test_never_exceeds_budget_and_keeps_system_and_question(
    history: list[str], question: str, language: str, extra: int, with_profile: bool
) -> None:
    budget = minimum_budget(language) + extra
    built = build_context(
        question=question,
        history=_history(history),
        profile=PROFILE if with_profile else None,
        language=language,
        budget=budget,
    )
    assert _total(built.messages) <= budget
    assert built.estimated_tokens == _total(built.messages)
    assert built.messages[0].role == "system"
    assert built.messages[0].content.startswith(system_prompt(language))
    assert built.messages[-1].role == "user"
    # The question is sent whole whenever it fits beside the instructions.
    room = budget - estimate_message_tokens(system_prompt(language))
    if estimate_message_tokens(question) <= room:
        assert built.messages[-1].content == question


@settings(max_examples=100, deadline=None)
@given(history=st.lists(nonblank, min_size=1, max_size=40), extra=st.integers(0, 5000))
def test_keeps_the_most_recent_history_in_order(history: list[str], extra: int) -> None:
    messages = _history(history)
    built = _in_english(messages, extra)
    kept = [m.content for m in built.messages[1:-1]]
    # What is kept is a suffix of the history: the newest messages, oldest first.
    assert kept == [m.content for m in messages[len(messages) - len(kept) :]]
    assert built.history_used == len(kept)
    assert built.history_dropped == len(messages) - len(kept)


def test_a_large_budget_keeps_everything_and_the_full_profile() -> None:
    messages = _history(["Halo", "Halo! Ada yang bisa dibantu?", "Apa kekuatan saya?", "..."])
    built = build_context(
        question="Karier apa yang cocok?",
        history=messages,
        profile=PROFILE,
        language="id",
        budget=6000,
    )
    assert built.profile_included == "full"
    assert built.history_used == 4
    system = built.messages[0].content
    assert "IAS" in system
    assert "Investigatif–Artistik–Sosial" in system
    assert "Data Scientist" in system
    assert "Statistika" in system


def test_a_tight_budget_drops_history_before_the_compact_profile() -> None:
    long = "kata " * 2000
    messages = _history([long, long])
    budget = minimum_budget("en") + 300
    built = build_context(
        question="Which careers?", history=messages, profile=PROFILE, language="en", budget=budget
    )
    assert built.history_used == 0
    assert built.profile_included in {"full", "compact"}
    assert "Data Scientist" in built.messages[0].content


def test_failed_streaming_and_system_messages_are_not_history() -> None:
    messages = _history(["a", "b", "c", "d"])
    messages[1].status = MessageStatus.FAILED
    messages[2].status = MessageStatus.STREAMING
    messages[3].sender_type = SenderType.SYSTEM
    built = build_context(question="q", history=messages, profile=None, language="en", budget=6000)
    assert [m.content for m in built.messages[1:-1]] == ["a"]


@example(history=["a", " \n\t\u3000", "b", ""])
@given(history=st.lists(texts, max_size=20))
def test_history_is_every_message_with_some_visible_text_oldest_first(history: list[str]) -> None:
    # Blank messages (empty, or only whitespace of any kind) say nothing to a model.
    built = build_context(
        question="q", history=_history(history), profile=None, language="en", budget=10**7
    )
    assert [m.content for m in built.messages[1:-1]] == [t for t in history if t.strip()]


@settings(max_examples=150, deadline=None)
@given(
    history=st.lists(
        st.tuples(
            texts,
            st.sampled_from(list(MessageStatus)),
            st.sampled_from(list(SenderType)),
        ),
        max_size=40,
    ),
    extra=st.integers(0, 600),
)
@example(
    history=[("kata " * 400, MessageStatus.COMPLETE, SenderType.USER)] * 3
    + [("", MessageStatus.COMPLETE, SenderType.USER), ("x", MessageStatus.FAILED, SenderType.USER)]
    + [("kata " * 400, MessageStatus.CANCELLED, SenderType.ASSISTANT)] * 3,
    extra=600,
)
def test_dropped_counts_the_usable_messages_left_out_and_nothing_else(
    history: list[tuple[str, MessageStatus, SenderType]], extra: int
) -> None:
    messages = _history([text for text, _, _ in history])
    for message, (_, status, sender) in zip(messages, history, strict=True):
        message.status, message.sender_type = status, sender
    usable = [
        m
        for m in messages
        if m.content.strip()
        and m.sender_type is not SenderType.SYSTEM
        and m.status in (MessageStatus.COMPLETE, MessageStatus.CANCELLED)
    ]
    built = _in_english(messages, extra)
    kept = built.messages[1:-1]
    # The newest usable messages that fit, oldest first, each with its sender's role.
    tail = usable[len(usable) - len(kept) :]
    assert [m.content for m in kept] == [m.content for m in tail]
    assert [m.role for m in kept] == [
        "user" if m.sender_type is SenderType.USER else "assistant" for m in tail
    ]
    assert built.history_used == len(kept)
    assert built.history_dropped == len(usable) - len(kept)
