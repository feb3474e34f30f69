"""Conversation and message routes."""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import UUID

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.params import Parameter

from chatcore.domain import ContextType, ConversationStatus, ReactionKind
from chatcore.errors import ValidationError
from chatcore.export import export_filename, render_markdown, render_text
from chatcore.ports import ConversationFilter
from chatcore.search import MAX_QUERY_LENGTH
from chatcore.services import CreateConversation, RegenerateOptions, UpdateConversation
from entrypoints.auth import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.deps import authenticate, page_request
from entrypoints.http.schemas import (
    ConversationList,
    ConversationOut,
    CreateConversationBody,
    MessageList,
    Ok,
    Pagination,
    ReactionBody,
    ReactionsOut,
    RegenerateBody,
    RegenerateOut,
    SearchResults,
    SendMessageBody,
    SendMessageOut,
    UpdateConversationBody,
    conversation_out,
    message_out,
    reactions_out,
    search_results,
    usage_out,
)
from entrypoints.http.sse import EventStream, sse_frames

__all__ = ["ConversationController"]

Limit = Annotated[int, Parameter(ge=1, le=100, description="Items per page (1-100).")]
Page = Annotated[int | None, Parameter(ge=1, le=1_000_000, description="1-based page (compat).")]
Cursor = Annotated[
    str | None, Parameter(max_length=64, description="next_cursor of the previous page.")
]


class ConversationController(Controller):
    """Path ids are routed as strings and parsed by the handlers' ``UUID`` annotation,
    so a malformed id is a 400 ``VALIDATION_ERROR`` (not an unmatched route's 404)."""

    path = "/conversations"
    tags = ["conversations"]
    before_request = staticmethod(authenticate)

    @post("/", status_code=201, summary="Create a conversation")
    async def create(
        self, container: Container, principal: Principal, data: CreateConversationBody | None = None
    ) -> Ok[ConversationOut]:
        data = data or CreateConversationBody()
        conversation = await container.conversations.create(
            principal.user_id,
            CreateConversation(
                title=data.title,
                context_type=data.context_type,
                context_data=data.context_data or {},
                metadata=data.metadata or {},
                persona_profile=data.profilePersona,
                result_id=data.resultsId,
            ),
        )
        return Ok(message="Conversation created", data=conversation_out(conversation))

    @get("/", summary="List conversations, most recently active first")
    async def list_conversations(
        self,
        container: Container,
        principal: Principal,
        limit: Limit = 20,
        cursor: Cursor = None,
        page: Page = None,
        status: ConversationStatus | None = None,
        context_type: ContextType | None = None,
    ) -> Ok[ConversationList]:
        if status is ConversationStatus.DELETED:
            raise ValidationError("status must be active or archived")
        where = ConversationFilter(
            statuses=frozenset({status or ConversationStatus.ACTIVE}),
            context_type=context_type,
        )
        result = await container.conversations.list(
            principal.user_id, where, page_request(limit, cursor, page)
        )
        return Ok(
            data=ConversationList(
                conversations=[conversation_out(c) for c in result.items],
                pagination=Pagination(
                    limit=limit,
                    next_cursor=result.next_cursor,
                    has_more=result.next_cursor is not None,
                    page=None if cursor else page,
                ),
            )
        )

    @get(
        "/search",
        summary="Search the user's messages",
        description=(
            "Every word of `q` must start a word of the message (`kar` finds `karier`). "
            "Messages of the user's conversations that are not deleted, newest first. "
            "`snippet` is HTML-escaped text with the matching words in `<mark>`."
        ),
    )
    async def search(
        self,
        container: Container,
        principal: Principal,
        q: Annotated[str, Parameter(min_length=1, max_length=MAX_QUERY_LENGTH)],
        limit: Limit = 20,
        cursor: Cursor = None,
        page: Page = None,
    ) -> Ok[SearchResults]:
        result = await container.library.search(
            principal.user_id, q, page_request(limit, cursor, page)
        )
        pagination = Pagination(
            limit=limit,
            next_cursor=result.next_cursor,
            has_more=result.next_cursor is not None,
            page=None if cursor else page,
        )
        return Ok(data=search_results(q, result.items, pagination))

    @get("/{conversation_id:str}", summary="Get a conversation")
    async def get_conversation(
        self,
        conversation_id: UUID,
        container: Container,
        principal: Principal,
        include_messages: bool = False,
        message_limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> Ok[ConversationOut]:
        conversation, messages = await container.conversations.get(
            principal.user_id,
            conversation_id,
            message_limit=message_limit if include_messages else 0,
        )
        return Ok(data=conversation_out(conversation, messages if include_messages else None))

    @put("/{conversation_id:str}", summary="Update a conversation")
    async def update_conversation(
        self,
        conversation_id: UUID,
        data: UpdateConversationBody,
        container: Container,
        principal: Principal,
    ) -> Ok[ConversationOut]:
        conversation = await container.conversations.update(
            principal.user_id,
            conversation_id,
            UpdateConversation(
                title=data.title,
                status=data.status,
                metadata=data.metadata,
                context_data=data.context_data,
            ),
        )
        return Ok(message="Conversation updated", data=conversation_out(conversation))

    @delete("/{conversation_id:str}", status_code=200, summary="Delete a conversation (soft)")
    async def delete_conversation(
        self, conversation_id: UUID, container: Container, principal: Principal
    ) -> Ok[None]:
        await container.conversations.delete(principal.user_id, conversation_id)
        return Ok(message="Conversation deleted", data=None)

    @get(
        "/{conversation_id:str}/export",
        summary="Download the conversation (json, txt or md)",
        description=(
            "A file (`Content-Disposition: attachment`), not the JSON envelope: `json` is "
            "`{conversation, messages, exported_at}`, `txt` a plain transcript, `md` "
            "Markdown. Every message, oldest first."
        ),
    )
    async def export(
        self,
        conversation_id: UUID,
        container: Container,
        principal: Principal,
        format: Annotated[
            Literal["json", "txt", "md"], Parameter(description="json, txt or md")
        ] = "json",
    ) -> Response[bytes]:
        transcript = await container.library.transcript(principal.user_id, conversation_id)
        conversation, messages = transcript.conversation, transcript.messages
        now = container.clock.now()
        language = container.messages.language_of(conversation)
        if format == "json":
            document = {
                "conversation": conversation_out(conversation),
                "messages": [message_out(m) for m in messages],
                "exported_at": now,
            }
            body, media_type = msgspec.json.encode(document), "application/json"
        elif format == "txt":
            text = render_text(conversation, messages, language=language, exported_at=now)
            body, media_type = text.encode(), "text/plain; charset=utf-8"
        else:
            text = render_markdown(conversation, messages, language=language, exported_at=now)
            body, media_type = text.encode(), "text/markdown; charset=utf-8"
        filename = export_filename(conversation, format)
        return Response(
            body,
            media_type=media_type,
            headers={
                # As the header: Litestar would add a second charset to a text/ type.
                "content-type": media_type,
                "content-disposition": f'attachment; filename="{filename}"',
                "cache-control": "no-store",
            },
        )

    @post(
        "/{conversation_id:str}/messages",
        status_code=201,
        summary="Send a message and get the advisor's answer",
    )
    async def send_message(
        self,
        conversation_id: UUID,
        data: SendMessageBody,
        container: Container,
        principal: Principal,
    ) -> Ok[SendMessageOut]:
        result = await container.messages.send(
            principal.user_id,
            conversation_id,
            data.content,
            parent_message_id=data.parent_message_id,
        )
        return Ok(
            message="Message sent",
            data=SendMessageOut(
                user_message=message_out(result.user_message),
                assistant_message=message_out(result.assistant_message),
                usage=usage_out(result.usage),
                model=result.model,
                processing_time_ms=result.processing_time_ms,
            ),
        )

    @get("/{conversation_id:str}/messages", summary="List messages, oldest first")
    async def list_messages(
        self,
        conversation_id: UUID,
        container: Container,
        principal: Principal,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
        cursor: Cursor = None,
        page: Page = None,
        include_usage: bool = False,
    ) -> Ok[MessageList]:
        result = await container.messages.list(
            principal.user_id,
            conversation_id,
            page_request(limit, cursor, page),
            include_usage=include_usage,
        )
        return Ok(
            data=MessageList(
                messages=[message_out(m, result.usage.get(m.id)) for m in result.page.items],
                pagination=Pagination(
                    limit=limit,
                    next_cursor=result.page.next_cursor,
                    has_more=result.page.next_cursor is not None,
                    page=None if cursor else page,
                ),
            )
        )

    @post(
        "/{conversation_id:str}/messages/stream",
        status_code=200,
        summary="Send a message and stream the answer (server-sent events)",
        description=(
            "Events: `user_message` (the stored message), `assistant_chunk` `{delta}` per "
            "piece, then `complete` `{assistant_message, usage, model}` or `error` "
            "`{code, message, user_message_id}`; `: keep-alive` comments in between. "
            "Closing the connection cancels the answer, which is kept as `cancelled`."
        ),
    )
    async def stream_message(
        self,
        conversation_id: UUID,
        data: SendMessageBody,
        container: Container,
        principal: Principal,
    ) -> EventStream:
        updates = await container.messages.stream(
            principal.user_id,
            conversation_id,
            data.content,
            parent_message_id=data.parent_message_id,
        )
        return EventStream(
            sse_frames(updates),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @post(
        "/{conversation_id:str}/messages/{message_id:str}/regenerate",
        status_code=201,
        summary="Regenerate an answer as a sibling of the original",
    )
    async def regenerate(
        self,
        conversation_id: UUID,
        message_id: UUID,
        container: Container,
        principal: Principal,
        data: RegenerateBody | None = None,
    ) -> Ok[RegenerateOut]:
        data = data or RegenerateBody()
        result = await container.messages.regenerate(
            principal.user_id,
            conversation_id,
            message_id,
            RegenerateOptions(
                temperature=data.temperature, max_tokens=data.max_tokens, model=data.model
            ),
        )
        return Ok(
            message="Answer regenerated",
            data=RegenerateOut(
                message=message_out(result.message),
                usage=usage_out(result.usage),
                original_message_id=result.original_message_id,
            ),
        )

    @post(
        "/{conversation_id:str}/messages/{message_id:str}/reactions",
        status_code=200,
        summary="React to an answer",
        description=(
            "`like`/`dislike` and `helpful`/`not_helpful` are each a choice of one: a "
            "reaction replaces the other of its pair; the same reaction again replaces its "
            "`feedback`. Only the advisor's answers take reactions. Returns the message's "
            "reactions."
        ),
    )
    async def react(
        self,
        conversation_id: UUID,
        message_id: UUID,
        data: ReactionBody,
        container: Container,
        principal: Principal,
    ) -> Ok[ReactionsOut]:
        reactions = await container.library.react(
            principal.user_id, conversation_id, message_id, data.reaction, data.feedback
        )
        return Ok(message="Reaction saved", data=reactions_out(message_id, reactions))

    @get(
        "/{conversation_id:str}/messages/{message_id:str}/reactions",
        summary="The reactions to a message",
    )
    async def reactions(
        self, conversation_id: UUID, message_id: UUID, container: Container, principal: Principal
    ) -> Ok[ReactionsOut]:
        reactions = await container.library.reactions(
            principal.user_id, conversation_id, message_id
        )
        return Ok(data=reactions_out(message_id, reactions))

    @delete(
        "/{conversation_id:str}/messages/{message_id:str}/reactions/{reaction:str}",
        status_code=200,
        summary="Take a reaction back",
    )
    async def unreact(
        self,
        conversation_id: UUID,
        message_id: UUID,
        reaction: ReactionKind,
        container: Container,
        principal: Principal,
    ) -> Ok[ReactionsOut]:
        reactions = await container.library.unreact(
            principal.user_id, conversation_id, message_id, reaction
        )
        return Ok(message="Reaction removed", data=reactions_out(message_id, reactions))
