"""The assessment journey: analysis events become a personalized advisor.

``analysis.started`` and ``analysis.failed`` become notifications. ``analysis.completed``
fetches the result from the archive and creates — exactly once per result, however
often the event is delivered and whoever else asks at the same time — a career-guidance
conversation that knows the profile, with a welcome message; then the student is told
in real time and ``chatbot.conversation_ready`` is published for other services.
``POST /assessment/from-assessment`` reaches the same conversation by the same code.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any
from uuid import UUID

from chatcore.assessment import (
    AnalysisCompleted,
    AnalysisEvent,
    AnalysisFailed,
    AnalysisStarted,
    ArchiveResult,
    AssessmentSource,
    IntegrationPublisher,
    Notifier,
)
from chatcore.domain.conversation import ContextType, Conversation
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, SenderType
from chatcore.domain.profile import AssessmentProfile, parse_profile, profile_from_context
from chatcore.errors import NotFoundError, ValidationError
from chatcore.events import ConversationCreated
from chatcore.fallback import ModelGateway, NoModelAnsweredError
from chatcore.models import ChatRequest
from chatcore.pagination import PageRequest
from chatcore.ports import Clock, EventPublisher, UnitOfWorkFactory
from chatcore.prompts import LANGUAGES
from chatcore.services.common import ChatSettings, load_conversation
from chatcore.suggestions import (
    assessment_title,
    suggested_questions,
    welcome_message,
    welcome_prompt,
)

__all__ = ["CONVERSATION_READY", "AssessmentConversation", "AssessmentService"]

CONVERSATION_READY = "chatbot.conversation_ready"
ANNOUNCED_AT = "announced_at"
"""Conversation metadata: when the student and other services were told it is ready."""
_log = logging.getLogger("chatcore.assessment")
_FIRST = PageRequest(limit=1)

_PROGRESS = {
    "id": {
        "analysis_started": ("Analisis dimulai", "Hasil asesmenmu sedang dianalisis."),
        "analysis_complete": ("Analisis selesai", "Profilmu siap; konselor karier disiapkan."),
        "chatbot_ready": ("Konselor karier siap", "Percakapan panduan kariermu sudah menunggu."),
    },
    "en": {
        "analysis_started": ("Analysis started", "Your assessment is being analysed."),
        "analysis_complete": (
            "Analysis complete",
            "Your profile is ready; preparing your advisor.",
        ),
        "chatbot_ready": ("Career advisor ready", "Your career-guidance conversation is waiting."),
    },
}


@dataclass(slots=True, frozen=True, kw_only=True)
class AssessmentConversation:
    """The conversation of one result, its welcome message and suggested questions."""

    conversation: Conversation
    welcome_message: Message | None
    suggestions: list[str]
    created: bool


class AssessmentService:
    """Analysis events and the from-assessment route, on one code path."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        source: AssessmentSource,
        notifier: Notifier,
        publisher: IntegrationPublisher,
        gateway: ModelGateway,
        events: EventPublisher,
        settings: ChatSettings,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._source = source
        self._notifier = notifier
        self._publisher = publisher
        self._gateway = gateway
        self._events = events
        self._settings = settings

    # -- events ---------------------------------------------------------------------

    async def handle(self, event: AnalysisEvent) -> AssessmentConversation | None:
        """Apply one analysis event. Raises ``ArchiveUnavailableError`` (and storage
        errors) for passing failures, so the consumer retries; returns None when the
        event rightly creates nothing."""
        if isinstance(event, AnalysisStarted):
            await self._progress(event.userId, "analysis_started", 50, event.resultId)
            return None
        if isinstance(event, AnalysisFailed):
            await self._notifier.notify(
                event.userId,
                "analysis-failed",
                {
                    "resultId": event.resultId,
                    "jobId": event.jobId,
                    "error": event.errorMessage or "analysis failed",
                },
            )
            return None
        return await self._completed(event)

    async def _completed(self, event: AnalysisCompleted) -> AssessmentConversation | None:
        async with self._uow(event.userId) as uow:
            known = await uow.conversations.get_by_result(event.resultId)
        if known is not None and known.is_deleted:
            _log.info(
                "analysis.completed creates nothing: the student deleted the conversation "
                "%s of result %s (job %s)",
                known.id,
                event.resultId,
                event.jobId,
            )
            return None
        if known is not None and known.metadata.get(ANNOUNCED_AT):
            # The same event again (a redelivery, a retry after a late failure): it had
            # its effect, the conversation and its announcement, once already.
            _log.info(
                "analysis.completed again for result %s (job %s): conversation %s exists "
                "and was announced; nothing to do",
                event.resultId,
                event.jobId,
                known.id,
            )
            return await self._existing(known)
        await self._progress(event.userId, "analysis_complete", 75, event.resultId)
        result = await self._source.fetch_result(event.resultId)
        problem = self._refusal(result, event.userId)
        if problem is not None:
            _log.warning(
                "analysis.completed creates nothing: %s (result %s, user %s, job %s)",
                problem,
                event.resultId,
                event.userId,
                event.jobId,
            )
            return None
        assert result is not None
        made = await self._conversation_for(event.userId, result, title=None, welcome=True)
        if made.conversation.is_deleted:  # deleted since the look above
            return None
        await self.announce(made, event.resultId)
        return made

    async def announce(self, made: AssessmentConversation, result_id: str) -> None:
        """Tell the student (every replica's sockets) and other services, then note it in
        the conversation's metadata (``announced_at``), so that the same event again
        announces nothing. A failure before the note leaves it to the event's retry.

        It all happens with the conversation's row locked: a copy of the event handled
        at the same moment waits, then finds the note and tells nobody; if this one
        fails, the lock goes with its rollback and the other announces."""
        conversation = made.conversation
        async with self._uow(conversation.user_id) as uow:
            current = await uow.conversations.lock(conversation.id)
            if current is None or current.is_deleted:
                return  # deleted meanwhile: nothing to announce
            if current.metadata.get(ANNOUNCED_AT):
                _log.info(
                    "conversation %s of result %s was announced meanwhile (another copy "
                    "of the event); not announced again",
                    conversation.id,
                    result_id,
                )
                conversation.metadata = current.metadata
                return
            await self._progress(
                conversation.user_id, "chatbot_ready", 100, result_id, conversation.id
            )
            await self._notifier.notify(
                conversation.user_id,
                "chatbot_ready",
                {"conversationId": str(conversation.id), "resultId": result_id},
            )
            await self._publisher.publish(
                CONVERSATION_READY,
                {
                    "eventType": CONVERSATION_READY,
                    "timestamp": self._clock.now()
                    .astimezone(UTC)
                    .isoformat()
                    .replace("+00:00", "Z"),
                    "userId": str(conversation.user_id),
                    "resultId": result_id,
                    "conversationId": str(conversation.id),
                },
            )
            current.metadata = {
                **current.metadata,
                ANNOUNCED_AT: self._clock.now().astimezone(UTC).isoformat(),
            }
            await uow.conversations.save(current)  # updated_at kept: not an activity
            await uow.commit()
        conversation.metadata = current.metadata

    async def _progress(
        self,
        user_id: UUID,
        stage: str,
        progress: int,
        result_id: str | None,
        conversation_id: UUID | None = None,
    ) -> None:
        title, message = _PROGRESS[self._language(None)][stage]
        data: dict[str, Any] = {
            "stage": stage,
            "progress": progress,
            "title": title,
            "message": message,
            "resultId": result_id,
        }
        if conversation_id is not None:
            data["conversationId"] = str(conversation_id)
        await self._notifier.notify(user_id, "assessment_progress", data)

    # -- the shared path ------------------------------------------------------------

    @staticmethod
    def _refusal(result: ArchiveResult | None, user_id: UUID) -> str | None:
        if result is None:
            return "the archive does not know this result"
        if result.user_id != user_id:
            return "the result belongs to another user"
        if result.status != "completed":
            return f"the result is {result.status!r}, not completed"
        return None

    async def from_assessment(
        self,
        user_id: UUID,
        result_id: str,
        *,
        title: str | None = None,
        auto_start_message: bool = True,
    ) -> AssessmentConversation:
        """The conversation of ``result_id`` for ``user_id``, created on first call."""
        result = await self._source.fetch_result(result_id)
        problem = self._refusal(result, user_id)
        if problem is not None:
            if result is not None and result.user_id == user_id:
                raise ValidationError(problem, details={"assessment_id": result_id})
            raise NotFoundError("assessment result not found")
        assert result is not None
        made = await self._conversation_for(
            user_id, result, title=title, welcome=auto_start_message, replace_deleted=True
        )
        if made.created:
            try:
                await self.announce(made, result_id)
            except Exception:
                # The conversation is committed and the caller gets it; a lost
                # announcement must not turn that into an error (the student polls).
                _log.exception("announcing conversation %s failed", made.conversation.id)
        return made

    def _language(self, conversation: Conversation | None) -> str:
        if conversation is not None:
            language = conversation.metadata.get("language")
            if language in LANGUAGES:
                return str(language)
        return self._settings.language

    async def _write_welcome(self, profile: AssessmentProfile, language: str) -> tuple[str, str]:
        """The welcome text and the model that wrote it (the template when none can)."""
        if self._gateway.chain.models != ("offline",):
            request = ChatRequest(
                messages=welcome_prompt(profile, language),
                temperature=self._settings.temperature,
                max_tokens=min(self._settings.max_tokens, 600),
                profile=profile,
                language=language,
            )
            try:
                answer = await self._gateway.complete(request)
                return answer.reply.content.strip(), answer.reply.model
            except NoModelAnsweredError as exc:
                _log.warning("welcome falls back to the template: %s", exc)
        return welcome_message(profile, language), "template"

    async def _conversation_for(
        self,
        user_id: UUID,
        result: ArchiveResult,
        *,
        title: str | None,
        welcome: bool,
        replace_deleted: bool = False,
    ) -> AssessmentConversation:
        """The conversation of ``result``, made (with its welcome) unless it exists. One
        its student deleted is returned as it is, or, with ``replace_deleted`` (the
        student asks for it again), gives its result up to a new one."""
        language = self._settings.language
        profile = parse_profile(result.assessment_data, result.persona_profile)
        suggestions = suggested_questions(profile, language)
        async with self._uow(user_id) as uow:
            existing = await uow.conversations.get_by_result(result.id)
            if existing is not None and not (existing.is_deleted and replace_deleted):
                return await self._existing(existing)
            if existing is not None:
                await uow.conversations.release_result(existing.id)
                await uow.commit()
        writing = time.perf_counter()
        text, model = await self._write_welcome(profile, language) if welcome else ("", "")
        welcome_ms = round((time.perf_counter() - writing) * 1000)
        now = self._clock.now()
        conversation = Conversation(
            id=new_id(now),
            user_id=user_id,
            title=(title or "").strip()[:255] or assessment_title(language),
            context_type=ContextType.ASSESSMENT,
            context_data={
                "result_id": result.id,
                "assessment_name": result.assessment_name,
                "assessment_data": result.assessment_data or {},
                "persona_profile": result.persona_profile or {},
            },
            metadata={"source": "assessment", "suggestions": suggestions},
            created_at=now,
            updated_at=now,
            result_id=result.id,
        )
        message = None
        if welcome:
            message = Message(
                id=new_id(now),
                conversation_id=conversation.id,
                user_id=user_id,
                sender_type=SenderType.ASSISTANT,
                content=text,
                metadata={
                    "model": model,
                    "finish_reason": "stop",
                    "processing_time_ms": welcome_ms,
                    "kind": "welcome",
                },
                created_at=now,
            )
        async with self._uow(user_id) as uow:
            created = await uow.conversations.add_for_result(conversation)
            if created and message is not None:
                await uow.messages.add(message)
            await uow.commit()
        if not created:
            # Someone else created it meanwhile: theirs is the one.
            async with self._uow(user_id) as uow:
                existing = await uow.conversations.get_by_result(result.id)
            if existing is None:
                raise NotFoundError("assessment result not found")
            return await self._existing(existing)
        await self._events.publish(
            ConversationCreated(
                user_id=user_id,
                conversation_id=conversation.id,
                context_type=ContextType.ASSESSMENT.value,
            )
        )
        return AssessmentConversation(
            conversation=conversation,
            welcome_message=message,
            suggestions=suggestions,
            created=True,
        )

    async def _existing(self, conversation: Conversation) -> AssessmentConversation:
        async with self._uow(conversation.user_id) as uow:
            first = await uow.messages.list(conversation.id, _FIRST)
        welcome = next((m for m in first if m.metadata.get("kind") == "welcome"), None)
        return AssessmentConversation(
            conversation=conversation,
            welcome_message=welcome,
            suggestions=self.suggestions_for(conversation),
            created=False,
        )

    def suggestions_for(self, conversation: Conversation) -> list[str]:
        """Suggested questions for a conversation: from its profile, else generic ones."""
        profile = profile_from_context(conversation.context_data)
        return suggested_questions(profile, self._language(conversation))

    async def suggestions(self, user_id: UUID, conversation_id: UUID) -> list[str]:
        """``GET /conversations/{id}/suggestions``."""
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
        return self.suggestions_for(conversation)
