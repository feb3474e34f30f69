"""The in-memory store and its unit of work."""

from __future__ import annotations

import asyncio
import bisect
import builtins
import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Self
from uuid import UUID

from chatcore.domain.conversation import Conversation, ConversationStatus
from chatcore.domain.message import Message, UsageRecord
from chatcore.domain.reaction import Reaction, ReactionKind
from chatcore.pagination import PageRequest
from chatcore.ports import ConversationFilter, FoundMessage
from chatcore.search import matches
from chatcore.usage import GroupBy, UsageBucket, UsageTotals, UsageWindow, bucket_start, summarize

__all__ = [
    "Claim",
    "InMemoryConversationRepository",
    "InMemoryMessageRepository",
    "InMemoryReactionRepository",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "InMemoryUsageRepository",
    "in_window",
    "usage_series",
]


def _check_appended(new: Sequence[Message], usage: UsageRecord | None) -> None:
    if any(m.conversation_id != new[0].conversation_id for m in new):
        raise ValueError("append takes messages of one conversation")
    if usage is not None and all(m.id != usage.message_id for m in new):
        raise ValueError("append takes the usage record of one of its messages")


@dataclass(eq=False)
class Claim:
    """Something an open unit of work holds until it ends: a result id it staged (the
    in-memory stand-in for PostgreSQL's uncommitted index entry) or a conversation row
    it locked (for ``SELECT … FOR UPDATE``).

    Another unit of work that wants the same thing waits on ``ended`` (set on commit or
    rollback), then looks again.
    """

    holder: InMemoryUnitOfWork
    task: asyncio.Task[object] | None
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class InMemoryStore:
    """Committed state, shared by every unit of work made from the same factory.

    ``conversation_by_result`` is the unique index of committed conversations by
    ``result_id`` (every user's, deleted ones included); ``result_claims`` holds the
    result ids that open units of work have staged.
    """

    def __init__(self) -> None:
        self.conversations: dict[UUID, Conversation] = {}
        self.conversation_by_result: dict[str, UUID] = {}
        self.result_claims: dict[str, Claim] = {}
        self.row_locks: dict[UUID, Claim] = {}
        self.messages: dict[UUID, Message] = {}
        # Per conversation: (created_at, id) keys in ascending order, for ordered reads.
        self.message_keys: dict[UUID, list[tuple[object, UUID]]] = {}
        self.usage: dict[UUID, UsageRecord] = {}
        self.reactions: dict[UUID, Reaction] = {}
        self.commits = 0


async def _wait_for(claim: Claim, what: str) -> None:
    """Wait until the unit of work holding ``claim`` ends.

    Waiting on a unit of work that the waiting task itself holds open could never end:
    that raises ``RuntimeError`` (what PostgreSQL would report as a deadlock, were both
    sessions its own)."""
    task = asyncio.current_task()
    if task is not None and claim.task is task:
        raise RuntimeError(
            f"{what} by another unit of work of this same task: waiting for it to end"
            " would never return"
        )
    await claim.ended.wait()


def _check_owner(user_id: UUID, owner: UUID) -> None:
    # The database refuses such a row (row-level security WITH CHECK); so do we.
    if owner != user_id:
        raise PermissionError("row-level security: the row belongs to another user")


class InMemoryConversationRepository:
    """Conversations of the unit of work's user, with PostgreSQL's result semantics.

    At most one conversation exists per ``result_id``, as with the unique index: a
    result taken by a committed conversation (any user's, deleted ones included) or
    staged in this unit of work makes :meth:`add_for_result` return False (and
    :meth:`add` raise ``ValueError``). A result staged by another open unit of work makes
    both *wait* until that one commits (then False / ``ValueError``) or rolls back (then
    they insert), as PostgreSQL's INSERT waits for the transaction that holds the
    conflicting index entry. So concurrent callers create exactly one conversation, and
    the loser learns it at once, not at commit. Waiting on a unit of work that the
    waiting task itself holds open could never end: that raises ``RuntimeError`` (what
    PostgreSQL would report as a deadlock, were both sessions its own).
    """

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    async def _claim(self, result_id: str) -> bool:
        """Reserve ``result_id`` for this unit of work; False when a conversation has it."""
        uow, store = self._uow, self._uow.store
        task = asyncio.current_task()
        while True:
            holder = store.conversation_by_result.get(result_id)
            taken = holder is not None and holder != uow.released_results.get(result_id)
            if taken or result_id in uow.staged_results:
                return False
            claim = store.result_claims.get(result_id)
            if claim is None:
                break
            await _wait_for(claim, f"result {result_id} is staged")
        store.result_claims[result_id] = Claim(holder=uow, task=task)
        return True

    def _check_new(self, conversation: Conversation) -> None:
        _check_owner(self._uow.user_id, conversation.user_id)
        if (
            conversation.id in self._uow.store.conversations
            or conversation.id in self._uow.staged_conversations
        ):
            raise ValueError(f"conversation {conversation.id} exists")

    def _stage_new(self, conversation: Conversation) -> None:
        staged = copy.deepcopy(conversation)
        self._uow.staged_conversations[staged.id] = staged
        if staged.result_id is not None:
            self._uow.staged_results[staged.result_id] = staged.id

    async def add(self, conversation: Conversation) -> None:
        self._check_new(conversation)
        result_id = conversation.result_id
        if result_id is not None and not await self._claim(result_id):
            raise ValueError(f"a conversation for result {result_id} exists")
        self._stage_new(conversation)

    async def add_for_result(self, conversation: Conversation) -> bool:
        """Insert unless the result has a conversation (anyone's); True when inserted.

        Raises:
            ValueError: ``conversation.result_id`` is None.
            PermissionError: the conversation belongs to another user.
        """
        result_id = conversation.result_id
        if result_id is None:
            raise ValueError("add_for_result needs a conversation with a result_id")
        self._check_new(conversation)
        if not await self._claim(result_id):
            return False
        self._stage_new(conversation)
        return True

    async def get_by_result(self, result_id: str) -> Conversation | None:
        # Like a SELECT: committed rows and this unit of work's own, never waiting.
        conversation_id = self._uow.staged_results.get(result_id)
        if conversation_id is None and result_id not in self._uow.released_results:
            conversation_id = self._uow.store.conversation_by_result.get(result_id)
        found = None if conversation_id is None else self._visible(conversation_id)
        return copy.deepcopy(found) if found else None

    def _visible(self, conversation_id: UUID) -> Conversation | None:
        found = self._uow.staged_conversations.get(conversation_id)
        if found is None:
            found = self._uow.store.conversations.get(conversation_id)
        if found is None or found.user_id != self._uow.user_id:
            return None
        return found

    async def get(self, conversation_id: UUID) -> Conversation | None:
        found = self._visible(conversation_id)
        return copy.deepcopy(found) if found else None

    async def lock(self, conversation_id: UUID) -> Conversation | None:
        uow, store = self._uow, self._uow.store
        while (claim := store.row_locks.get(conversation_id)) is not None:
            if claim.holder is uow:
                break
            await _wait_for(claim, f"conversation {conversation_id} is locked")
        found = self._visible(conversation_id)
        if found is None:
            return None  # nothing to lock, as when row-level security hides the row
        if conversation_id not in store.row_locks:
            store.row_locks[conversation_id] = Claim(holder=uow, task=asyncio.current_task())
            uow.locked_rows.add(conversation_id)
        return copy.deepcopy(found)

    async def get_with_recent(
        self, conversation_id: UUID, limit: int
    ) -> tuple[Conversation, builtins.list[Message]] | None:
        conversation = await self.get(conversation_id)
        if conversation is None:
            return None
        return conversation, await self._uow.messages.recent(conversation_id, limit)

    async def release_result(self, conversation_id: UUID) -> bool:
        current = self._visible(conversation_id)
        if (
            current is None
            or current.status is not ConversationStatus.DELETED
            or current.result_id is None
            or self._uow.store.conversation_by_result.get(current.result_id) != current.id
        ):
            return False
        staged = copy.deepcopy(current)
        self._uow.released_results[current.result_id] = staged.id
        staged.result_id = None
        self._uow.staged_conversations[conversation_id] = staged
        return True

    async def save(self, conversation: Conversation) -> None:
        current = self._visible(conversation.id)
        if current is None:
            return  # like an UPDATE that row-level security hides: no row changes
        _check_owner(self._uow.user_id, conversation.user_id)
        staged = copy.deepcopy(conversation)
        staged.result_id = current.result_id  # fixed at creation, as in the database
        self._uow.staged_conversations[conversation.id] = staged

    async def list(
        self, where: ConversationFilter, page: PageRequest
    ) -> builtins.list[Conversation]:
        merged = {**self._uow.store.conversations, **self._uow.staged_conversations}
        rows = [
            c
            for c in merged.values()
            if c.user_id == self._uow.user_id
            and c.status in where.statuses
            and not c.is_deleted
            and (where.context_type is None or c.context_type is where.context_type)
        ]
        rows.sort(key=lambda c: (c.updated_at, c.id), reverse=True)
        if page.after is not None:
            key = (page.after.at, page.after.id)
            rows = [c for c in rows if (c.updated_at, c.id) < key]
        else:
            rows = rows[page.offset :]
        return [copy.deepcopy(c) for c in rows[: page.limit]]


class InMemoryMessageRepository:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _ordered(self, conversation_id: UUID) -> builtins.list[Message]:
        store = self._uow.store
        keys = store.message_keys.get(conversation_id, [])
        committed = [store.messages[mid] for _, mid in keys]
        staged = [
            m for m in self._uow.staged_messages.values() if m.conversation_id == conversation_id
        ]
        if staged:
            overlay = {m.id: m for m in committed}
            overlay.update({m.id: m for m in staged})
            committed = sorted(overlay.values(), key=lambda m: (m.created_at, m.id))
        return [m for m in committed if m.user_id == self._uow.user_id]

    async def add(self, message: Message) -> None:
        _check_owner(self._uow.user_id, message.user_id)
        if message.id in self._uow.store.messages:
            raise ValueError(f"message {message.id} exists")
        self._uow.staged_messages[message.id] = copy.deepcopy(message)

    async def append(self, *new: Message, usage: UsageRecord | None = None) -> None:
        _check_appended(new, usage)
        if not new:
            return
        conversation_id = new[0].conversation_id
        for message in new:
            await self.add(message)
        conversation = await self._uow.conversations.get(conversation_id)
        if conversation is not None:
            conversation.touch(max(m.created_at for m in new))
            self._uow.staged_conversations[conversation_id] = conversation
        if usage is not None:
            await self._uow.usage.add(usage)

    async def store_answer(self, message: Message, usage: UsageRecord, *, insert: bool) -> None:
        if insert:
            await self.add(message)
        else:
            await self.save(message)
        await self._uow.usage.add(usage)

    def _visible(self, message_id: UUID) -> Message | None:
        found = self._uow.staged_messages.get(message_id) or self._uow.store.messages.get(
            message_id
        )
        if found is None or found.user_id != self._uow.user_id:
            return None
        return found

    async def get(self, conversation_id: UUID, message_id: UUID) -> Message | None:
        found = self._visible(message_id)
        if found is None or found.conversation_id != conversation_id:
            return None
        return copy.deepcopy(found)

    async def save(self, message: Message) -> None:
        if self._visible(message.id) is None:
            return
        self._uow.staged_messages[message.id] = copy.deepcopy(message)

    async def list(self, conversation_id: UUID, page: PageRequest) -> builtins.list[Message]:
        rows = self._ordered(conversation_id)
        if page.after is not None:
            key = (page.after.at, page.after.id)
            start = bisect.bisect_right([(m.created_at, m.id) for m in rows], key)
            rows = rows[start:]
        else:
            rows = rows[page.offset :]
        return [copy.deepcopy(m) for m in rows[: page.limit]]

    async def recent(self, conversation_id: UUID, limit: int) -> builtins.list[Message]:
        rows = self._ordered(conversation_id)[-limit:] if limit > 0 else []
        return [copy.deepcopy(m) for m in reversed(rows)]

    async def search(self, terms: Sequence[str], page: PageRequest) -> builtins.list[FoundMessage]:
        if page.limit <= 0 or not terms:
            return []
        uow = self._uow
        conversations = {
            c.id: c
            for c in {**uow.store.conversations, **uow.staged_conversations}.values()
            if c.user_id == uow.user_id and not c.is_deleted
        }
        found = [
            m
            for m in {**uow.store.messages, **uow.staged_messages}.values()
            if m.user_id == uow.user_id
            and m.conversation_id in conversations
            and matches(m.content, terms)
        ]
        found.sort(key=lambda m: (m.created_at, m.id), reverse=True)
        if page.after is not None:
            key = (page.after.at, page.after.id)
            found = [m for m in found if (m.created_at, m.id) < key]
        return [
            FoundMessage(copy.deepcopy(m), conversations[m.conversation_id].title)
            for m in found[: page.limit]
        ]


class InMemoryReactionRepository:
    """The user's reactions; a reaction needs a message of the user (the foreign key)."""

    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _current(self) -> builtins.list[Reaction]:
        uow = self._uow
        merged = {**uow.store.reactions, **uow.staged_reactions}
        return [
            r
            for rid, r in merged.items()
            if rid not in uow.removed_reactions and r.user_id == uow.user_id
        ]

    async def put(self, reaction: Reaction) -> Reaction:
        uow = self._uow
        _check_owner(uow.user_id, reaction.user_id)
        message = uow.staged_messages.get(reaction.message_id) or uow.store.messages.get(
            reaction.message_id
        )
        if (
            message is None
            or message.conversation_id != reaction.conversation_id
            or message.user_id != reaction.user_id  # the (conversation, user) foreign key
        ):
            raise ValueError(f"message {reaction.message_id} does not exist")
        existing = next(
            (
                r
                for r in self._current()
                if r.message_id == reaction.message_id and r.reaction is reaction.reaction
            ),
            None,
        )
        stored = copy.deepcopy(reaction)
        if existing is not None:
            stored.id, stored.created_at = existing.id, existing.created_at
        uow.staged_reactions[stored.id] = stored
        return copy.deepcopy(stored)

    async def remove(self, message_id: UUID, kinds: Sequence[ReactionKind]) -> int:
        gone = [r for r in self._current() if r.message_id == message_id and r.reaction in kinds]
        for reaction in gone:
            self._uow.staged_reactions.pop(reaction.id, None)
            self._uow.removed_reactions.add(reaction.id)
        return len(gone)

    async def for_message(self, message_id: UUID) -> builtins.list[Reaction]:
        rows = [r for r in self._current() if r.message_id == message_id]
        rows.sort(key=lambda r: (r.created_at, r.reaction.value))
        return [copy.deepcopy(r) for r in rows]


def in_window(
    records: Iterable[UsageRecord], window: UsageWindow, conversation_id: UUID | None = None
) -> builtins.list[UsageRecord]:
    """The records in ``[window.start, window.end)`` (of one conversation when given)."""
    start, end = window.start, window.end
    return [
        r
        for r in records
        if (start is None or r.created_at >= start)
        and (end is None or r.created_at < end)
        and (conversation_id is None or r.conversation_id == conversation_id)
    ]


def usage_series(records: Iterable[UsageRecord], group_by: GroupBy) -> builtins.list[UsageBucket]:
    """Totals per UTC day/week/month, oldest first; periods without records left out."""
    periods: dict[datetime, builtins.list[UsageRecord]] = {}
    for record in records:
        periods.setdefault(bucket_start(record.created_at, group_by), []).append(record)
    return [
        UsageBucket(period_start=start, totals=summarize(periods[start]))
        for start in sorted(periods)
    ]


class InMemoryUsageRepository:
    def __init__(self, uow: InMemoryUnitOfWork) -> None:
        self._uow = uow

    def _visible(self) -> builtins.list[UsageRecord]:
        merged = {**self._uow.store.usage, **self._uow.staged_usage}
        return [r for r in merged.values() if r.user_id == self._uow.user_id]

    async def add(self, record: UsageRecord) -> None:
        _check_owner(self._uow.user_id, record.user_id)
        self._uow.staged_usage[record.id] = copy.deepcopy(record)

    async def for_messages(self, message_ids: Sequence[UUID]) -> dict[UUID, UsageRecord]:
        wanted = set(message_ids)
        merged = {**self._uow.store.usage, **self._uow.staged_usage}
        return {
            r.message_id: copy.deepcopy(r)
            for r in merged.values()
            if r.user_id == self._uow.user_id and r.message_id in wanted
        }

    async def totals(self, window: UsageWindow, conversation_id: UUID | None = None) -> UsageTotals:
        return summarize(in_window(self._visible(), window, conversation_id))

    async def series(
        self, window: UsageWindow, group_by: GroupBy, conversation_id: UUID | None = None
    ) -> builtins.list[UsageBucket]:
        return usage_series(in_window(self._visible(), window, conversation_id), group_by)


class InMemoryUnitOfWork:
    """Stages writes and applies them all at once on :meth:`commit`."""

    def __init__(self, store: InMemoryStore, user_id: UUID) -> None:
        self.store = store
        self.user_id = user_id
        self.staged_conversations: dict[UUID, Conversation] = {}
        # The result ids of the staged conversations that have one (claimed in the store).
        self.staged_results: dict[str, UUID] = {}
        # Results that deleted conversations gave up (release_result), and by which.
        self.released_results: dict[str, UUID] = {}
        self.staged_messages: dict[UUID, Message] = {}
        self.staged_usage: dict[UUID, UsageRecord] = {}
        self.staged_reactions: dict[UUID, Reaction] = {}
        self.removed_reactions: set[UUID] = set()
        self.locked_rows: set[UUID] = set()
        self.conversations = InMemoryConversationRepository(self)
        self.messages = InMemoryMessageRepository(self)
        self.usage = InMemoryUsageRepository(self)
        self.reactions = InMemoryReactionRepository(self)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._discard()

    def _discard(self) -> None:
        # Release the claimed results: whoever waits on them looks again (and, after a
        # commit, finds them taken).
        for result_id in self.staged_results:
            claim = self.store.result_claims.get(result_id)
            if claim is not None and claim.holder is self:
                del self.store.result_claims[result_id]
                claim.ended.set()
        for conversation_id in self.locked_rows:
            lock = self.store.row_locks.pop(conversation_id, None)
            if lock is not None:
                lock.ended.set()
        self.locked_rows.clear()
        self.staged_conversations.clear()
        self.staged_results.clear()
        self.released_results.clear()
        self.staged_messages.clear()
        self.staged_usage.clear()
        self.staged_reactions.clear()
        self.removed_reactions.clear()

    async def commit(self) -> None:
        """Apply the staged writes all at once, or none of them.

        Raises:
            ValueError: a staged message belongs to no conversation, or a staged result
                was committed by another unit of work meanwhile. The latter cannot happen
                through the repositories (the claim makes the others wait); it guards the
                unique index against a store changed behind their back. Nothing is
                applied then, like a transaction failing on a unique violation.
        """
        store = self.store
        for message in self.staged_messages.values():
            if message.conversation_id not in store.conversations and (
                message.conversation_id not in self.staged_conversations
            ):
                raise ValueError("message of an unknown conversation")
        released = {
            result_id
            for result_id, conversation_id in self.released_results.items()
            if store.conversation_by_result.get(result_id) == conversation_id
        }
        for result_id, conversation_id in self.staged_results.items():
            holder = store.conversation_by_result.get(result_id, conversation_id)
            if holder != conversation_id and result_id not in released:
                raise ValueError(f"a conversation for result {result_id} exists")
        store.conversations.update(self.staged_conversations)
        for result_id in released:
            del store.conversation_by_result[result_id]
        store.conversation_by_result.update(self.staged_results)
        for message in self.staged_messages.values():
            if message.id not in store.messages:
                keys = store.message_keys.setdefault(message.conversation_id, [])
                bisect.insort(keys, (message.created_at, message.id))
            store.messages[message.id] = message
        store.usage.update(self.staged_usage)
        for reaction_id in self.removed_reactions:
            store.reactions.pop(reaction_id, None)
        store.reactions.update(self.staged_reactions)
        store.commits += 1
        self._discard()


class InMemoryUnitOfWorkFactory:
    """``factory(user_id)`` opens a unit of work on ``store`` for that user."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store if store is not None else InMemoryStore()

    def __call__(self, user_id: UUID) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, user_id)
