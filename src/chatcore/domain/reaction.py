"""A student's reactions to the advisor's answers."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from uuid import UUID

__all__ = ["MAX_FEEDBACK_LENGTH", "Reaction", "ReactionKind"]

MAX_FEEDBACK_LENGTH: Final = 2000
"""Characters of free-text feedback kept with a reaction, at most."""


class ReactionKind(enum.StrEnum):
    """Two pairs, each a choice of one: ``like``/``dislike``, ``helpful``/``not_helpful``."""

    LIKE = "like"
    DISLIKE = "dislike"
    HELPFUL = "helpful"
    NOT_HELPFUL = "not_helpful"

    @property
    def opposite(self) -> ReactionKind:
        """The other reaction of the pair, which this one replaces."""
        return _OPPOSITES[self]


_OPPOSITES: Final = {
    ReactionKind.LIKE: ReactionKind.DISLIKE,
    ReactionKind.DISLIKE: ReactionKind.LIKE,
    ReactionKind.HELPFUL: ReactionKind.NOT_HELPFUL,
    ReactionKind.NOT_HELPFUL: ReactionKind.HELPFUL,
}


@dataclass(slots=True, kw_only=True)
class Reaction:
    """One reaction of the message's student: at most one per kind and message."""

    id: UUID
    message_id: UUID
    conversation_id: UUID
    user_id: UUID
    reaction: ReactionKind
    feedback: str | None = None
    created_at: datetime
    updated_at: datetime
