"""Assessment routes: a conversation from an archive result, and suggested questions."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Response, get, post

from entrypoints.auth import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.deps import authenticate
from entrypoints.http.schemas import (
    ConversationOut,
    InboundBody,
    MessageOut,
    Ok,
    Title,
    conversation_out,
    message_out,
)

__all__ = ["AssessmentController", "SuggestionController"]


class FromAssessmentBody(InboundBody, kw_only=True, forbid_unknown_fields=True):
    assessment_id: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    title: Title | None = None
    auto_start_message: bool = True


class FromAssessmentOut(msgspec.Struct, kw_only=True):
    conversation: ConversationOut
    welcome_message: MessageOut | None
    suggestions: list[str]
    created: bool


class SuggestionsOut(msgspec.Struct, kw_only=True):
    conversation_id: UUID
    suggestions: list[str]


class AssessmentController(Controller):
    path = "/assessment"
    tags = ["assessment"]
    before_request = staticmethod(authenticate)

    @post(
        "/from-assessment",
        summary="The career-guidance conversation of an assessment result",
        description=(
            "Creates, on first call, the conversation of the archive result `assessment_id` "
            "(which must be the caller's and completed) with a personalized welcome message "
            "and suggested questions: 201. The same result again gives the same "
            "conversation: 200. The consumer of `analysis.completed` events reaches the "
            "same conversation."
        ),
        status_code=201,
    )
    async def from_assessment(
        self, data: FromAssessmentBody, container: Container, principal: Principal
    ) -> Response[Any]:
        made = await container.assessment.from_assessment(
            principal.user_id,
            data.assessment_id.strip(),
            title=data.title,
            auto_start_message=data.auto_start_message,
        )
        body = Ok(
            message="Conversation created" if made.created else "Conversation already exists",
            data=FromAssessmentOut(
                conversation=conversation_out(made.conversation),
                welcome_message=(
                    message_out(made.welcome_message) if made.welcome_message else None
                ),
                suggestions=made.suggestions,
                created=made.created,
            ),
        )
        return Response(body, status_code=201 if made.created else 200)


class SuggestionController(Controller):
    path = "/conversations"
    tags = ["assessment"]
    before_request = staticmethod(authenticate)

    @get("/{conversation_id:str}/suggestions", summary="Suggested questions for a conversation")
    async def suggestions(
        self, conversation_id: UUID, container: Container, principal: Principal
    ) -> Ok[SuggestionsOut]:
        questions = await container.assessment.suggestions(principal.user_id, conversation_id)
        return Ok(data=SuggestionsOut(conversation_id=conversation_id, suggestions=questions))
