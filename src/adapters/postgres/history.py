"""Conversations and their newest messages kept in memory, checked against the
database's counter.

Every message sent reads its conversation and the conversation's newest messages (the
history window, 60 by default) to build the prompt. Most of them have not changed since
the previous message of the same conversation, which this process usually handled
itself. Reading them again costs PostgreSQL and the service more than anything else the
message route does with its data (decisions 0015 and 0017).

``conversations.history_version`` counts the changes to a conversation and its
messages: every statement of the service that updates a conversation, or inserts or
updates one of its messages, adds one to it, in the same statement. An :class:`Entry`
says "at version *v* the conversation and its newest messages were these". It stays
true whoever changes the conversation later: a later change only makes the entry old.

A read that an entry can answer is answered from memory, and the unit of work relies
on the entry's version (:meth:`PendingHistory.remembered`). The unit's first write of
the conversation carries the check: it writes only if the version is still the one
relied on, in the same statement. Otherwise the read is checked by one statement at
commit, or when the unit ends with an error. A failed check drops the entry and raises
``chatcore.ports.StaleReadError``: nothing was written, and the unit runs again.

A unit of work keeps what its own statements changed in a :class:`PendingHistory`. Its
writes return the new version. When that version is the entry's plus one, nobody else
wrote in between, and the entry moves forward with what was written. Otherwise, the
entry is dropped. Entries reach the shared :class:`HistoryCache` only when the
transaction commits. A rollback leaves the cache as it was, still true of its versions.

Messages in the cache are shared with the readers (``get_with_recent``): they are for
reading. Messages being written are copied first, since the service goes on changing
its own ``Message`` objects (a streamed answer's content and status). A conversation is
handed out as a copy of its own, its dicts shared and for reading (the domain replaces
them rather than changing them).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from chatcore.domain.conversation import Conversation
from chatcore.domain.message import Message

__all__ = ["DEFAULT_MAX_AGE", "Entry", "HistoryCache", "PendingHistory"]

DEFAULT_MAX_AGE = 60.0
"""Seconds after which an entry is read again in full, whatever its version: a bound on
what a writer that does not keep ``history_version`` (none of chatcore's) could leave
stale, and on how long an idle conversation stays in memory."""

Key = tuple[UUID, UUID]  # (user_id, conversation_id)


def _conversation_snapshot(conversation: Conversation) -> Conversation:
    kept = conversation.copy()
    kept.metadata = dict(conversation.metadata)
    kept.context_data = dict(conversation.context_data)
    return kept


def _order(message: Message) -> tuple[object, UUID]:
    return (message.created_at, message.id)


@dataclass(slots=True, frozen=True)
class Entry:
    """A conversation and its newest messages (newest first) as of ``version``.

    Attributes:
        version: the conversation's ``history_version`` they are true of.
        window: how many messages were asked for; ``messages`` has fewer only when
            the conversation has no more.
        conversation: the conversation's row (kept: hand out copies).
        messages: newest first, as ``MessageRepository.recent`` gives them.
        read_at: ``time.monotonic()`` of the full read they come from.
    """

    version: int
    window: int
    conversation: Conversation
    messages: tuple[Message, ...]
    read_at: float

    def with_new(
        self, version: int, new: Iterable[Message], touched_at: datetime | None = None
    ) -> Entry | None:
        """The entry after ``new`` messages were inserted (and the conversation's
        ``updated_at`` moved up to ``touched_at``, never back); None when they would
        not be the newest (another process's clock ahead of ours): then only a read
        can say where they go."""
        # Copies (with their own metadata dicts): the writer may go on changing its own.
        added = sorted((m.copy() for m in new), key=_order, reverse=True)
        if added and self.messages and _order(added[-1]) <= _order(self.messages[0]):
            return None
        messages = (*added, *self.messages)[: self.window]
        conversation = self.conversation
        if touched_at is not None and touched_at > conversation.updated_at:
            conversation = conversation.copy()
            conversation.updated_at = touched_at
        return Entry(version, self.window, conversation, messages, self.read_at)

    def with_saved(self, version: int, saved: Message) -> Entry:
        """The entry after ``saved`` was written back (content, status, metadata)."""
        messages = tuple(saved.copy() if m.id == saved.id else m for m in self.messages)
        return Entry(version, self.window, self.conversation, messages, self.read_at)

    def with_conversation(self, version: int, saved: Conversation) -> Entry:
        """The entry after the conversation was written back as ``saved``."""
        return Entry(
            version, self.window, _conversation_snapshot(saved), self.messages, self.read_at
        )


class HistoryCache:
    """The entries of one process, shared by its units of work: at most ``capacity``
    conversations, the least recently used leaving first, none older than ``max_age``
    seconds since its full read."""

    def __init__(
        self,
        capacity: int = 512,
        max_age: float = DEFAULT_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_age = max_age
        self.clock = clock
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.stale = 0  # reads answered from memory that a check found out of date

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self.clock() - entry.read_at > self.max_age:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: Entry) -> None:
        current = self._entries.get(key)
        if current is not None and current.version > entry.version:
            return  # another unit of work committed a later state meanwhile
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def drop(self, key: Key) -> None:
        self._entries.pop(key, None)


class PendingHistory:
    """One unit of work's view of the cache: what its transaction read and wrote,
    published to the cache by :meth:`commit`, forgotten by :meth:`discard`; and the
    versions its reads answered from memory rely on, until a statement checks them."""

    def __init__(self, cache: HistoryCache, user_id: UUID) -> None:
        self.cache = cache
        self._user_id = user_id
        self._pending: dict[UUID, Entry | None] = {}
        self._relied: dict[UUID, int] = {}

    def _current(self, conversation_id: UUID) -> Entry | None:
        if conversation_id in self._pending:
            return self._pending[conversation_id]
        return self.cache.get((self._user_id, conversation_id))

    def known(self, conversation_id: UUID, window: int) -> Entry | None:
        """The entry that can answer a read of ``window`` newest messages, if any."""
        entry = self._current(conversation_id)
        return entry if entry is not None and entry.window >= window else None

    def remembered(self, conversation_id: UUID, window: int) -> Entry | None:
        """:meth:`known`, answering a read: from then on the unit of work relies on the
        entry's version, unless the entry is what this unit itself read or wrote."""
        entry = self.known(conversation_id, window)
        if entry is not None:
            self.cache.hits += 1
            if conversation_id not in self._pending:
                self._relied.setdefault(conversation_id, entry.version)
        return entry

    def relied_on(self, conversation_id: UUID) -> int | None:
        """The version a read answered from memory relies on, until it is checked."""
        return self._relied.get(conversation_id)

    @property
    def unchecked(self) -> dict[UUID, int]:
        """Every version relied on and not checked yet, by conversation."""
        return dict(self._relied)

    def checked(self, conversation_id: UUID) -> None:
        """A statement found the version relied on."""
        self._relied.pop(conversation_id, None)

    def stale(self, conversation_id: UUID) -> None:
        """A statement found another version: the entry goes at once (the unit of
        work ends without committing)."""
        self._relied.pop(conversation_id, None)
        self._pending.pop(conversation_id, None)
        self.cache.drop((self._user_id, conversation_id))
        self.cache.stale += 1

    def read(
        self,
        conversation_id: UUID,
        version: int,
        window: int,
        conversation: Conversation,
        newest: list[Message],
    ) -> None:
        """The database's answer to a full read."""
        self.cache.misses += 1
        self._pending[conversation_id] = Entry(
            version, window, _conversation_snapshot(conversation), tuple(newest), self.cache.clock()
        )

    def wrote(
        self,
        conversation_id: UUID,
        version: int | None,
        change: Callable[[Entry, int], Entry | None],
    ) -> None:
        """A statement changed the conversation or its messages; ``version`` is what it
        set ``history_version`` to (None: it changed nothing, or did not say)."""
        entry = self._current(conversation_id)
        if version is None or entry is None or version != entry.version + 1:
            self._pending[conversation_id] = None  # someone else wrote too: read again
        else:
            self._pending[conversation_id] = change(entry, version)

    def forget(self, conversation_id: UUID) -> None:
        self._pending[conversation_id] = None

    def commit(self) -> None:
        for conversation_id, entry in self._pending.items():
            key = (self._user_id, conversation_id)
            if entry is None:
                self.cache.drop(key)
            else:
                self.cache.put(key, entry)
        self._pending.clear()
        self._relied.clear()

    def discard(self) -> None:
        self._pending.clear()
        self._relied.clear()
