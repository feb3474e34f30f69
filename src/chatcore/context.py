"""The context builder: what a model sees for one answer, within a token budget.

Order of the prompt: the system prompt (instructions plus, when there is one, the
profile summary), as much recent history as fits (newest kept first, sent oldest
first), and the latest user message. When the budget is tight the oldest history
goes first, then the full profile summary gives way to a compact one, then to none;
the instructions and the latest user message always stay (the latter trimmed in the
middle only if it alone cannot fit, which a budget that passed settings validation
never causes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chatcore.domain.message import Message, MessageStatus, SenderType
from chatcore.domain.profile import AssessmentProfile
from chatcore.models import ChatMessage
from chatcore.prompts import profile_summary, system_prompt
from chatcore.tokens import estimate_message_tokens, estimate_tokens

__all__ = ["BuiltContext", "build_context", "fit_messages", "minimum_budget"]

_TRIM_MARK = "\n[…]\n"


@dataclass(slots=True, frozen=True)
class BuiltContext:
    messages: tuple[ChatMessage, ...]
    estimated_tokens: int
    history_used: int
    history_dropped: int
    profile_included: str  # "full", "compact" or "none"


def minimum_budget(language: str) -> int:
    """The smallest budget that always keeps the instructions and a short question."""
    return estimate_message_tokens(system_prompt(language)) + 64


def _trim_middle(text: str, max_tokens: int) -> str:
    if estimate_tokens(text) <= max_tokens:
        return text
    keep = max(0, max_tokens * 4 - len(_TRIM_MARK) - 4)
    while keep > 0:
        head, tail = text[: keep // 2], text[len(text) - (keep - keep // 2) :]
        candidate = head + _TRIM_MARK + tail
        if estimate_tokens(candidate) <= max_tokens:
            return candidate
        keep -= max(1, keep // 8)
    return ""


# Looked up once: an enum member read through its class costs a Python-level lookup,
# and the history loop below reads these for every message of every turn.
_SYSTEM = SenderType.SYSTEM
_USER = SenderType.USER
_KEPT_STATUSES = (MessageStatus.COMPLETE, MessageStatus.CANCELLED)
"""Statuses whose text goes into the prompt: a failed or still streaming answer does not."""


def build_context(
    *,
    question: str,
    history: Sequence[Message],
    profile: AssessmentProfile | None,
    language: str,
    budget: int,
) -> BuiltContext:
    """Build the prompt for answering ``question``.

    Args:
        question: the latest user message.
        history: earlier messages of the branch, oldest first, without ``question``.
        profile: the user's assessment profile, if the conversation has one.
        language: ``id`` or ``en``.
        budget: the most estimated tokens the prompt may take.

    Returns:
        The messages, never over ``budget`` as long as ``budget >= minimum_budget(language)``,
        always starting with the system prompt and ending with the question.
    """
    instructions = system_prompt(language)
    base = estimate_message_tokens(instructions)
    room_for_question = max(1, budget - base - 4)
    question_text = _trim_middle(question, room_for_question) or question[:1]
    fixed = base + estimate_message_tokens(question_text)

    system_text = instructions
    included = "none"
    if profile is not None:
        for mode, compact in (("full", False), ("compact", True)):
            candidate = instructions + "\n\n" + profile_summary(profile, language, compact=compact)
            extra = estimate_message_tokens(candidate) - base
            if fixed + extra <= budget:
                system_text, included = candidate, mode
                break
    used = fixed + estimate_message_tokens(system_text) - base

    # One pass, newest first: every usable message is counted, and kept while it fits.
    # This loop runs over the whole history on every turn, so it is written flat.
    kept: list[ChatMessage] = []
    dropped = 0
    room = budget - used
    for message in reversed(history):
        content = message.content
        sender = message.sender_type
        # Blank content is tested without the copy strip() makes of every message.
        if (
            sender is _SYSTEM
            or not content
            or content.isspace()
            or message.status not in _KEPT_STATUSES
        ):
            continue
        if dropped:
            dropped += 1
            continue
        cost = estimate_message_tokens(content)
        if cost > room:
            dropped = 1
            continue
        room -= cost
        kept.append(ChatMessage("user" if sender is _USER else "assistant", content))
    kept.reverse()
    used = budget - room

    messages = (ChatMessage("system", system_text), *kept, ChatMessage("user", question_text))
    return BuiltContext(
        messages=messages,
        estimated_tokens=used,
        history_used=len(kept),
        history_dropped=dropped,
        profile_included=included,
    )


def fit_messages(messages: Sequence[ChatMessage], budget: int) -> tuple[ChatMessage, ...]:
    """Shrink an already built prompt to ``budget`` estimated tokens, for a model whose
    window is smaller than the configured budget.

    Drops the oldest history first, then cuts the system message's tail (the profile
    details come after the instructions), then trims the question in the middle. The
    first (system) and last (question) messages always stay.
    """
    if sum(estimate_message_tokens(m.content) for m in messages) <= budget or len(messages) < 2:
        return tuple(messages)
    system, *history, question = messages
    fixed = estimate_message_tokens(system.content) + estimate_message_tokens(question.content)
    kept: list[ChatMessage] = []
    used = fixed
    for message in reversed(history):
        cost = estimate_message_tokens(message.content)
        if used + cost > budget:
            break
        kept.append(message)
        used += cost
    kept.reverse()
    if used <= budget:
        return (system, *kept, question)
    question_tokens = estimate_message_tokens(question.content)
    room = max(budget - question_tokens, budget // 2)
    system_text = system.content
    if estimate_message_tokens(system_text) > room:
        keep_chars = max(0, (room - 4) * 4 - len(_TRIM_MARK))
        system_text = system_text[:keep_chars].rstrip() + _TRIM_MARK
    left = budget - estimate_message_tokens(system_text) - 4
    question_text = _trim_middle(question.content, max(1, left)) or question.content[:1]
    return (ChatMessage(system.role, system_text), ChatMessage(question.role, question_text))
