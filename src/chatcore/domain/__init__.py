"""Domain model: conversations, messages, usage and the assessment profile."""

from chatcore.domain.conversation import (
    MAX_TITLE_LENGTH,
    ContextType,
    Conversation,
    ConversationStatus,
    clean_title,
)
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, MessageStatus, SenderType, Usage, UsageRecord
from chatcore.domain.profile import (
    AssessmentProfile,
    Career,
    RoleModel,
    parse_profile,
    profile_from_context,
)
from chatcore.domain.reaction import MAX_FEEDBACK_LENGTH, Reaction, ReactionKind

__all__ = [
    "MAX_FEEDBACK_LENGTH",
    "MAX_TITLE_LENGTH",
    "AssessmentProfile",
    "Career",
    "ContextType",
    "Conversation",
    "ConversationStatus",
    "Message",
    "MessageStatus",
    "Reaction",
    "ReactionKind",
    "RoleModel",
    "SenderType",
    "Usage",
    "UsageRecord",
    "clean_title",
    "new_id",
    "parse_profile",
    "profile_from_context",
]
