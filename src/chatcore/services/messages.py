"""Message use cases: send a message and get the advisor's answer; list messages."""

from __future__ import annotations

import builtins
import time
from dataclasses import dataclass
from uuid import UUID

from chatcore.context import build_context
from chatcore.domain.conversation import Conversation
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, MessageStatus, SenderType, Usage, UsageRecord
from chatcore.domain.profile import profile_from_context
from chatcore.errors import AIServiceUnavailableError, NotFoundError, ValidationError
from chatcore.events import AnswerFailed, AnswerProduced, UserMessageStored
from chatcore.limits import RateLimits
from chatcore.models import ChatRequest, ModelError
from chatcore.pagination import PageRequest, encode_cursor
from chatcore.ports import ChatModel, Clock, EventPublisher, UnitOfWork, UnitOfWorkFactory
from chatcore.prompts import LANGUAGES
from chatcore.services.common import ChatSettings, Page, load_conversation

__all__ = ["MessagePage", "MessageService", "SendResult"]


@dataclass(slots=True, frozen=True, kw_only=True)
class SendResult:
    user_message: Message
    assistant_message: Message
    usage: Usage
    model: str
    processing_time_ms: int


@dataclass(slots=True, frozen=True, kw_only=True)
class MessagePage:
    page: Page[Message]
    usage: dict[UUID, UsageRecord]


def _branch(recent_newest_first: list[Message], parent_id: UUID | None) -> list[Message]:
    """The messages from the root to ``parent_id`` (oldest first), within what was read."""
    by_id = {m.id: m for m in recent_newest_first}
    chain: list[Message] = []
    current = by_id.get(parent_id) if parent_id else None
    while current is not None and len(chain) < len(by_id):
        chain.append(current)
        current = by_id.get(current.parent_message_id) if current.parent_message_id else None
    chain.reverse()
    return chain


class MessageService:
    """Sending messages and reading them back."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        model: ChatModel,
        limits: RateLimits,
        events: EventPublisher,
        settings: ChatSettings,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._model = model
        self._limits = limits
        self._events = events
        self._settings = settings

    def language_of(self, conversation: Conversation) -> str:
        """The conversation's language (``metadata.language``) or the configured one."""
        language = conversation.metadata.get("language")
        return language if language in LANGUAGES else self._settings.language

    def check_content(self, content: str) -> str:
        """Refuse empty or over-long content; returns it unchanged otherwise."""
        if not content.strip():
            raise ValidationError("content must not be empty")
        limit = self._settings.max_message_length
        if len(content) > limit:
            raise ValidationError(
                f"content must be at most {limit} characters",
                details={"max_length": limit, "length": len(content)},
            )
        return content

    async def _parent_and_history(
        self, uow: UnitOfWork, conversation_id: UUID, parent_message_id: UUID | None
    ) -> tuple[UUID | None, builtins.list[Message]]:
        recent = await uow.messages.recent(conversation_id, self._settings.history_window)
        if parent_message_id is None:
            parent_id = recent[0].id if recent else None
        else:
            parent = next((m for m in recent if m.id == parent_message_id), None)
            if parent is None:
                parent = await uow.messages.get(conversation_id, parent_message_id)
            if parent is None:
                raise ValidationError(
                    "parent_message_id is not a message of this conversation",
                    details={"parent_message_id": str(parent_message_id)},
                )
            if all(m.id != parent.id for m in recent):
                recent.append(parent)
            parent_id = parent.id
        return parent_id, _branch(recent, parent_id)

    async def send(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None = None,
    ) -> SendResult:
        """Store the user's message, answer it, store the answer and its usage.

        The user's message is committed before the model is called, so it survives
        any model failure; then :class:`AIServiceUnavailableError` carries its id.
        """
        self.check_content(content)
        await self._limits.message(user_id)
        now = self._clock.now()
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            parent_id, history = await self._parent_and_history(
                uow, conversation_id, parent_message_id
            )
            user_message = Message(
                id=new_id(now),
                conversation_id=conversation_id,
                user_id=user_id,
                sender_type=SenderType.USER,
                content=content,
                parent_message_id=parent_id,
                created_at=now,
            )
            await uow.messages.add(user_message)
            conversation.touch(now)
            await uow.conversations.save(conversation)
            await uow.commit()
        await self._events.publish(
            UserMessageStored(
                user_id=user_id,
                conversation_id=conversation_id,
                message_id=user_message.id,
                length=len(content),
            )
        )

        language = self.language_of(conversation)
        profile = profile_from_context(conversation.context_data)
        context = build_context(
            question=content,
            history=history,
            profile=profile,
            language=language,
            budget=self._settings.history_token_budget,
        )
        request = ChatRequest(
            messages=context.messages,
            temperature=self._settings.temperature,
            max_tokens=self._settings.max_tokens,
            profile=profile,
            language=language,
        )
        started = time.perf_counter()
        try:
            reply = await self._model.complete(request)
        except ModelError as exc:
            reasons = [f"{exc.model}: {exc.kind.value}"]
            await self._events.publish(
                AnswerFailed(
                    user_id=user_id,
                    conversation_id=conversation_id,
                    user_message_id=user_message.id,
                    reasons=reasons,
                )
            )
            raise AIServiceUnavailableError(
                "the AI service could not answer; your message is saved",
                user_message_id=user_message.id,
                reasons=reasons,
            ) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000)

        answered_at = self._clock.now()
        assistant = Message(
            id=new_id(answered_at),
            conversation_id=conversation_id,
            user_id=user_id,
            sender_type=SenderType.ASSISTANT,
            content=reply.content,
            parent_message_id=user_message.id,
            status=MessageStatus.COMPLETE,
            metadata={
                "model": reply.model,
                "finish_reason": reply.finish_reason,
                "processing_time_ms": elapsed_ms,
            },
            created_at=answered_at,
        )
        record = UsageRecord(
            id=new_id(answered_at),
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=assistant.id,
            model_used=reply.model,
            usage=reply.usage,
            processing_time_ms=elapsed_ms,
            created_at=answered_at,
            metadata={
                "history_used": context.history_used,
                "history_dropped": context.history_dropped,
                "profile": context.profile_included,
                "estimated_prompt_tokens": context.estimated_tokens,
            },
        )
        async with self._uow(user_id) as uow:
            await uow.messages.add(assistant)
            await uow.usage.add(record)
            await uow.commit()
        await self._events.publish(
            AnswerProduced(
                user_id=user_id,
                conversation_id=conversation_id,
                message_id=assistant.id,
                model=reply.model,
                prompt_tokens=reply.usage.prompt_tokens,
                completion_tokens=reply.usage.completion_tokens,
                processing_time_ms=elapsed_ms,
            )
        )
        return SendResult(
            user_message=user_message,
            assistant_message=assistant,
            usage=reply.usage,
            model=reply.model,
            processing_time_ms=elapsed_ms,
        )

    async def list(
        self,
        user_id: UUID,
        conversation_id: UUID,
        page: PageRequest,
        *,
        include_usage: bool = False,
    ) -> MessagePage:
        """A page of the conversation's messages, oldest first."""
        probe = PageRequest(limit=page.limit + 1, after=page.after, offset=page.offset)
        async with self._uow(user_id) as uow:
            await load_conversation(uow, conversation_id)
            rows = await uow.messages.list(conversation_id, probe)
            items = rows[: page.limit]
            usage: dict[UUID, UsageRecord] = {}
            if include_usage and items:
                usage = await uow.usage.for_messages([m.id for m in items])
        next_cursor = None
        if len(rows) > page.limit and items:
            next_cursor = encode_cursor(items[-1].created_at, items[-1].id)
        return MessagePage(page=Page(items, next_cursor), usage=usage)

    async def get(self, user_id: UUID, conversation_id: UUID, message_id: UUID) -> Message:
        """One message of one of the user's live conversations."""
        async with self._uow(user_id) as uow:
            await load_conversation(uow, conversation_id)
            message = await uow.messages.get(conversation_id, message_id)
        if message is None:
            raise NotFoundError("message not found")
        return message
