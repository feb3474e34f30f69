"""Wire types of the HTTP API (msgspec Structs) and their mapping from the domain."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

import msgspec

from chatcore.domain import (
    MAX_FEEDBACK_LENGTH,
    MAX_TITLE_LENGTH,
    ContextType,
    Conversation,
    ConversationStatus,
    Message,
    MessageStatus,
    Reaction,
    ReactionKind,
    SenderType,
    Usage,
    UsageRecord,
)
from chatcore.services import SearchHit

__all__ = [
    "MAX_JSON_DEPTH",
    "ConversationList",
    "ConversationOut",
    "CreateConversationBody",
    "ErrorBody",
    "ErrorEnvelope",
    "InboundBody",
    "MessageList",
    "MessageOut",
    "Ok",
    "Pagination",
    "ReactionBody",
    "ReactionOut",
    "ReactionsOut",
    "RegenerateBody",
    "RegenerateOut",
    "SearchHitOut",
    "SearchResults",
    "SendMessageBody",
    "SendMessageOut",
    "UpdateConversationBody",
    "UsageOut",
    "conversation_out",
    "message_out",
    "reactions_out",
    "search_results",
    "usage_out",
]

T = TypeVar("T")

Title = Annotated[str, msgspec.Meta(max_length=MAX_TITLE_LENGTH)]
JsonObject = dict[str, Any]


class Ok(msgspec.Struct, Generic[T], kw_only=True):
    """The success envelope."""

    success: bool = True
    message: str = "OK"
    data: T


class ErrorBody(msgspec.Struct, kw_only=True):
    code: str
    message: str
    details: Any = None


class ErrorEnvelope(msgspec.Struct, kw_only=True):
    """The error envelope."""

    success: bool = False
    error: ErrorBody


MAX_JSON_DEPTH = 32
"""How deeply the JSON objects of a request (metadata, context data...) may nest."""


def _check_json(value: Any, name: str) -> None:
    """Refuse U+0000, which PostgreSQL can store in neither text nor jsonb, and absurd
    nesting, which recursive code (copies, encoders) cannot handle: each a 400 here
    rather than a 500 later. Iterative, so no input is too deep for this check."""
    pending: list[tuple[Any, int]] = [(value, 0)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValueError(f"{name} must not contain the character U+0000")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise ValueError(f"{name} is nested more than {MAX_JSON_DEPTH} levels deep")
            children = [*item, *item.values()] if isinstance(item, dict) else item
            pending.extend((child, depth + 1) for child in children)


class InboundBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: unknown fields are refused, and so are U+0000 anywhere
    and JSON nested more than :data:`MAX_JSON_DEPTH` levels."""

    def __post_init__(self) -> None:
        for name in self.__struct_fields__:
            _check_json(getattr(self, name), name)


class CreateConversationBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    title: Title | None = None
    context_type: ContextType | None = None
    context_data: JsonObject | None = None
    metadata: JsonObject | None = None
    profilePersona: JsonObject | None = None  # noqa: N815 - the contract's name
    resultsId: str | None = None  # noqa: N815 - the contract's name


class UpdateConversationBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    title: Title | None = None
    status: ConversationStatus | None = None
    metadata: JsonObject | None = None
    context_data: JsonObject | None = None


class SendMessageBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    content: str
    parent_message_id: UUID | None = None


class RegenerateBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    temperature: Annotated[float, msgspec.Meta(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, msgspec.Meta(ge=1, le=32_000)] | None = None
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None


class ReactionBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    reaction: ReactionKind
    # Room for surrounding whitespace, which is trimmed; the service checks the rest.
    feedback: Annotated[str, msgspec.Meta(max_length=MAX_FEEDBACK_LENGTH * 2)] | None = None


class ReactionOut(msgspec.Struct, kw_only=True):
    reaction: ReactionKind
    feedback: str | None
    created_at: datetime
    updated_at: datetime


class ReactionsOut(msgspec.Struct, kw_only=True):
    message_id: UUID
    reactions: list[ReactionOut]


class SearchHitOut(msgspec.Struct, kw_only=True):
    conversation_id: UUID
    conversation_title: str
    message_id: UUID
    sender_type: SenderType
    status: MessageStatus
    snippet: str
    created_at: datetime


class UsageOut(msgspec.Struct, kw_only=True):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    is_free_model: bool


class MessageOut(msgspec.Struct, kw_only=True):
    id: UUID
    conversation_id: UUID
    sender_type: SenderType
    content: str
    parent_message_id: UUID | None
    status: MessageStatus
    metadata: JsonObject
    created_at: datetime
    usage: UsageOut | msgspec.UnsetType = msgspec.UNSET


class RegenerateOut(msgspec.Struct, kw_only=True):
    message: MessageOut
    usage: UsageOut
    original_message_id: UUID


class ConversationOut(msgspec.Struct, kw_only=True):
    id: UUID
    user_id: UUID
    title: str
    context_type: ContextType
    context_data: JsonObject
    metadata: JsonObject
    status: ConversationStatus
    created_at: datetime
    updated_at: datetime
    messages: list[MessageOut] | msgspec.UnsetType = msgspec.UNSET


class Pagination(msgspec.Struct, kw_only=True):
    limit: int
    next_cursor: str | None
    has_more: bool
    page: int | None = None


class ConversationList(msgspec.Struct, kw_only=True):
    conversations: list[ConversationOut]
    pagination: Pagination


class MessageList(msgspec.Struct, kw_only=True):
    messages: list[MessageOut]
    pagination: Pagination


class SendMessageOut(msgspec.Struct, kw_only=True):
    user_message: MessageOut
    assistant_message: MessageOut
    usage: UsageOut
    model: str
    processing_time_ms: int


class SearchResults(msgspec.Struct, kw_only=True):
    query: str
    results: list[SearchHitOut]
    pagination: Pagination


def reactions_out(message_id: UUID, reactions: list[Reaction]) -> ReactionsOut:
    return ReactionsOut(
        message_id=message_id,
        reactions=[
            ReactionOut(
                reaction=r.reaction,
                feedback=r.feedback,
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in reactions
        ],
    )


def search_results(query: str, hits: list[SearchHit], pagination: Pagination) -> SearchResults:
    return SearchResults(
        query=query,
        results=[
            SearchHitOut(
                conversation_id=hit.message.conversation_id,
                conversation_title=hit.conversation_title,
                message_id=hit.message.id,
                sender_type=hit.message.sender_type,
                status=hit.message.status,
                snippet=hit.snippet,
                created_at=hit.message.created_at,
            )
            for hit in hits
        ],
        pagination=pagination,
    )


def usage_out(usage: Usage) -> UsageOut:
    return UsageOut(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        total_tokens=usage.total_tokens,
        cost=usage.cost,
        is_free_model=usage.is_free_model,
    )


def message_out(message: Message, record: UsageRecord | None = None) -> MessageOut:
    return MessageOut(
        id=message.id,
        conversation_id=message.conversation_id,
        sender_type=message.sender_type,
        content=message.content,
        parent_message_id=message.parent_message_id,
        status=message.status,
        metadata=message.metadata,
        created_at=message.created_at,
        usage=usage_out(record.usage) if record is not None else msgspec.UNSET,
    )


def conversation_out(
    conversation: Conversation, messages: list[Message] | None = None
) -> ConversationOut:
    return ConversationOut(
        id=conversation.id,
        user_id=conversation.user_id,
        title=conversation.title,
        context_type=conversation.context_type,
        context_data=conversation.context_data,
        metadata=conversation.metadata,
        status=conversation.status,
        created_at=conversation.created_at,
        updated_at=conversation.updated_at,
        messages=[message_out(m) for m in messages] if messages is not None else msgspec.UNSET,
    )
