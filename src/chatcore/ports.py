"""Ports: what the core needs from the world, as ``typing.Protocol``s.

Adapters implement them without inheriting (``InMemoryConversationRepository``,
``PostgresConversationRepository``, ``OfflineChatModel``...).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from chatcore.domain.conversation import ContextType, Conversation, ConversationStatus
from chatcore.domain.message import Message, UsageRecord
from chatcore.domain.reaction import Reaction, ReactionKind
from chatcore.events import DomainEvent
from chatcore.models import ChatReply, ChatRequest, StreamEvent
from chatcore.pagination import PageRequest
from chatcore.usage import GroupBy, UsageBucket, UsageTotals, UsageWindow

__all__ = [
    "ChatModel",
    "Clock",
    "ConversationFilter",
    "ConversationRepository",
    "EventPublisher",
    "MessageRepository",
    "RateDecision",
    "RateLimiter",
    "StaleReadError",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "UsageRepository",
]


class Clock(Protocol):
    """The time. Injected so that tests and the fallback policy control it."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


@dataclass(slots=True, frozen=True, kw_only=True)
class ConversationFilter:
    """Which of the user's conversations a list returns; deleted ones never appear."""

    statuses: frozenset[ConversationStatus] = frozenset({ConversationStatus.ACTIVE})
    context_type: ContextType | None = None


class ConversationRepository(Protocol):
    """Conversations of the unit of work's user; another user's rows are invisible."""

    async def add(self, conversation: Conversation) -> None:
        """Insert a new conversation."""
        ...

    async def get(self, conversation_id: UUID) -> Conversation | None:
        """The conversation, deleted ones included, or None when the user has no such row."""
        ...

    async def lock(self, conversation_id: UUID) -> Conversation | None:
        """What :meth:`get` returns, with the row locked until this unit of work ends.

        Another unit of work that locks the same conversation waits until then, and then
        reads what this one committed; so a check made under the lock (has it been
        announced?) and the write that follows are one step for concurrent callers.
        Plain reads do not wait."""
        ...

    async def get_with_recent(
        self, conversation_id: UUID, limit: int
    ) -> tuple[Conversation, builtins.list[Message]] | None:
        """What :meth:`get` returns and the ``limit`` newest messages of the conversation
        (newest first, as ``MessageRepository.recent``), read together; None when the
        user has no such conversation. The list and the conversation are the caller's;
        the messages in it, and the conversation's dicts, are for reading only (an
        implementation may keep them and hand them out again).

        An implementation may answer from what it remembers of an earlier unit of work,
        without asking the store, and check later that it was still true: the unit's
        first write of the conversation, or else its commit or the error that ends it,
        then raises :class:`StaleReadError` if it was not (see :class:`UnitOfWork`)."""
        ...

    async def add_for_result(self, conversation: Conversation) -> bool:
        """Insert unless a conversation for ``conversation.result_id`` exists (any user's,
        deleted ones included); True when inserted. Atomic: a unique constraint decides,
        so concurrent callers create exactly one."""
        ...

    async def get_by_result(self, result_id: str) -> Conversation | None:
        """The user's conversation made for ``result_id`` (deleted ones included), or None."""
        ...

    async def release_result(self, conversation_id: UUID) -> bool:
        """Detach a *deleted* conversation from its result, so that a new one may be made
        for the result (the deleted one stays, with ``result_id`` None). True when it
        was detached; False when the user has no such deleted conversation with a result."""
        ...

    async def save(self, conversation: Conversation) -> None:
        """Write back title, status, metadata, context data and ``updated_at``."""
        ...

    async def list(
        self, where: ConversationFilter, page: PageRequest
    ) -> builtins.list[Conversation]:
        """Up to ``page.limit`` conversations, newest ``updated_at`` first (ties by id, desc).

        With ``page.after``, only those strictly after that key in this order.
        """
        ...


@dataclass(slots=True, frozen=True)
class FoundMessage:
    """A message a search found, with the title of its conversation."""

    message: Message
    conversation_title: str


class MessageRepository(Protocol):
    """Messages of the unit of work's user."""

    async def add(self, message: Message) -> None:
        """Insert a new message."""
        ...

    async def append(self, *messages: Message, usage: UsageRecord | None = None) -> None:
        """Insert new messages of one conversation and, in the same write, move the
        conversation's ``updated_at`` up to the newest message's ``created_at`` (never
        back); nothing else of the conversation is written. ``usage``: a usage record of
        one of these messages, appended in that same write.

        Raises:
            ValueError: the messages belong to different conversations, or ``usage``
                is of none of them.
        """
        ...

    async def store_answer(self, message: Message, usage: UsageRecord, *, insert: bool) -> None:
        """Insert (``insert``) or write back an answer, and append its usage record, in
        one write."""
        ...

    async def get(self, conversation_id: UUID, message_id: UUID) -> Message | None:
        """The message if it belongs to that conversation (and to the user)."""
        ...

    async def save(self, message: Message) -> None:
        """Write back content, status and metadata."""
        ...

    async def list(self, conversation_id: UUID, page: PageRequest) -> builtins.list[Message]:
        """Up to ``page.limit`` messages oldest first, ordered by ``(created_at, id)``."""
        ...

    async def recent(self, conversation_id: UUID, limit: int) -> builtins.list[Message]:
        """The ``limit`` newest messages of the conversation, newest first."""
        ...

    async def search(self, terms: Sequence[str], page: PageRequest) -> builtins.list[FoundMessage]:
        """Up to ``page.limit`` of the user's messages, in conversations not deleted, in
        which every term is the start of a word (:func:`chatcore.search.matches`), newest
        first by ``(created_at, id)``; with ``page.after``, only those strictly older."""
        ...


class ReactionRepository(Protocol):
    """The user's reactions to messages."""

    async def put(self, reaction: Reaction) -> Reaction:
        """Store ``reaction``; the user's reaction of the same kind to the same message,
        if any, is updated instead (its feedback and ``updated_at``; its id and
        ``created_at`` stay). Returns what is stored."""
        ...

    async def remove(self, message_id: UUID, kinds: Sequence[ReactionKind]) -> int:
        """Delete the user's reactions of these kinds to the message; how many there were."""
        ...

    async def for_message(self, message_id: UUID) -> builtins.list[Reaction]:
        """The user's reactions to the message, oldest first."""
        ...


class UsageRepository(Protocol):
    """The usage ledger: one row per model answer."""

    async def add(self, record: UsageRecord) -> None:
        """Append a record."""
        ...

    async def for_messages(self, message_ids: Sequence[UUID]) -> dict[UUID, UsageRecord]:
        """The records of these messages, by message id."""
        ...

    async def totals(self, window: UsageWindow, conversation_id: UUID | None = None) -> UsageTotals:
        """The user's totals in ``window`` (of one conversation when given)."""
        ...

    async def series(
        self, window: UsageWindow, group_by: GroupBy, conversation_id: UUID | None = None
    ) -> list[UsageBucket]:
        """The user's totals per day/week/month (UTC), oldest first, empty periods left out."""
        ...


class StaleReadError(Exception):
    """A read answered from memory was out of date; nothing of the unit of work was
    written. Run the unit of work again: its reads then go to the store."""


class UnitOfWork(Protocol):
    """One transaction on behalf of one user.

    Rolls back on exit unless :meth:`commit` was called. Every repository it hands
    out sees only ``user_id``'s rows. A write that returns nothing may be sent when it
    is made or only when a later statement or :meth:`commit` needs it (the PostgreSQL
    adapter keeps it, to send the whole unit of work in fewer round trips); its errors
    (``PermissionError``, ``ValueError``) then come from there.

    A unit of work whose read was answered from memory
    (``ConversationRepository.get_with_recent``) raises :class:`StaleReadError` when
    that answer turns out to be out of date: from the write that checks it, from
    :meth:`commit`, or in place of an error raised inside the ``async with`` block
    (a decision made on the old answer). Nothing of that unit of work was written;
    run it again in a new one, whose reads go to the store.
    """

    @property
    def user_id(self) -> UUID:
        """The user every read and write is scoped to."""
        ...

    @property
    def conversations(self) -> ConversationRepository: ...

    @property
    def messages(self) -> MessageRepository: ...

    @property
    def usage(self) -> UsageRepository: ...

    @property
    def reactions(self) -> ReactionRepository: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None:
        """Make the changes durable."""
        ...


class UnitOfWorkFactory(Protocol):
    """Opens a unit of work scoped to a user."""

    def __call__(self, user_id: UUID) -> UnitOfWork: ...


class ChatModel(Protocol):
    """A language model that answers a prompt, whole or as a stream."""

    async def complete(self, request: ChatRequest) -> ChatReply:
        """The whole answer. Raises :class:`chatcore.models.ModelError` on failure."""
        ...

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Deltas, then one :class:`StreamEnd`. Raises ``ModelError`` on failure."""
        ...


@dataclass(slots=True, frozen=True)
class RateDecision:
    """``allowed``, how many remain in the window, and when to retry (seconds) if refused."""

    allowed: bool
    remaining: int
    retry_after: int = 0


class RateLimiter(Protocol):
    """A sliding-window counter per key."""

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        """Count one event for ``key`` unless ``limit`` events already fell in the window."""
        ...


class EventPublisher(Protocol):
    """Where domain events go after their transaction committed (logs, metrics, buses)."""

    async def publish(self, event: DomainEvent) -> None:
        """Deliver one event; must not raise for a failing subscriber."""
        ...
