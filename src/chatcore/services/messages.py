"""Message use cases: send (whole or streamed), regenerate, list, get."""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from chatcore.assessment import Notifier
from chatcore.context import BuiltContext, build_context
from chatcore.domain.conversation import Conversation
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, MessageStatus, SenderType, Usage, UsageRecord
from chatcore.domain.profile import profile_from_context
from chatcore.errors import AIServiceUnavailableError, NotFoundError, ValidationError
from chatcore.events import AnswerFailed, AnswerProduced, UserMessageStored
from chatcore.fallback import (
    GatewayReply,
    ModelGateway,
    ModelStarted,
    NoModelAnsweredError,
    StreamInterruptedError,
    is_free_model,
)
from chatcore.limits import RateLimits
from chatcore.models import ChatRequest, StreamDelta
from chatcore.pagination import PageRequest
from chatcore.ports import Clock, EventPublisher, StaleReadError, UnitOfWork, UnitOfWorkFactory
from chatcore.prompts import LANGUAGES
from chatcore.services.common import (
    ChatSettings,
    Page,
    load_conversation,
    load_conversation_with_recent,
    page_of,
    probe,
)
from chatcore.tokens import estimate_tokens

__all__ = [
    "MessagePage",
    "MessageService",
    "RegenerateOptions",
    "RegenerateResult",
    "SendResult",
    "StreamCompleted",
    "StreamFailed",
    "StreamStarted",
    "StreamText",
    "StreamUpdate",
]

_log = logging.getLogger("chatcore.messages")

UNAVAILABLE_MESSAGE = "the AI service could not answer; your message is saved"


@dataclass(slots=True, frozen=True, kw_only=True)
class SendResult:
    user_message: Message
    assistant_message: Message
    usage: Usage
    model: str
    processing_time_ms: int


@dataclass(slots=True, frozen=True, kw_only=True)
class RegenerateOptions:
    """Knobs of a regeneration; ``model`` must be one of the configured chain."""

    temperature: float | None = None
    max_tokens: int | None = None
    model: str | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class RegenerateResult:
    message: Message
    usage: Usage
    original_message_id: UUID


@dataclass(slots=True, frozen=True, kw_only=True)
class MessagePage:
    page: Page[Message]
    usage: dict[UUID, UsageRecord]


@dataclass(slots=True, frozen=True)
class StreamStarted:
    """The user's message is stored (the stream's first event)."""

    user_message: Message


@dataclass(slots=True, frozen=True)
class StreamText:
    delta: str


@dataclass(slots=True, frozen=True, kw_only=True)
class StreamCompleted:
    assistant_message: Message
    usage: Usage
    model: str


@dataclass(slots=True, frozen=True, kw_only=True)
class StreamFailed:
    """The answer failed: ``AI_SERVICE_UNAVAILABLE`` before any token, else
    ``STREAM_INTERRUPTED`` (what was generated is kept, status ``failed``)."""

    code: str
    message: str
    user_message_id: UUID
    assistant_message: Message | None = None


StreamUpdate = StreamStarted | StreamText | StreamCompleted | StreamFailed


def _branch(recent_newest_first: builtins.list[Message], parent_id: UUID | None) -> list[Message]:
    """The messages from the root to ``parent_id`` (oldest first), within what was read."""
    chain: list[Message] = []
    if parent_id is None:
        return chain
    # A parent is older than its child, so the branch is nearly always a walk forward
    # through the list; a sibling in between is stepped over, and a parent that is not
    # further on is looked up by id. UUIDs are compared by their integers: ``UUID``'s
    # own ``==`` and ``hash`` are Python-level calls, and this runs on every turn.
    count = len(recent_newest_first)
    wanted = parent_id.int
    index = 0
    by_id: dict[int, Message] | None = None
    while len(chain) < count:
        current: Message | None = None
        if by_id is None:
            while index < count:
                candidate = recent_newest_first[index]
                index += 1
                if candidate.id.int == wanted:
                    current = candidate
                    break
            else:
                by_id = {m.id.int: m for m in recent_newest_first}
        if current is None and by_id is not None:
            current = by_id.get(wanted)
        if current is None:
            break
        chain.append(current)
        parent = current.parent_message_id
        if parent is None:
            break
        wanted = parent.int
    chain.reverse()
    return chain


@dataclass(slots=True)
class _Turn:
    """What one answer is being produced for."""

    conversation: Conversation
    user_message: Message
    context: BuiltContext
    request: ChatRequest


CHAT_MESSAGE = "chat_message"
"""The notification of a new answer: ``{conversationId, messageId, preview}``."""
PREVIEW_LENGTH = 120
"""Characters of an answer in its ``chat_message`` preview, at most."""


def preview(text: str, length: int = PREVIEW_LENGTH) -> str:
    """``text`` on one line, cut at a word to at most ``length`` characters (with "…")."""
    # Only the start of a long answer can show: flattening a prefix gives the same
    # first characters (it may end inside a word that goes on), so a prefix that
    # flattens to more than ``length`` characters says all that is needed.
    head = text[: 2 * length]
    flat = " ".join(head.split())
    if len(flat) <= length and len(head) < len(text):
        flat = " ".join(text.split())
    if len(flat) <= length:
        return flat
    cut = flat[: length - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > length // 2 else cut).rstrip() + "…"


class MessageService:
    """Sending messages, streaming and regenerating answers, and reading them back."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        gateway: ModelGateway,
        limits: RateLimits,
        events: EventPublisher,
        settings: ChatSettings,
        notifier: Notifier | None = None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._gateway = gateway
        self._limits = limits
        self._events = events
        self._settings = settings
        self._notifier = notifier

    @property
    def gateway(self) -> ModelGateway:
        return self._gateway

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
        self,
        uow: UnitOfWork,
        conversation_id: UUID,
        parent_message_id: UUID | None,
        recent: builtins.list[Message] | None = None,
    ) -> tuple[UUID | None, builtins.list[Message]]:
        if recent is None:
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

    def _request(
        self,
        conversation: Conversation,
        question: str,
        history: builtins.list[Message],
        options: RegenerateOptions | None = None,
    ) -> tuple[BuiltContext, ChatRequest]:
        language = self.language_of(conversation)
        profile = profile_from_context(conversation.context_data)
        context = build_context(
            question=question,
            history=history,
            profile=profile,
            language=language,
            budget=self._settings.history_token_budget,
        )
        options = options or RegenerateOptions()
        request = ChatRequest(
            messages=context.messages,
            temperature=(
                options.temperature
                if options.temperature is not None
                else self._settings.temperature
            ),
            # A regeneration may ask for less than MAX_TOKENS, never more.
            max_tokens=min(
                options.max_tokens or self._settings.max_tokens, self._settings.max_tokens
            ),
            profile=profile,
            language=language,
        )
        return context, request

    async def _question(
        self,
        uow: UnitOfWork,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None,
        now: datetime,
    ) -> tuple[Conversation, Message, builtins.list[Message]]:
        """The conversation, the user's new message (not yet written) and the history
        of its branch, read in ``uow``."""
        conversation, recent = await load_conversation_with_recent(
            uow, conversation_id, self._settings.history_window
        )
        parent_id, history = await self._parent_and_history(
            uow, conversation_id, parent_message_id, recent
        )
        question = Message(
            id=new_id(now),
            conversation_id=conversation_id,
            user_id=user_id,
            sender_type=SenderType.USER,
            content=content,
            parent_message_id=parent_id,
            created_at=now,
        )
        return conversation, question, history

    async def _commit_question(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None,
        placeholder: bool,
        now: datetime,
    ) -> tuple[Conversation, Message, Message | None, builtins.list[Message]]:
        """One unit of work: the question (and the streaming placeholder) committed; the
        conversation, the question, the placeholder and the history for the prompt."""
        pending: Message | None = None
        async with self._uow(user_id) as uow:
            conversation, user_message, history = await self._question(
                uow,
                user_id,
                conversation_id,
                content,
                parent_message_id=parent_message_id,
                now=now,
            )
            if placeholder:
                later = self._clock.now()
                pending = Message(
                    id=new_id(later),
                    conversation_id=conversation_id,
                    user_id=user_id,
                    sender_type=SenderType.ASSISTANT,
                    content="",
                    parent_message_id=user_message.id,
                    status=MessageStatus.STREAMING,
                    created_at=later,
                )
                await uow.messages.append(user_message, pending)
            else:
                await uow.messages.append(user_message)
            conversation.touch(now)
            await uow.commit()
        return conversation, user_message, pending, history

    async def _store_user_message(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        parent_message_id: UUID | None,
        placeholder: bool = False,
    ) -> tuple[_Turn, Message | None]:
        """Commit the user's message (and, for streams, the answer's ``streaming`` row)."""
        self.check_content(content)
        await self._limits.message(user_id)
        now = self._clock.now()
        commit = functools.partial(
            self._commit_question,
            user_id,
            conversation_id,
            content,
            parent_message_id=parent_message_id,
            placeholder=placeholder,
            now=now,
        )
        try:
            stored = await commit()
        except StaleReadError:
            # What the unit of work remembered of the conversation was out of date and
            # nothing was written: once more, with the conversation read from the store.
            stored = await commit()
        conversation, user_message, pending, history = stored
        await self._question_stored(user_message)
        context, request = self._request(conversation, content, history)
        return _Turn(conversation, user_message, context, request), pending

    async def _question_stored(self, message: Message) -> None:
        await self._events.publish(
            UserMessageStored(
                user_id=message.user_id,
                conversation_id=message.conversation_id,
                message_id=message.id,
                length=len(message.content),
            )
        )

    def _answer_message(self, question: Message, answer: GatewayReply, elapsed_ms: int) -> Message:
        answered_at = self._clock.now()
        return Message(
            id=new_id(answered_at),
            conversation_id=question.conversation_id,
            user_id=question.user_id,
            sender_type=SenderType.ASSISTANT,
            content=answer.reply.content,
            parent_message_id=question.id,
            metadata=self._metadata(answer, elapsed_ms),
            created_at=answered_at,
        )

    def _usage_record(
        self,
        message: Message,
        answer: GatewayReply,
        elapsed_ms: int,
        context: BuiltContext,
    ) -> UsageRecord:
        return UsageRecord(
            id=new_id(message.created_at),
            user_id=message.user_id,
            conversation_id=message.conversation_id,
            message_id=message.id,
            model_used=answer.reply.model,
            usage=answer.reply.usage,
            processing_time_ms=elapsed_ms,
            created_at=self._clock.now(),
            time_to_first_token_ms=answer.time_to_first_token_ms,
            attempts=tuple(a.describe() for a in answer.attempts),
            fell_back=answer.fell_back,
            metadata={
                "history_used": context.history_used,
                "history_dropped": context.history_dropped,
                "profile": context.profile_included,
                "estimated_prompt_tokens": context.estimated_tokens,
            },
        )

    async def _record_answer(
        self,
        message: Message,
        answer: GatewayReply,
        elapsed_ms: int,
        context: BuiltContext,
        *,
        insert: bool,
        streamed: bool = False,
    ) -> None:
        record = self._usage_record(message, answer, elapsed_ms, context)
        async with self._uow(message.user_id) as uow:
            await uow.messages.store_answer(message, record, insert=insert)
            await uow.commit()
        await self._answer_stored(message, answer, elapsed_ms, streamed=streamed)

    async def _answer_stored(
        self, message: Message, answer: GatewayReply, elapsed_ms: int, *, streamed: bool
    ) -> None:
        usage = answer.reply.usage
        await self._events.publish(
            AnswerProduced(
                user_id=message.user_id,
                conversation_id=message.conversation_id,
                message_id=message.id,
                model=answer.reply.model,
                prompt_tokens=usage.prompt_tokens,
                completion_tokens=usage.completion_tokens,
                processing_time_ms=elapsed_ms,
                cost=usage.cost,
                is_free_model=usage.is_free_model,
                time_to_first_token_ms=answer.time_to_first_token_ms,
                fell_back=answer.fell_back,
                streamed=streamed,
            )
        )
        await self._tell(message)

    async def _tell(self, message: Message) -> None:
        """``chat_message`` to the student's sockets (every tab and device): a new answer
        is stored. A notifier that fails costs the notification, not the answer."""
        if self._notifier is None:
            return
        data = {
            "conversationId": str(message.conversation_id),
            "messageId": str(message.id),
            "preview": preview(message.content),
        }
        try:
            await self._notifier.notify(message.user_id, CHAT_MESSAGE, data)
        except Exception:
            _log.exception("chat_message for message %s not delivered", message.id)

    async def _unavailable(
        self, user_id: UUID, conversation_id: UUID, user_message_id: UUID, reasons: list[str]
    ) -> AIServiceUnavailableError:
        await self._events.publish(
            AnswerFailed(
                user_id=user_id,
                conversation_id=conversation_id,
                user_message_id=user_message_id,
                reasons=reasons,
            )
        )
        return AIServiceUnavailableError(
            UNAVAILABLE_MESSAGE, user_message_id=user_message_id, reasons=reasons
        )

    @staticmethod
    def _metadata(answer: GatewayReply, elapsed_ms: int, **extra: Any) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "model": answer.reply.model,
            "finish_reason": answer.reply.finish_reason,
            "processing_time_ms": elapsed_ms,
        }
        if answer.fell_back:
            metadata["fallback_from"] = [
                a.model for a in answer.attempts if a.outcome != "answered"
            ]
        metadata.update(extra)
        return metadata

    async def send(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None = None,
    ) -> SendResult:
        """Store the user's message, answer it, store the answer and its usage.

        The user's message is committed before any model is called, so it survives
        every model failure; then :class:`AIServiceUnavailableError` carries its id.

        When the gateway answers in process (:attr:`ModelGateway.in_process`, the
        offline advisor), no model call can outlast the request or fail on the network:
        the question and its answer are then committed together, in one write, and a
        model that fails even so has the question committed alone. Either way the
        caller sees the same outcome.
        """
        if self._gateway.in_process:
            return await self._send_at_once(user_id, conversation_id, content, parent_message_id)
        turn, _ = await self._store_user_message(
            user_id, conversation_id, content, parent_message_id
        )
        started = time.perf_counter()
        try:
            answer = await self._gateway.complete(turn.request)
        except NoModelAnsweredError as exc:
            raise await self._unavailable(
                user_id,
                conversation_id,
                turn.user_message.id,
                [a.describe() for a in exc.attempts],
            ) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        assistant = self._answer_message(turn.user_message, answer, elapsed_ms)
        await self._record_answer(assistant, answer, elapsed_ms, turn.context, insert=True)
        return SendResult(
            user_message=turn.user_message,
            assistant_message=assistant,
            usage=answer.reply.usage,
            model=answer.reply.model,
            processing_time_ms=elapsed_ms,
        )

    async def _send_at_once(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        parent_message_id: UUID | None,
    ) -> SendResult:
        """:meth:`send` with the question and the answer in one unit of work."""
        self.check_content(content)
        await self._limits.message(user_id)
        now = self._clock.now()
        turn = functools.partial(
            self._turn_at_once,
            user_id,
            conversation_id,
            content,
            parent_message_id=parent_message_id,
            now=now,
        )
        try:
            question, outcome = await turn()
        except StaleReadError:
            # As in _store_user_message: nothing was written; once more, read anew.
            question, outcome = await turn()
        await self._question_stored(question)
        if isinstance(outcome, NoModelAnsweredError):
            raise await self._unavailable(
                user_id, conversation_id, question.id, [a.describe() for a in outcome.attempts]
            ) from outcome
        assistant, answer, elapsed_ms = outcome
        await self._answer_stored(assistant, answer, elapsed_ms, streamed=False)
        return SendResult(
            user_message=question,
            assistant_message=assistant,
            usage=answer.reply.usage,
            model=answer.reply.model,
            processing_time_ms=elapsed_ms,
        )

    async def _turn_at_once(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None,
        now: datetime,
    ) -> tuple[Message, tuple[Message, GatewayReply, int] | NoModelAnsweredError]:
        """One unit of work: the question, the model's answer and its usage, committed
        in one write; or, when no model answered, the question alone."""
        async with self._uow(user_id) as uow:
            conversation, question, history = await self._question(
                uow,
                user_id,
                conversation_id,
                content,
                parent_message_id=parent_message_id,
                now=now,
            )
            context, request = self._request(conversation, content, history)
            started = time.perf_counter()
            try:
                answer = await self._gateway.complete(request)
            except Exception as exc:
                # The question is kept whatever the model did.
                await uow.messages.append(question)
                await uow.commit()
                if isinstance(exc, NoModelAnsweredError):
                    return question, exc
                raise
            elapsed_ms = round((time.perf_counter() - started) * 1000)
            assistant = self._answer_message(question, answer, elapsed_ms)
            record = self._usage_record(assistant, answer, elapsed_ms, context)
            await uow.messages.append(question, assistant, usage=record)
            await uow.commit()
        return question, (assistant, answer, elapsed_ms)

    async def stream(
        self,
        user_id: UUID,
        conversation_id: UUID,
        content: str,
        *,
        parent_message_id: UUID | None = None,
    ) -> AsyncGenerator[StreamUpdate, None]:
        """Stream an answer.

        Validation, limits and storing the user's message happen before the first
        event, so their errors raise as for :meth:`send`. The answer's row is stored as
        ``streaming`` with the user's message and ends ``complete``, ``failed`` (keeping
        what was generated) or — when the consumer goes away — ``cancelled``.
        """
        turn, pending = await self._store_user_message(
            user_id, conversation_id, content, parent_message_id, placeholder=True
        )
        assert pending is not None
        updates = self._stream_answer(turn, pending)
        # Run it to its first step, inside its ``try``: from here on, closing the stream
        # ends the answer's row even when nobody read from it (a client that left
        # before the stream began); a stream never started could not clean up.
        await anext(updates)
        return updates

    async def _stream_answer(
        self, turn: _Turn, pending: Message
    ) -> AsyncGenerator[StreamUpdate, None]:
        pieces: list[str] = []
        finished = False
        model: str | None = None
        answer = self._gateway.stream(turn.request)
        started = time.perf_counter()

        def elapsed() -> int:
            return round((time.perf_counter() - started) * 1000)

        try:
            yield StreamStarted(turn.user_message)  # the priming step, taken by stream()
            yield StreamStarted(turn.user_message)
            started = time.perf_counter()
            async for event in answer:
                if isinstance(event, ModelStarted):
                    model = event.model
                    continue
                if isinstance(event, StreamDelta):
                    pieces.append(event.text)
                    yield StreamText(event.text)
                    continue
                elapsed_ms = elapsed()
                pending.content = event.reply.content or "".join(pieces)
                pending.status = MessageStatus.COMPLETE
                pending.metadata = self._metadata(event, elapsed_ms)
                await self._record_answer(
                    pending, event, elapsed_ms, turn.context, insert=False, streamed=True
                )
                finished = True
                yield StreamCompleted(
                    assistant_message=pending, usage=event.reply.usage, model=event.reply.model
                )
        except NoModelAnsweredError as exc:
            reasons = [a.describe() for a in exc.attempts]
            await self._close_pending(
                pending,
                MessageStatus.FAILED,
                "",
                {"error": reasons, "processing_time_ms": elapsed()},
            )
            finished = True
            error = await self._unavailable(
                turn.user_message.user_id,
                turn.user_message.conversation_id,
                turn.user_message.id,
                reasons,
            )
            yield StreamFailed(
                code=error.code,
                message=error.message,
                user_message_id=turn.user_message.id,
                assistant_message=pending,
            )
        except StreamInterruptedError as exc:
            await self._close_pending(
                pending,
                MessageStatus.FAILED,
                "".join(pieces),
                {
                    "model": exc.error.model,
                    "error": exc.error.kind.value,
                    "processing_time_ms": (elapsed_ms := elapsed()),
                },
                self._partial_usage(turn, pending, exc.error.model, pieces, elapsed_ms),
            )
            finished = True
            yield StreamFailed(
                code="STREAM_INTERRUPTED",
                message=f"the answer was interrupted: {exc.error.kind.value}",
                user_message_id=turn.user_message.id,
                assistant_message=pending,
            )
        finally:
            # Close the model's stream first: a consumer that went away cancels the
            # upstream call at once, not when the generator is collected.
            await answer.aclose()
            if not finished:
                # The consumer went away (client disconnected): keep what was generated.
                elapsed_ms = elapsed()
                await asyncio.shield(
                    self._close_pending(
                        pending,
                        MessageStatus.CANCELLED,
                        "".join(pieces),
                        {
                            "cancelled": True,
                            "processing_time_ms": elapsed_ms,
                            **({"model": model} if model else {}),
                        },
                        self._partial_usage(turn, pending, model, pieces, elapsed_ms),
                    )
                )

    def _partial_usage(
        self,
        turn: _Turn,
        pending: Message,
        model: str | None,
        pieces: list[str],
        elapsed_ms: int,
    ) -> UsageRecord | None:
        """The ledger row of an answer cut short after its first token: the model did
        work (and may bill it), so it is recorded, with estimated token counts (the
        upstream's usage comes only at the end) and, for a paid model, a cost estimated
        at its latest known price, so that the daily budget counts it."""
        if model is None or not pieces:
            return None
        prompt_tokens = turn.context.estimated_tokens
        completion_tokens = estimate_tokens("".join(pieces))
        cost = self._gateway.estimate_cost(model, prompt_tokens + completion_tokens)
        return UsageRecord(
            id=new_id(self._clock.now()),
            user_id=pending.user_id,
            conversation_id=pending.conversation_id,
            message_id=pending.id,
            model_used=model,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cost=cost or 0.0,
                is_free_model=is_free_model(model),
            ),
            processing_time_ms=elapsed_ms,
            created_at=self._clock.now(),
            metadata={"estimated": True, **({"cost_unknown": True} if cost is None else {})},
        )

    async def _close_pending(
        self,
        pending: Message,
        status: MessageStatus,
        content: str,
        metadata: dict[str, Any],
        usage: UsageRecord | None = None,
    ) -> None:
        pending.status = status
        pending.content = content
        pending.metadata = {**pending.metadata, "finish_reason": status.value, **metadata}
        async with self._uow(pending.user_id) as uow:
            if usage is None:
                await uow.messages.save(pending)
            else:
                await uow.messages.store_answer(pending, usage, insert=False)
            await uow.commit()

    async def regenerate(
        self,
        user_id: UUID,
        conversation_id: UUID,
        message_id: UUID,
        options: RegenerateOptions,
    ) -> RegenerateResult:
        """A new answer beside ``message_id`` (an assistant message): same question,
        same branch history; the original stays."""
        if options.model is not None and options.model not in self._gateway.chain.models:
            raise ValidationError(
                "model must be one of the configured models",
                details={"models": list(self._gateway.chain.models)},
            )
        await self._limits.message(user_id)
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            original = await uow.messages.get(conversation_id, message_id)
            if original is None:
                raise NotFoundError("message not found")
            if original.sender_type is not SenderType.ASSISTANT or not original.parent_message_id:
                raise ValidationError("only an answer of the advisor can be regenerated")
            question = await uow.messages.get(conversation_id, original.parent_message_id)
            if question is None:
                raise ValidationError("the question of this answer is gone")
            _, history = (
                await self._parent_and_history(uow, conversation_id, question.parent_message_id)
                if question.parent_message_id
                else (None, [])
            )
        context, request = self._request(conversation, question.content, history, options)
        started = time.perf_counter()
        try:
            answer = await self._gateway.complete(
                request, models=[options.model] if options.model else None
            )
        except NoModelAnsweredError as exc:
            raise await self._unavailable(
                user_id, conversation_id, question.id, [a.describe() for a in exc.attempts]
            ) from exc
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        now = self._clock.now()
        message = Message(
            id=new_id(now),
            conversation_id=conversation_id,
            user_id=user_id,
            sender_type=SenderType.ASSISTANT,
            content=answer.reply.content,
            parent_message_id=question.id,
            metadata=self._metadata(answer, elapsed_ms, regenerated_from=str(original.id)),
            created_at=now,
        )
        await self._record_answer(message, answer, elapsed_ms, context, insert=True)
        return RegenerateResult(
            message=message, usage=answer.reply.usage, original_message_id=original.id
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
        async with self._uow(user_id) as uow:
            await load_conversation(uow, conversation_id)
            rows = await uow.messages.list(conversation_id, probe(page))
            found = page_of(rows, page, lambda m: (m.created_at, m.id))
            usage: dict[UUID, UsageRecord] = {}
            if include_usage and found.items:
                usage = await uow.usage.for_messages([m.id for m in found.items])
        return MessagePage(page=found, usage=usage)

    async def get(self, user_id: UUID, conversation_id: UUID, message_id: UUID) -> Message:
        """One message of one of the user's live conversations."""
        async with self._uow(user_id) as uow:
            await load_conversation(uow, conversation_id)
            message = await uow.messages.get(conversation_id, message_id)
        if message is None:
            raise NotFoundError("message not found")
        return message
