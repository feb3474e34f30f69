"""Conversations' newest messages kept in memory, checked against the database's counter.

Every message sent reads its conversation's newest messages (the history window, 60
by default) to build the prompt. Most of them have not changed since the previous
message of the same conversation, which this process usually handled itself. Reading
and decoding them again costs PostgreSQL and the service more than anything else the
message route does with its data (decision 0015).

``conversations.history_version`` counts the changes to a conversation's messages:
every statement of the service that inserts or updates one adds one to it, in the same
statement. An :class:`Entry` says "at version *v* the newest messages were these". It
stays true whoever changes the conversation later: a later change only makes the entry
old. So the history read sends the version it knows, and PostgreSQL returns the
messages only when the conversation's version differs.

A unit of work keeps what its own statements changed in a :class:`PendingHistory`. Its
writes return the new version. When that version is the entry's plus one, nobody else
wrote in between, and the entry moves forward with what was written. Otherwise, the
entry is dropped. Entries reach the shared :class:`HistoryCache` only when the
transaction commits. A rollback leaves the cache as it was, still true of its versions.

Messages in the cache are shared with the readers (``get_with_recent``): they are for
reading. Messages being written are copied first, since the service goes on changing
its own ``Message`` objects (a streamed answer's content and status).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from uuid import UUID

from chatcore.domain.message import Message

__all__ = ["DEFAULT_MAX_AGE", "Entry", "HistoryCache", "PendingHistory"]

DEFAULT_MAX_AGE = 60.0
"""Seconds after which an entry is read again in full, whatever its version: a bound on
what a writer that does not keep ``history_version`` (none of chatcore's) could leave
stale, and on how long an idle conversation's messages stay in memory."""

Key = tuple[UUID, UUID]  # (user_id, conversation_id)


def _snapshot(message: Message) -> Message:
    # Its own metadata dict too: the writer may go on changing the one it holds.
    return replace(message, metadata=dict(message.metadata))


def _order(message: Message) -> tuple[object, UUID]:
    return (message.created_at, message.id)


@dataclass(slots=True, frozen=True)
class Entry:
    """A conversation's newest messages (newest first) as of ``version``.

    Attributes:
        version: the conversation's ``history_version`` they are true of.
        window: how many were asked for; ``messages`` has fewer only when the
            conversation has no more.
        messages: newest first, as ``MessageRepository.recent`` gives them.
        read_at: ``time.monotonic()`` of the full read they come from.
    """

    version: int
    window: int
    messages: tuple[Message, ...]
    read_at: float

    def with_new(self, version: int, new: Iterable[Message]) -> Entry | None:
        """The entry after ``new`` messages were inserted; None when they would not be
        the newest (another process's clock ahead of ours): then only a read can say
        where they go."""
        added = sorted((_snapshot(m) for m in new), key=_order, reverse=True)
        if added and self.messages and _order(added[-1]) <= _order(self.messages[0]):
            return None
        messages = (*added, *self.messages)[: self.window]
        return replace(self, version=version, messages=messages)

    def with_saved(self, version: int, saved: Message) -> Entry:
        """The entry after ``saved`` was written back (content, status, metadata)."""
        messages = tuple(_snapshot(saved) if m.id == saved.id else m for m in self.messages)
        return replace(self, version=version, messages=messages)


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
    published to the cache by :meth:`commit`, forgotten by :meth:`discard`."""

    def __init__(self, cache: HistoryCache, user_id: UUID) -> None:
        self.cache = cache
        self._user_id = user_id
        self._pending: dict[UUID, Entry | None] = {}

    def _current(self, conversation_id: UUID) -> Entry | None:
        if conversation_id in self._pending:
            return self._pending[conversation_id]
        return self.cache.get((self._user_id, conversation_id))

    def known(self, conversation_id: UUID, window: int) -> Entry | None:
        """The entry that can answer a read of ``window`` newest messages, if any."""
        entry = self._current(conversation_id)
        return entry if entry is not None and entry.window >= window else None

    def hit(self) -> None:
        """The database said the known entry is current: it answered the read."""
        self.cache.hits += 1

    def read(self, conversation_id: UUID, version: int, window: int, newest: list[Message]) -> None:
        """The database's answer to a full read (nothing known, or it had changed)."""
        self.cache.misses += 1
        self._pending[conversation_id] = Entry(version, window, tuple(newest), self.cache.clock())

    def wrote(
        self,
        conversation_id: UUID,
        version: int | None,
        change: Callable[[Entry, int], Entry | None],
    ) -> None:
        """A statement changed the conversation's messages; ``version`` is what it set
        ``history_version`` to (None: it changed nothing, or did not say)."""
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

    def discard(self) -> None:
        self._pending.clear()
