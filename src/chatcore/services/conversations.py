"""Conversation use cases: create, read, list, update, delete."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from chatcore.domain.conversation import (
    ContextType,
    Conversation,
    ConversationStatus,
    clean_title,
)
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message
from chatcore.errors import ValidationError
from chatcore.events import ConversationCreated, ConversationStatusChanged
from chatcore.limits import RateLimits
from chatcore.pagination import PageRequest
from chatcore.ports import Clock, ConversationFilter, EventPublisher, UnitOfWorkFactory
from chatcore.services.common import ChatSettings, Page, load_conversation, page_of, probe

__all__ = ["ConversationService", "CreateConversation", "UpdateConversation"]

DEFAULT_TITLES = {"id": "Percakapan Baru", "en": "New Conversation"}


@dataclass(slots=True, frozen=True, kw_only=True)
class CreateConversation:
    """What a new conversation starts with; ``persona_profile`` and ``result_id``
    land in ``context_data`` so that the advisor can ground its answers in them."""

    title: str | None = None
    context_type: ContextType | None = None
    context_data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    persona_profile: dict[str, Any] | None = None
    result_id: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class UpdateConversation:
    """Fields to change; None leaves a field as it is. ``deleted`` is not a status to set."""

    title: str | None = None
    status: ConversationStatus | None = None
    metadata: dict[str, Any] | None = None
    context_data: dict[str, Any] | None = None


class ConversationService:
    """Conversation use cases, each in one transaction on behalf of one user."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        limits: RateLimits,
        events: EventPublisher,
        settings: ChatSettings,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._limits = limits
        self._events = events
        self._settings = settings

    async def create(self, user_id: UUID, command: CreateConversation) -> Conversation:
        """Create a conversation, counted against the user's daily limit."""
        title = clean_title(command.title) if command.title is not None else None
        await self._limits.conversation(user_id)
        context_data = dict(command.context_data)
        if command.persona_profile is not None:
            context_data["persona_profile"] = command.persona_profile
        if command.result_id is not None:
            context_data["result_id"] = command.result_id
        context_type = command.context_type
        if context_type is None:
            context_type = (
                ContextType.ASSESSMENT
                if command.persona_profile is not None
                else ContextType.GENERAL
            )
        language = command.metadata.get("language", self._settings.language)
        now = self._clock.now()
        conversation = Conversation(
            id=new_id(now),
            user_id=user_id,
            title=title or DEFAULT_TITLES.get(str(language), DEFAULT_TITLES["id"]),
            context_type=context_type,
            context_data=context_data,
            metadata=dict(command.metadata),
            created_at=now,
            updated_at=now,
        )
        async with self._uow(user_id) as uow:
            await uow.conversations.add(conversation)
            await uow.commit()
        await self._events.publish(
            ConversationCreated(
                user_id=user_id,
                conversation_id=conversation.id,
                context_type=context_type.value,
            )
        )
        return conversation

    async def get(
        self, user_id: UUID, conversation_id: UUID, *, message_limit: int = 0
    ) -> tuple[Conversation, builtins.list[Message]]:
        """The conversation and, when ``message_limit`` > 0, its newest messages oldest first."""
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            messages: builtins.list[Message] = []
            if message_limit > 0:
                messages = await uow.messages.recent(conversation_id, message_limit)
                messages.reverse()
        return conversation, messages

    async def list(
        self, user_id: UUID, where: ConversationFilter, page: PageRequest
    ) -> Page[Conversation]:
        """A page of the user's conversations, most recently active first."""
        async with self._uow(user_id) as uow:
            rows = await uow.conversations.list(where, probe(page))
        return page_of(rows, page, lambda c: (c.updated_at, c.id))

    async def update(
        self, user_id: UUID, conversation_id: UUID, command: UpdateConversation
    ) -> Conversation:
        """Change title, status (active/archived), metadata or context data."""
        if command.status is ConversationStatus.DELETED:
            raise ValidationError("use DELETE to delete a conversation")
        now = self._clock.now()
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            old_status = conversation.status
            if command.title is not None:
                conversation.rename(command.title, now)
            if command.status is not None:
                conversation.change_status(command.status, now)
            if command.metadata is not None:
                conversation.replace_metadata(command.metadata, now)
            if command.context_data is not None:
                conversation.replace_context_data(command.context_data, now)
            await uow.conversations.save(conversation)
            await uow.commit()
        if conversation.status is not old_status:
            await self._events.publish(
                ConversationStatusChanged(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    old=old_status.value,
                    new=conversation.status.value,
                )
            )
        return conversation

    async def delete(self, user_id: UUID, conversation_id: UUID) -> None:
        """Soft-delete: the rows stay, every later read is 404."""
        await self.update_status(user_id, conversation_id, ConversationStatus.DELETED)

    async def update_status(
        self, user_id: UUID, conversation_id: UUID, status: ConversationStatus
    ) -> None:
        now = self._clock.now()
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            old = conversation.status
            conversation.change_status(status, now)
            await uow.conversations.save(conversation)
            await uow.commit()
        await self._events.publish(
            ConversationStatusChanged(
                user_id=user_id, conversation_id=conversation_id, old=old.value, new=status.value
            )
        )
