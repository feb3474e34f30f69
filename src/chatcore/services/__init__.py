"""Use cases: what a user or another service can ask chatcore to do."""

from chatcore.services.common import ChatSettings, Page
from chatcore.services.conversations import (
    ConversationService,
    CreateConversation,
    UpdateConversation,
)
from chatcore.services.library import LibraryService, SearchHit, Transcript
from chatcore.services.messages import (
    MessagePage,
    MessageService,
    RegenerateOptions,
    RegenerateResult,
    SendResult,
    StreamCompleted,
    StreamFailed,
    StreamStarted,
    StreamText,
    StreamUpdate,
)
from chatcore.services.usage import SystemReport, UsageReport, UsageService

__all__ = [
    "ChatSettings",
    "ConversationService",
    "CreateConversation",
    "LibraryService",
    "MessagePage",
    "MessageService",
    "Page",
    "RegenerateOptions",
    "RegenerateResult",
    "SearchHit",
    "SendResult",
    "StreamCompleted",
    "StreamFailed",
    "StreamStarted",
    "StreamText",
    "StreamUpdate",
    "SystemReport",
    "Transcript",
    "UpdateConversation",
    "UsageReport",
    "UsageService",
]
