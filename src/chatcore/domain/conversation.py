"""The Conversation aggregate."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from chatcore.domain.copying import shallow_copier
from chatcore.errors import InvalidStateError, ValidationError

__all__ = [
    "MAX_TITLE_LENGTH",
    "ContextType",
    "Conversation",
    "ConversationStatus",
]

MAX_TITLE_LENGTH = 255


class ConversationStatus(enum.StrEnum):
    """Lifecycle of a conversation. ``deleted`` is terminal (a soft delete)."""

    ACTIVE = "active"
    ARCHIVED = "archived"
    DELETED = "deleted"


class ContextType(enum.StrEnum):
    """What a conversation is about; ``assessment`` ones carry a profile in ``context_data``."""

    GENERAL = "general"
    ASSESSMENT = "assessment"
    CAREER_GUIDANCE = "career_guidance"


_ALLOWED: dict[ConversationStatus, frozenset[ConversationStatus]] = {
    ConversationStatus.ACTIVE: frozenset({ConversationStatus.ARCHIVED, ConversationStatus.DELETED}),
    ConversationStatus.ARCHIVED: frozenset({ConversationStatus.ACTIVE, ConversationStatus.DELETED}),
    ConversationStatus.DELETED: frozenset(),
}


def clean_title(title: str) -> str:
    """Strip a title and check its length; an empty title is refused."""
    cleaned = " ".join(title.split())
    if not cleaned:
        raise ValidationError("title must not be empty")
    if len(cleaned) > MAX_TITLE_LENGTH:
        raise ValidationError(f"title must be at most {MAX_TITLE_LENGTH} characters")
    return cleaned


@dataclass(slots=True, kw_only=True)
class Conversation:
    """A user's conversation with the advisor.

    Attributes:
        id: UUIDv7.
        user_id: the owner; every read is scoped to it.
        title: shown in conversation lists.
        context_type: what the conversation is about.
        context_data: free JSON; for assessment conversations the result id, scores and persona.
        metadata: free JSON owned by clients.
        status: ``active``, ``archived`` or ``deleted``.
        created_at: creation time (UTC).
        updated_at: last change or last message (UTC); lists are ordered by it.
        result_id: the assessment result an assessment conversation was made for; at
            most one conversation exists per result (a unique constraint).
    """

    id: UUID
    user_id: UUID
    title: str
    context_type: ContextType = ContextType.GENERAL
    context_data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    status: ConversationStatus = ConversationStatus.ACTIVE
    created_at: datetime
    updated_at: datetime
    result_id: str | None = None

    @property
    def is_deleted(self) -> bool:
        return self.status is ConversationStatus.DELETED

    def change_status(self, new: ConversationStatus, now: datetime) -> None:
        """Move to ``new``; a no-op when already there, an error when not allowed."""
        if new is self.status:
            return
        if new not in _ALLOWED[self.status]:
            raise InvalidStateError(
                f"a conversation cannot go from {self.status.value} to {new.value}"
            )
        self.status = new
        self.updated_at = now

    def rename(self, title: str, now: datetime) -> None:
        self.title = clean_title(title)
        self.updated_at = now

    def replace_metadata(self, metadata: dict[str, Any], now: datetime) -> None:
        self.metadata = dict(metadata)
        self.updated_at = now

    def replace_context_data(self, context_data: dict[str, Any], now: datetime) -> None:
        self.context_data = dict(context_data)
        self.updated_at = now

    def touch(self, now: datetime) -> None:
        """Record activity (a new message) so the conversation sorts first."""
        self.updated_at = max(self.updated_at, now)

    def copy(self) -> Conversation:
        """A copy whose fields change apart from this one's. The dicts are shared: the
        methods above replace them, never change them in place."""
        return _copy_conversation(self)


_copy_conversation = shallow_copier(Conversation)
