"""What a student does with what was said: search it, export it, react to answers."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Final
from uuid import UUID

from chatcore.domain.conversation import Conversation
from chatcore.domain.ids import new_id
from chatcore.domain.message import Message, SenderType
from chatcore.domain.reaction import MAX_FEEDBACK_LENGTH, Reaction, ReactionKind
from chatcore.errors import NotFoundError, ValidationError
from chatcore.pagination import Cursor, PageRequest
from chatcore.ports import Clock, UnitOfWork, UnitOfWorkFactory
from chatcore.search import search_terms, snippet
from chatcore.services.common import Page, load_conversation, page_of, probe

__all__ = ["LibraryService", "SearchHit", "Transcript"]

_TRANSCRIPT_PAGE: Final = 500
"""Messages read per round trip while a transcript is gathered."""


@dataclass(slots=True, frozen=True, kw_only=True)
class SearchHit:
    """A message that matched, with its conversation's title and an HTML-safe snippet in
    which the matching words are wrapped in ``<mark>``."""

    message: Message
    conversation_title: str
    snippet: str


@dataclass(slots=True, frozen=True, kw_only=True)
class Transcript:
    """A conversation and every one of its messages, oldest first."""

    conversation: Conversation
    messages: builtins.list[Message]


class LibraryService:
    """Search, export and reactions, each in one transaction on behalf of one user."""

    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    async def search(self, user_id: UUID, query: str, page: PageRequest) -> Page[SearchHit]:
        """The user's messages in which every word of ``query`` starts a word, newest first.

        Raises:
            ValidationError: ``query`` has no word or is too long.
        """
        terms = search_terms(query)
        async with self._uow(user_id) as uow:
            rows = await uow.messages.search(terms, probe(page))
        found = page_of(rows, page, lambda f: (f.message.created_at, f.message.id))
        hits = [
            SearchHit(
                message=found.message,
                conversation_title=found.conversation_title,
                snippet=snippet(found.message.content, terms),
            )
            for found in found.items
        ]
        return Page(hits, found.next_cursor)

    async def transcript(self, user_id: UUID, conversation_id: UUID) -> Transcript:
        """The conversation with all its messages (for an export), read in one transaction."""
        async with self._uow(user_id) as uow:
            conversation = await load_conversation(uow, conversation_id)
            messages: builtins.list[Message] = []
            page = PageRequest(limit=_TRANSCRIPT_PAGE)
            while True:
                rows = await uow.messages.list(conversation_id, page)
                messages += rows
                if len(rows) < page.limit:
                    break
                page = PageRequest(limit=_TRANSCRIPT_PAGE, after=_after(rows[-1]))
        return Transcript(conversation=conversation, messages=messages)

    async def react(
        self,
        user_id: UUID,
        conversation_id: UUID,
        message_id: UUID,
        kind: ReactionKind,
        feedback: str | None = None,
    ) -> builtins.list[Reaction]:
        """React to one of the advisor's answers; returns the message's reactions.

        The same reaction again replaces its feedback; a reaction replaces the other of
        its pair (``like`` the ``dislike``, ``helpful`` the ``not_helpful``).

        Raises:
            NotFoundError: no such conversation or message of the user.
            ValidationError: the message is not an answer, or the feedback is too long.
        """
        text = (feedback or "").strip() or None
        if text is not None and len(text) > MAX_FEEDBACK_LENGTH:
            raise ValidationError(
                f"feedback must be at most {MAX_FEEDBACK_LENGTH} characters",
                details={"field": "feedback", "max_length": MAX_FEEDBACK_LENGTH},
            )
        now = self._clock.now()
        async with self._uow(user_id) as uow:
            message = await _answer(uow, conversation_id, message_id)
            await uow.reactions.remove(message.id, [kind.opposite])
            await uow.reactions.put(
                Reaction(
                    id=new_id(now),
                    message_id=message.id,
                    conversation_id=conversation_id,
                    user_id=user_id,
                    reaction=kind,
                    feedback=text,
                    created_at=now,
                    updated_at=now,
                )
            )
            reactions = await uow.reactions.for_message(message.id)
            await uow.commit()
        return reactions

    async def unreact(
        self, user_id: UUID, conversation_id: UUID, message_id: UUID, kind: ReactionKind
    ) -> builtins.list[Reaction]:
        """Take a reaction back (nothing happens when there is none); the reactions left."""
        async with self._uow(user_id) as uow:
            message = await _answer(uow, conversation_id, message_id)
            await uow.reactions.remove(message.id, [kind])
            reactions = await uow.reactions.for_message(message.id)
            await uow.commit()
        return reactions

    async def reactions(
        self, user_id: UUID, conversation_id: UUID, message_id: UUID
    ) -> builtins.list[Reaction]:
        """The reactions to one of the user's messages."""
        async with self._uow(user_id) as uow:
            message = await _message(uow, conversation_id, message_id)
            return await uow.reactions.for_message(message.id)


def _after(message: Message) -> Cursor:
    return Cursor(at=message.created_at, id=message.id)


async def _message(uow: UnitOfWork, conversation_id: UUID, message_id: UUID) -> Message:
    await load_conversation(uow, conversation_id)
    message = await uow.messages.get(conversation_id, message_id)
    if message is None:
        raise NotFoundError("message not found")
    return message


async def _answer(uow: UnitOfWork, conversation_id: UUID, message_id: UUID) -> Message:
    message = await _message(uow, conversation_id, message_id)
    if message.sender_type is not SenderType.ASSISTANT:
        raise ValidationError(
            "only the advisor's answers take reactions", details={"message_id": str(message_id)}
        )
    return message
