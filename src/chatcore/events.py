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
    "ModelCallFailed",
    "ModelFellBack",
    "ModelSkipped",
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
    cost: float = 0.0
    is_free_model: bool = True
    time_to_first_token_ms: int | None = None
    fell_back: bool = False
    streamed: bool = False


class AnswerFailed(_Event, frozen=True, kw_only=True, tag="message.answer_failed"):
    conversation_id: UUID
    user_message_id: UUID
    reasons: list[str]


class _GatewayEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    model: str


class ModelCallFailed(_GatewayEvent, frozen=True, kw_only=True, tag="model.failed"):
    """A call to ``model`` failed; ``cooldown_seconds`` > 0 when the model now rests."""

    kind: str
    detail: str
    retry_after: float | None = None
    cooldown_seconds: float = 0.0


class ModelSkipped(_GatewayEvent, frozen=True, kw_only=True, tag="model.skipped"):
    """``model`` was not called. ``code`` is one of ``paid_disabled``, ``budget_spent``,
    ``cooling_down``, ``context_window``, ``free_quota``; ``reason`` says it in words."""

    code: str
    reason: str


class ModelFellBack(_GatewayEvent, frozen=True, kw_only=True, tag="model.fell_back"):
    """An answer came from ``model`` after ``from_models`` failed or were skipped."""

    from_models: list[str]


DomainEvent = (
    ConversationCreated
    | ConversationStatusChanged
    | UserMessageStored
    | AnswerProduced
    | AnswerFailed
    | ModelCallFailed
    | ModelSkipped
    | ModelFellBack
)
