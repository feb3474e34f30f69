"""Settings and helpers shared by the use cases."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar
from uuid import UUID

from chatcore.domain.conversation import Conversation
from chatcore.domain.message import Message
from chatcore.errors import NotFoundError
from chatcore.pagination import PageRequest, encode_cursor
from chatcore.ports import UnitOfWork

__all__ = [
    "ChatSettings",
    "Page",
    "load_conversation",
    "load_conversation_with_recent",
    "page_of",
    "probe",
]

T = TypeVar("T")


@dataclass(slots=True, frozen=True, kw_only=True)
class ChatSettings:
    """The core's configuration (the entrypoints read it from the environment).

    Attributes:
        language: default answer language, ``id`` or ``en``.
        max_message_length: the most characters a user message may have.
        history_token_budget: the most estimated tokens of a prompt.
        max_tokens: the most tokens a model may answer with.
        temperature: sampling temperature sent to the model.
        history_window: how many recent messages are read to find the current branch.
    """

    language: str = "id"
    max_message_length: int = 10_000
    history_token_budget: int = 6_000
    max_tokens: int = 1_000
    temperature: float = 0.3
    history_window: int = 60


@dataclass(slots=True, frozen=True)
class Page(Generic[T]):
    """One page of a list; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None


def probe(page: PageRequest) -> PageRequest:
    """``page`` with one more item asked for: whether it comes tells if a page follows."""
    return PageRequest(limit=page.limit + 1, after=page.after, offset=page.offset)


def page_of(rows: list[T], page: PageRequest, key: Callable[[T], tuple[datetime, UUID]]) -> Page[T]:
    """The page in ``rows`` (read with :func:`probe`), its cursor made from ``key`` of
    its last item when more rows follow."""
    items = rows[: page.limit]
    more = len(rows) > page.limit and bool(items)
    return Page(items, encode_cursor(*key(items[-1])) if more else None)


async def load_conversation(uow: UnitOfWork, conversation_id: UUID) -> Conversation:
    """The user's live conversation, or :class:`NotFoundError` (also for deleted ones)."""
    conversation = await uow.conversations.get(conversation_id)
    if conversation is None or conversation.is_deleted:
        raise NotFoundError("conversation not found")
    return conversation


async def load_conversation_with_recent(
    uow: UnitOfWork, conversation_id: UUID, limit: int
) -> tuple[Conversation, list[Message]]:
    """:func:`load_conversation` and its ``limit`` newest messages (newest first), read
    together."""
    found = await uow.conversations.get_with_recent(conversation_id, limit)
    if found is None or found[0].is_deleted:
        raise NotFoundError("conversation not found")
    return found
