"""Domain events, recorded by the use cases and published after commit."""

from __future__ import annotations

from uuid import UUID

import msgspec

__all__ = [
    "AnswerFailed",
    "AnswerProduced",
    "ConversationCreated",
    "ConversationStatusChanged",
    "DomainEvent",
    "UserMessageStored",
]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    user_id: UUID


class ConversationCreated(_Event, frozen=True, kw_only=True, tag="conversation.created"):
    conversation_id: UUID
    context_type: str


class ConversationStatusChanged(
    _Event, frozen=True, kw_only=True, tag="conversation.status_changed"
):
    conversation_id: UUID
    old: str
    new: str


class UserMessageStored(_Event, frozen=True, kw_only=True, tag="message.user_stored"):
    conversation_id: UUID
    message_id: UUID
    length: int


class AnswerProduced(_Event, frozen=True, kw_only=True, tag="message.answered"):
    conversation_id: UUID
    message_id: UUID
    model: str
    prompt_tokens: int
    completion_tokens: int
    processing_time_ms: int


class AnswerFailed(_Event, frozen=True, kw_only=True, tag="message.answer_failed"):
    conversation_id: UUID
    user_message_id: UUID
    reasons: list[str]


DomainEvent = (
    ConversationCreated
    | ConversationStatusChanged
    | UserMessageStored
    | AnswerProduced
    | AnswerFailed
)
