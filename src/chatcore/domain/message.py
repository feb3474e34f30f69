"""Messages and usage records."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from chatcore.domain.copying import shallow_copier

__all__ = ["Message", "MessageStatus", "SenderType", "Usage", "UsageRecord"]


class SenderType(enum.StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageStatus(enum.StrEnum):
    """``streaming`` while an answer is produced; then ``complete``, ``cancelled`` or ``failed``."""

    COMPLETE = "complete"
    STREAMING = "streaming"
    CANCELLED = "cancelled"
    FAILED = "failed"


@dataclass(slots=True, kw_only=True)
class Message:
    """One message. Regenerated answers are siblings: same ``parent_message_id``.

    ``metadata`` carries ``model``, ``finish_reason``, ``processing_time_ms`` and, for a
    regeneration, ``regenerated_from``.
    """

    id: UUID
    conversation_id: UUID
    user_id: UUID
    sender_type: SenderType
    content: str
    parent_message_id: UUID | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime

    def copy(self) -> Message:
        """A copy whose fields change apart from this one's, with a ``metadata`` dict
        of its own."""
        duplicate = _copy_message(self)
        duplicate.metadata = dict(self.metadata)
        return duplicate


_copy_message = shallow_copier(Message)


@dataclass(slots=True, frozen=True, kw_only=True)
class Usage:
    """Token counts and cost of one model answer (cost in USD credits)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    is_free_model: bool = True

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True, kw_only=True)
class UsageRecord:
    """One row of the usage ledger: what one answer cost and how long it took.

    ``attempts`` lists every rung of the model chain that was tried or skipped, in
    order (``"model: failed (rate_limited)"``, ``"model: answered"``).
    """

    id: UUID
    user_id: UUID
    conversation_id: UUID
    message_id: UUID
    model_used: str
    usage: Usage
    processing_time_ms: int
    created_at: datetime
    time_to_first_token_ms: int | None = None
    attempts: tuple[str, ...] = ()
    fell_back: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
