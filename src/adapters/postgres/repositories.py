"""The repositories: SQLAlchemy Core statements over one unit of work's connection.

Isolation between users is the database's job (row-level security under the
service's role, set up by the unit of work); the statements below filter by
``user_id`` only where that lets an index serve the query. Statements are built
once (module level or cached per shape) so that each call only binds parameters
and hits SQLAlchemy's compiled cache and asyncpg's prepared-statement cache.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar
from uuid import UUID

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Executable,
    Select,
    String,
    Uuid,
    any_,
    bindparam,
    case,
    cast,
    distinct,
    func,
    insert,
    literal_column,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import DOUBLE_PRECISION
from sqlalchemy.dialects.postgresql import insert as pg_insert

from adapters.postgres.history import Entry, PendingHistory
from adapters.postgres.tables import conversations, message_reactions, messages, usage_tracking
from chatcore.domain.conversation import ContextType, Conversation, ConversationStatus
from chatcore.domain.message import Message, MessageStatus, SenderType, Usage, UsageRecord
from chatcore.domain.reaction import Reaction, ReactionKind
from chatcore.pagination import PageRequest
from chatcore.ports import ConversationFilter, FoundMessage, StaleReadError
from chatcore.search import tsquery
from chatcore.usage import GroupBy, ModelUsage, UsageBucket, UsageTotals, UsageWindow

__all__ = [
    "CONVERSATION_VERSIONS",
    "ConnectionSource",
    "PostgresConversationRepository",
    "PostgresMessageRepository",
    "PostgresReactionRepository",
    "PostgresUsageRepository",
    "buckets_from_rows",
    "database_error",
    "distinct_users_statement",
    "paid_cost_statement",
    "totals_from_rows",
    "translated",
    "usage_aggregate_statement",
    "window_params",
]

# SQLSTATE of "new row violates row-level security policy" (insufficient_privilege).
_INSUFFICIENT_PRIVILEGE = "42501"


class ConnectionSource(Protocol):
    """What a repository needs from its unit of work."""

    user_id: UUID
    # The conversations' newest messages kept in memory (None: not kept, every read
    # goes to the database); see adapters.postgres.history.
    history: PendingHistory | None

    async def fetch(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Run ``statement`` for ``user_id``, under row-level security; its rows."""
        ...

    def defer(
        self,
        statement: Executable,
        params: Mapping[str, Any],
        then: Callable[[Sequence[Sequence[Any]]], None],
        *,
        checks: UUID | None = None,
    ) -> None:
        """Run the write ``statement`` before the next statement or at commit; ``then``
        gets its rows. Its errors come from whichever runs it, as :func:`database_error`
        makes them. ``checks``: the conversation whose remembered version the
        statement checks itself (decision 0017); ``then`` raises if it was not found."""
        ...


_R = TypeVar("_R")

# SQLSTATE class of integrity constraint violations (unique, foreign key, check).
_INTEGRITY_VIOLATION = "23"


def database_error(exc: Exception) -> Exception:
    """What a repository raises for the database's ``exc``.

    The in-memory adapter raises PermissionError for a row of another user and
    ValueError for a duplicate; the database says the same things with a policy
    violation and an integrity violation. Keep the two alike; anything else is
    ``exc`` itself.
    """
    sqlstate = getattr(exc, "sqlstate", None)
    if not isinstance(sqlstate, str):
        return exc
    if sqlstate == _INSUFFICIENT_PRIVILEGE:
        return PermissionError(str(exc))
    if sqlstate.startswith(_INTEGRITY_VIOLATION):
        return ValueError(str(exc))
    return exc


async def translated(rows: Awaitable[_R]) -> _R:
    """``rows`` awaited, the database's errors raised as :func:`database_error` makes
    them (for the unit of work's kept writes too)."""
    try:
        return await rows
    except Exception as exc:
        error = database_error(exc)
        if error is exc:
            raise
        raise error from exc


async def _execute(
    source: ConnectionSource, statement: Executable, params: Mapping[str, Any]
) -> Sequence[Sequence[Any]]:
    return await translated(source.fetch(statement, params))


def _ignore(rows: Sequence[Sequence[Any]]) -> None:
    return None


# --- conversations -----------------------------------------------------------------

_c = conversations.c
_CONVERSATION_COLUMNS = (
    _c.id,
    _c.user_id,
    _c.title,
    _c.context_type,
    _c.context_data,
    _c.metadata,
    _c.status,
    _c.created_at,
    _c.updated_at,
    _c.result_id,
)

# The columns the domain has: the others (history_version) keep their defaults.
_CONVERSATION_VALUES = {
    column.key: bindparam(column.key, type_=column.type) for column in _CONVERSATION_COLUMNS
}
_INSERT_CONVERSATION = insert(conversations).values(_CONVERSATION_VALUES)
# The partial unique index on result_id decides, in the one statement: the inference
# clause must repeat the index's predicate for PostgreSQL to pick it as the arbiter. A
# row of the same result (another user's, a deleted one) makes it insert nothing and
# return nothing, without an error: DO NOTHING reads no conflicting row, so row-level
# security neither refuses the statement nor hands that row out (only the False tells
# that the result is taken, which is the point). A concurrent transaction
# that inserted the same result makes it wait for that one to end: then nothing (it
# committed) or the insert (it rolled back). The WITH CHECK policy still refuses a row
# of another user before any of this, as for a plain INSERT.
_INSERT_CONVERSATION_FOR_RESULT = (
    pg_insert(conversations)
    .values(_CONVERSATION_VALUES)
    .on_conflict_do_nothing(index_elements=[_c.result_id], index_where=_c.result_id.is_not(None))
    .returning(_c.id)
)
# Row-level security keeps it to the user's rows; only a deleted one gives its result up.
_RELEASE_RESULT = (
    update(conversations)
    .where(
        _c.id == bindparam("conversation_id"),
        _c.status == ConversationStatus.DELETED.value,
        _c.result_id.is_not(None),
    )
    .values(result_id=None, history_version=_c.history_version + 1)
    .returning(_c.id)
)
_GET_CONVERSATION = select(*_CONVERSATION_COLUMNS).where(_c.id == bindparam("conversation_id"))
CONVERSATION_VERSIONS = select(_c.id, _c.history_version).where(
    _c.id == any_(bindparam("ids", type_=ARRAY(Uuid())))
)
"""The ``history_version`` of the user's conversations among ``ids``: what a unit of
work checks its reads answered from memory against (decision 0017)."""
# FOR UPDATE: the row lock is held until the transaction ends; row-level security still
# decides which rows there are to lock.
_LOCK_CONVERSATION = _GET_CONVERSATION.with_for_update()
# Served by the unique index; row-level security keeps it to the user's row.
_GET_CONVERSATION_BY_RESULT = select(*_CONVERSATION_COLUMNS).where(
    _c.result_id == bindparam("result_id", type_=_c.result_id.type)
)
_SAVE_CONVERSATION = (
    update(conversations)
    .where(_c.id == bindparam("conversation_id"))
    .values(
        title=bindparam("p_title"),
        status=bindparam("p_status"),
        metadata=bindparam("p_metadata", type_=_c.metadata.type),
        context_data=bindparam("p_context_data", type_=_c.context_data.type),
        updated_at=bindparam("p_updated_at", type_=_c.updated_at.type),
        history_version=_c.history_version + 1,
    )
    .returning(_c.history_version)
)


@functools.cache
def _list_conversations(single_status: bool, by_context: bool, keyset: bool) -> Executable:
    # One statement per shape. A single status is compared with '=' so that the
    # (user_id, status, updated_at DESC, id DESC) index yields rows already in order and
    # the LIMIT stops early; '= ANY(array)' would need a sort.
    statement = select(*_CONVERSATION_COLUMNS).where(_c.user_id == bindparam("user_id"))
    if single_status:
        statement = statement.where(_c.status == bindparam("status"))
    else:
        statement = statement.where(_c.status == any_(bindparam("statuses", type_=ARRAY(String))))
    if by_context:
        statement = statement.where(_c.context_type == bindparam("context_type"))
    if keyset:
        statement = statement.where(
            tuple_(_c.updated_at, _c.id)
            < tuple_(
                bindparam("after_at", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid()),
            )
        )
    return (
        statement.order_by(_c.updated_at.desc(), _c.id.desc())
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )


def _conversation(row: Sequence[Any]) -> Conversation:
    (
        id_,
        user_id,
        title,
        context_type,
        context_data,
        metadata,
        status,
        created,
        updated,
        result,
    ) = row
    return Conversation(
        id=id_,
        user_id=user_id,
        title=title,
        context_type=ContextType(context_type),
        context_data=context_data,
        metadata=metadata,
        status=ConversationStatus(status),
        created_at=created,
        updated_at=updated,
        result_id=result,
    )


def _conversation_params(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "user_id": conversation.user_id,
        "title": conversation.title,
        "context_type": conversation.context_type.value,
        "context_data": conversation.context_data,
        "metadata": conversation.metadata,
        "status": conversation.status.value,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "result_id": conversation.result_id,
    }


class PostgresConversationRepository:
    """Conversations of the unit of work's user (see ``chatcore.ports.ConversationRepository``)."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    async def add(self, conversation: Conversation) -> None:
        # A result that already has a conversation: the unique index refuses it (ValueError).
        self._source.defer(_INSERT_CONVERSATION, _conversation_params(conversation), _ignore)

    async def add_for_result(self, conversation: Conversation) -> bool:
        """Insert unless the result has a conversation (anyone's); True when inserted.

        Raises:
            ValueError: ``conversation.result_id`` is None.
            PermissionError: the conversation belongs to another user.
        """
        if conversation.result_id is None:
            raise ValueError("add_for_result needs a conversation with a result_id")
        rows = await _execute(
            self._source, _INSERT_CONVERSATION_FOR_RESULT, _conversation_params(conversation)
        )
        return bool(rows)

    async def get(self, conversation_id: UUID) -> Conversation | None:
        rows = await _execute(self._source, _GET_CONVERSATION, {"conversation_id": conversation_id})
        return _conversation(rows[0]) if rows else None

    async def lock(self, conversation_id: UUID) -> Conversation | None:
        rows = await _execute(
            self._source, _LOCK_CONVERSATION, {"conversation_id": conversation_id}
        )
        return _conversation(rows[0]) if rows else None

    async def get_with_recent(
        self, conversation_id: UUID, limit: int
    ) -> tuple[Conversation, builtins.list[Message]] | None:
        if limit <= 0:
            conversation = await self.get(conversation_id)
            return None if conversation is None else (conversation, [])
        history = self._source.history
        if history is not None:
            # Decision 0017: answered from memory; the unit's first write of the
            # conversation, or its commit, checks that it was still true.
            remembered = history.remembered(conversation_id, limit)
            if remembered is not None:
                return remembered.conversation.copy(), list(remembered.messages[:limit])
        rows = await _execute(
            self._source,
            _GET_CONVERSATION_WITH_RECENT,
            {"conversation_id": conversation_id, "limit": limit},
        )
        if not rows:
            if history is not None:
                history.forget(conversation_id)
            return None
        conversation = _conversation(rows[0][:_CONVERSATION_WIDTH])
        version = rows[0][_CONVERSATION_WIDTH]
        recent = [_message(row[_MESSAGE_START:]) for row in rows if row[_MESSAGE_START]]
        if history is not None:
            history.read(conversation_id, version, limit, conversation, recent)
        return conversation, recent

    async def get_by_result(self, result_id: str) -> Conversation | None:
        rows = await _execute(self._source, _GET_CONVERSATION_BY_RESULT, {"result_id": result_id})
        return _conversation(rows[0]) if rows else None

    async def release_result(self, conversation_id: UUID) -> bool:
        rows = await _execute(self._source, _RELEASE_RESULT, {"conversation_id": conversation_id})
        if self._source.history is not None:
            self._source.history.forget(conversation_id)
        return bool(rows)

    async def save(self, conversation: Conversation) -> None:
        # A row that row-level security hides is simply not updated, like in memory.
        # result_id is not written: it is fixed at creation (and part of a unique index).
        self._source.defer(
            _SAVE_CONVERSATION,
            {
                "conversation_id": conversation.id,
                "p_title": conversation.title,
                "p_status": conversation.status.value,
                "p_metadata": conversation.metadata,
                "p_context_data": conversation.context_data,
                "p_updated_at": conversation.updated_at,
            },
            self._saved(conversation.copy()),
        )

    def _saved(self, saved: Conversation) -> Callable[[Sequence[Sequence[Any]]], None]:
        def then(rows: Sequence[Sequence[Any]]) -> None:
            history = self._source.history
            if history is not None:
                version = rows[0][0] if rows else None
                history.wrote(saved.id, version, lambda e, v: e.with_conversation(v, saved))

        return then

    async def list(
        self, where: ConversationFilter, page: PageRequest
    ) -> builtins.list[Conversation]:
        # Deleted conversations are never listed, whatever the filter asks for.
        statuses = sorted(s.value for s in where.statuses if s is not ConversationStatus.DELETED)
        if not statuses or page.limit <= 0:
            return []
        single = len(statuses) == 1
        params: dict[str, Any] = {
            "user_id": self._source.user_id,
            "limit": page.limit,
            # A cursor page starts right after the cursor; an offset only applies without one.
            "offset": 0 if page.after is not None else max(0, page.offset),
        }
        if single:
            params["status"] = statuses[0]
        else:
            params["statuses"] = statuses
        if where.context_type is not None:
            params["context_type"] = where.context_type.value
        if page.after is not None:
            params["after_at"] = page.after.at
            params["after_id"] = page.after.id
        statement = _list_conversations(
            single, where.context_type is not None, page.after is not None
        )
        rows = await _execute(self._source, statement, params)
        return [_conversation(row) for row in rows]


# --- messages ----------------------------------------------------------------------

_m = messages.c
_MESSAGE_COLUMNS = (
    _m.id,
    _m.conversation_id,
    _m.user_id,
    _m.sender_type,
    _m.content,
    _m.parent_message_id,
    _m.status,
    _m.metadata,
    _m.created_at,
)

_GET_MESSAGE = select(*_MESSAGE_COLUMNS).where(
    _m.id == bindparam("message_id"), _m.conversation_id == bindparam("conversation_id")
)
_SAVE_MESSAGE_ROW = (
    update(messages)
    .where(_m.id == bindparam("message_id"))
    .values(
        content=bindparam("p_content"),
        status=bindparam("p_status"),
        metadata=bindparam("p_metadata", type_=_m.metadata.type),
    )
)


def _bump_history() -> Any:
    """A CTE adding one to the conversation's ``history_version`` (decision 0015): every
    statement that inserts or updates messages has one, and returns the new value, so
    that a kept copy of the conversation's newest messages knows whether it is current.
    Row-level security keeps it to the user's conversation."""
    return (
        update(conversations)
        .where(_c.id == bindparam("b_conversation_id", type_=_c.id.type))
        .values(history_version=_c.history_version + 1)
        .returning(_c.history_version)
        .cte("bumped")
    )


def _with_bump(statement: Any) -> Executable:
    bumped = _bump_history()
    result: Executable = statement.add_cte(bumped).returning(
        select(bumped.c.history_version).scalar_subquery()
    )
    return result


_SAVE_MESSAGE = _with_bump(_SAVE_MESSAGE_ROW)
_MESSAGE_FIELDS = (
    "id",
    "conversation_id",
    "user_id",
    "sender_type",
    "content",
    "parent_message_id",
    "status",
    "metadata",
    "created_at",
)


def _message_values(prefix: str) -> dict[str, Any]:
    """Bind parameters for one message row, named ``<prefix><column>``."""
    return {name: bindparam(f"{prefix}{name}", type_=_m[name].type) for name in _MESSAGE_FIELDS}


_INSERT_MESSAGE_ROW = insert(messages).values(_message_values("m0_"))
_INSERT_MESSAGE = _with_bump(_INSERT_MESSAGE_ROW)


def _message_params(message: Message, prefix: str) -> dict[str, Any]:
    return {
        f"{prefix}id": message.id,
        f"{prefix}conversation_id": message.conversation_id,
        f"{prefix}user_id": message.user_id,
        f"{prefix}sender_type": message.sender_type.value,
        f"{prefix}content": message.content,
        f"{prefix}parent_message_id": message.parent_message_id,
        f"{prefix}status": message.status.value,
        f"{prefix}metadata": message.metadata,
        f"{prefix}created_at": message.created_at,
    }


@functools.cache
def _append_messages(count: int, checked: bool = False, usage: bool = False) -> Executable:
    """Insert ``count`` messages and move their conversation's ``updated_at`` up, in one
    statement (a data-modifying CTE): one round trip per turn instead of two. Returns
    the conversation's new ``history_version`` (decision 0015).

    ``checked`` (decision 0017): only if the conversation's ``history_version`` is still
    ``t_expected_version``, the one a read answered from memory relied on; otherwise
    nothing is written and no row is returned. ``usage``: a usage record (parameters
    ``u_<column>``) inserted by the same statement; its foreign key to its message is
    checked at the end of the statement, when the message row exists."""
    touched = update(conversations).where(_c.id == bindparam("t_conversation_id", type_=_c.id.type))
    if checked:
        touched = touched.where(
            _c.history_version == bindparam("t_expected_version", type_=BigInteger())
        )
    touched_cte = (
        touched.values(
            updated_at=func.greatest(
                _c.updated_at, bindparam("t_updated_at", type_=_c.updated_at.type)
            ),
            history_version=_c.history_version + 1,
        )
        .returning(_c.history_version)
        .cte("touched")
    )

    def one(i: int) -> Any:
        values = _message_values(f"m{i}_")
        if not checked:
            return insert(messages).values(values)
        # A row only when the conversation was touched: one row or none.
        rows = select(*(values[name].label(name) for name in _MESSAGE_FIELDS))
        return insert(messages).from_select(list(_MESSAGE_FIELDS), rows.select_from(touched_cte))

    def usage_row() -> Any:
        if not checked:
            return insert(usage_tracking).values(_USAGE_VALUES)
        rows = select(*(value.label(name) for name, value in _USAGE_VALUES.items()))
        return insert(usage_tracking).from_select(
            list(_USAGE_VALUES), rows.select_from(touched_cte)
        )

    # One single-row INSERT per row (all but the last as CTEs): SQLAlchemy caches the
    # compiled form of single-row inserts, not of a multi-row VALUES list.
    inserts = [one(i) for i in range(count)]
    if usage:
        inserts.append(usage_row())
    earlier = [row.cte(f"m{i}") for i, row in enumerate(inserts[:-1])]
    statement: Executable = (
        inserts[-1]
        .add_cte(touched_cte, *earlier)
        .returning(select(touched_cte.c.history_version).scalar_subquery())
    )
    return statement


_MESSAGE_ORDER = (_m.created_at, _m.id)
_LIST_MESSAGES = (
    select(*_MESSAGE_COLUMNS)
    .where(_m.conversation_id == bindparam("conversation_id"))
    .order_by(*_MESSAGE_ORDER)
    .limit(bindparam("limit"))
    .offset(bindparam("offset"))
)
_LIST_MESSAGES_AFTER = (
    select(*_MESSAGE_COLUMNS)
    .where(
        _m.conversation_id == bindparam("conversation_id"),
        tuple_(*_MESSAGE_ORDER)
        > tuple_(
            bindparam("after_at", type_=DateTime(timezone=True)),
            bindparam("after_id", type_=Uuid()),
        ),
    )
    .order_by(*_MESSAGE_ORDER)
    .limit(bindparam("limit"))
)
_RECENT_MESSAGES = (
    select(*_MESSAGE_COLUMNS)
    .where(_m.conversation_id == bindparam("conversation_id"))
    .order_by(_m.created_at.desc(), _m.id.desc())
    .limit(bindparam("limit"))
)


# The conversation and its newest messages in one round trip: the messages come from a
# LATERAL subquery, a backward scan of the (conversation_id, created_at, id) index that
# stops at the limit (bitmap scans are off in the service's transactions, decision
# 0012: a bitmap scan would read the whole conversation and sort it), one row each;
# the conversation's columns are only on the first row (NULL on the others), so that
# they are sent and decoded once, however many messages come with them. With them comes
# the conversation's history_version, which the kept copy is true of (decision 0015).
_recent = (
    select(
        *_MESSAGE_COLUMNS,
        func.row_number().over(order_by=(_m.created_at.desc(), _m.id.desc())).label("rn"),
    )
    .where(_m.conversation_id == _c.id)
    .order_by(_m.created_at.desc(), _m.id.desc())
    .limit(bindparam("limit"))
    .lateral("recent")
)
_first_row = _recent.c.rn.is_(None) | (_recent.c.rn == 1)
_GET_CONVERSATION_WITH_RECENT = (
    select(
        *(
            # The id is kept on every row: its type stays known to the driver.
            column if column.key == "id" else case((_first_row, column))
            for column in _CONVERSATION_COLUMNS
        ),
        case((_first_row, _c.history_version)),
        *(_recent.c[column.key] for column in _MESSAGE_COLUMNS),
    )
    .select_from(conversations.outerjoin(_recent, true()))
    .where(_c.id == bindparam("conversation_id"))
    .order_by(_recent.c.rn)
)
_CONVERSATION_WIDTH = len(_CONVERSATION_COLUMNS)
_MESSAGE_START = _CONVERSATION_WIDTH + 1  # after the history_version


def _save_message_params(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "p_content": message.content,
        "p_status": message.status.value,
        "p_metadata": message.metadata,
    }


# Lookups by value: calling the enum class costs more than the rest of a row.
_SENDER_TYPES = {member.value: member for member in SenderType}
_MESSAGE_STATUSES = {member.value: member for member in MessageStatus}


# Search: the user's conversations that are not deleted (their index), then each one's
# messages (theirs), the text matched as it is read. A student's messages are few
# enough to be read whole; no full-text index is kept, so sending a message costs no
# more than before (decision 0013).
_TEXT_CONFIG: ColumnElement[Any] = literal_column("'simple'::regconfig")


@functools.cache
def _search_messages(keyset: bool) -> Executable:
    statement = (
        select(*_MESSAGE_COLUMNS, _c.title)
        .join(conversations, (_c.id == _m.conversation_id) & (_c.user_id == _m.user_id))
        .where(
            _c.user_id == bindparam("user_id"),
            _c.status != ConversationStatus.DELETED.value,
            func.to_tsvector(_TEXT_CONFIG, _m.content).op("@@")(
                func.to_tsquery(_TEXT_CONFIG, bindparam("query", type_=String()))
            ),
        )
        .order_by(_m.created_at.desc(), _m.id.desc())
        .limit(bindparam("limit"))
    )
    if keyset:
        statement = statement.where(
            tuple_(*_MESSAGE_ORDER)
            < tuple_(
                bindparam("after_at", type_=DateTime(timezone=True)),
                bindparam("after_id", type_=Uuid()),
            )
        )
    else:
        statement = statement.offset(bindparam("offset"))
    return statement


def _message(row: Sequence[Any]) -> Message:
    (id_, conversation_id, user_id, sender, content, parent, status, metadata, created) = row
    return Message(
        id=id_,
        conversation_id=conversation_id,
        user_id=user_id,
        sender_type=_SENDER_TYPES.get(sender) or SenderType(sender),
        content=content,
        parent_message_id=parent,
        status=_MESSAGE_STATUSES.get(status) or MessageStatus(status),
        metadata=metadata,
        created_at=created,
    )


class PostgresMessageRepository:
    """Messages of the unit of work's user (see ``chatcore.ports.MessageRepository``)."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    def _wrote(
        self,
        conversation_id: UUID,
        rows: Sequence[Sequence[Any]],
        change: Callable[[Entry, int], Entry | None],
    ) -> None:
        history = self._source.history
        if history is not None:
            history.wrote(conversation_id, rows[0][0] if rows else None, change)

    async def add(self, message: Message) -> None:
        params = _message_params(message, "m0_")
        params["b_conversation_id"] = message.conversation_id
        self._source.defer(
            _INSERT_MESSAGE,
            params,
            lambda rows: self._wrote(
                message.conversation_id, rows, lambda e, v: e.with_new(v, (message,))
            ),
        )

    async def append(self, *new: Message, usage: UsageRecord | None = None) -> None:
        """Insert new messages of one conversation (and the usage record of one of them)
        and move its ``updated_at`` up to the newest of them (never back), in one
        statement."""
        if usage is not None and all(m.id != usage.message_id for m in new):
            raise ValueError("append takes the usage record of one of its messages")
        if not new:
            return
        conversation_id = new[0].conversation_id
        if any(m.conversation_id != conversation_id for m in new):
            raise ValueError("append takes messages of one conversation")
        params: dict[str, Any] = {
            "t_conversation_id": conversation_id,
            "t_updated_at": max(m.created_at for m in new),
        }
        for i, message in enumerate(new):
            params.update(_message_params(message, f"m{i}_"))
        if usage is not None:
            params.update(_usage_params(usage))
        history = self._source.history
        expected = history.relied_on(conversation_id) if history is not None else None
        if expected is not None:
            params["t_expected_version"] = expected
        touched_at = params["t_updated_at"]

        def then(rows: Sequence[Sequence[Any]]) -> None:
            if expected is not None:
                assert history is not None
                if not rows:
                    history.stale(conversation_id)
                    raise StaleReadError(
                        f"conversation {conversation_id} changed since it was remembered"
                    )
                history.checked(conversation_id)
            self._wrote(conversation_id, rows[-1:], lambda e, v: e.with_new(v, new, touched_at))

        self._source.defer(
            _append_messages(len(new), checked=expected is not None, usage=usage is not None),
            params,
            then,
            checks=conversation_id if expected is not None else None,
        )

    async def store_answer(self, message: Message, usage: UsageRecord, *, insert: bool) -> None:
        """Insert (or write back) an answer and append its usage record, in one statement."""
        params = _usage_params(usage)
        params["b_conversation_id"] = message.conversation_id
        change: Callable[[Entry, int], Entry | None]
        if insert:
            params.update(_message_params(message, "m0_"))
            statement = _INSERT_ANSWER_WITH_USAGE
            change = lambda e, v: e.with_new(v, (message,))  # noqa: E731
        else:
            params.update(_save_message_params(message))
            statement = _SAVE_ANSWER_WITH_USAGE
            change = lambda e, v: e.with_saved(v, message)  # noqa: E731
        self._source.defer(
            statement, params, lambda rows: self._wrote(message.conversation_id, rows, change)
        )

    async def get(self, conversation_id: UUID, message_id: UUID) -> Message | None:
        rows = await _execute(
            self._source,
            _GET_MESSAGE,
            {"message_id": message_id, "conversation_id": conversation_id},
        )
        return _message(rows[0]) if rows else None

    async def save(self, message: Message) -> None:
        params = _save_message_params(message)
        params["b_conversation_id"] = message.conversation_id
        self._source.defer(
            _SAVE_MESSAGE,
            params,
            lambda rows: self._wrote(
                message.conversation_id, rows, lambda e, v: e.with_saved(v, message)
            ),
        )

    async def list(self, conversation_id: UUID, page: PageRequest) -> builtins.list[Message]:
        if page.limit <= 0:
            return []
        if page.after is not None:
            rows = await _execute(
                self._source,
                _LIST_MESSAGES_AFTER,
                {
                    "conversation_id": conversation_id,
                    "after_at": page.after.at,
                    "after_id": page.after.id,
                    "limit": page.limit,
                },
            )
        else:
            rows = await _execute(
                self._source,
                _LIST_MESSAGES,
                {
                    "conversation_id": conversation_id,
                    "limit": page.limit,
                    "offset": max(0, page.offset),
                },
            )
        return [_message(row) for row in rows]

    async def recent(self, conversation_id: UUID, limit: int) -> builtins.list[Message]:
        if limit <= 0:
            return []
        rows = await _execute(
            self._source, _RECENT_MESSAGES, {"conversation_id": conversation_id, "limit": limit}
        )
        return [_message(row) for row in rows]

    async def search(self, terms: Sequence[str], page: PageRequest) -> builtins.list[FoundMessage]:
        if page.limit <= 0 or not terms:
            return []
        params: dict[str, Any] = {
            "user_id": self._source.user_id,
            "query": tsquery(terms),
            "limit": page.limit,
        }
        if page.after is not None:
            params.update(after_at=page.after.at, after_id=page.after.id)
        else:
            params["offset"] = max(0, page.offset)
        rows = await _execute(self._source, _search_messages(page.after is not None), params)
        return [FoundMessage(_message(row[:-1]), row[-1]) for row in rows]


# --- reactions ---------------------------------------------------------------------

_r = message_reactions.c
_REACTION_COLUMNS = (
    _r.id,
    _r.message_id,
    _r.conversation_id,
    _r.user_id,
    _r.reaction,
    _r.feedback,
    _r.created_at,
    _r.updated_at,
)
_insert_reaction = pg_insert(message_reactions)
# One statement: a second reaction of the same kind replaces the feedback of the first.
_PUT_REACTION = _insert_reaction.on_conflict_do_update(
    constraint="uq_reactions_message_user_kind",
    set_={
        "feedback": _insert_reaction.excluded.feedback,
        "updated_at": _insert_reaction.excluded.updated_at,
    },
).returning(*_REACTION_COLUMNS)
_REMOVE_REACTIONS = (
    message_reactions.delete()
    .where(
        _r.message_id == bindparam("message_id"),
        _r.reaction == any_(bindparam("kinds", type_=ARRAY(String()))),
    )
    .returning(_r.id)
)
_REACTIONS_OF_MESSAGE = (
    select(*_REACTION_COLUMNS)
    .where(_r.message_id == bindparam("message_id"))
    .order_by(_r.created_at, _r.reaction)
)


def _reaction(row: Sequence[Any]) -> Reaction:
    (id_, message_id, conversation_id, user_id, kind, feedback, created, updated) = row
    return Reaction(
        id=id_,
        message_id=message_id,
        conversation_id=conversation_id,
        user_id=user_id,
        reaction=ReactionKind(kind),
        feedback=feedback,
        created_at=created,
        updated_at=updated,
    )


class PostgresReactionRepository:
    """The user's reactions (see ``chatcore.ports.ReactionRepository``)."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    async def put(self, reaction: Reaction) -> Reaction:
        # A message of another user, or none: the foreign key refuses it (ValueError).
        rows = await _execute(
            self._source,
            _PUT_REACTION,
            {
                "id": reaction.id,
                "message_id": reaction.message_id,
                "conversation_id": reaction.conversation_id,
                "user_id": reaction.user_id,
                "reaction": reaction.reaction.value,
                "feedback": reaction.feedback,
                "created_at": reaction.created_at,
                "updated_at": reaction.updated_at,
            },
        )
        return _reaction(rows[0])

    async def remove(self, message_id: UUID, kinds: Sequence[ReactionKind]) -> int:
        if not kinds:
            return 0
        rows = await _execute(
            self._source,
            _REMOVE_REACTIONS,
            {"message_id": message_id, "kinds": [k.value for k in kinds]},
        )
        return len(rows)

    async def for_message(self, message_id: UUID) -> builtins.list[Reaction]:
        rows = await _execute(self._source, _REACTIONS_OF_MESSAGE, {"message_id": message_id})
        return [_reaction(row) for row in rows]


# --- usage -------------------------------------------------------------------------

_u = usage_tracking.c
_USAGE_FOR_MESSAGES = (
    select(
        _u.id,
        _u.user_id,
        _u.conversation_id,
        _u.message_id,
        _u.model_used,
        _u.prompt_tokens,
        _u.completion_tokens,
        _u.cost_credits,
        _u.is_free_model,
        _u.processing_time_ms,
        _u.created_at,
        _u.metadata,
        _u.time_to_first_token_ms,
        _u.attempts,
        _u.fallback_used,
    )
    .where(_u.message_id == any_(bindparam("message_ids", type_=ARRAY(Uuid()))))
    # Oldest first: should a message have several records, the newest one wins.
    .order_by(_u.created_at, _u.id)
)


def _usage_params(record: UsageRecord) -> dict[str, Any]:
    usage = record.usage
    return {
        "u_id": record.id,
        "u_user_id": record.user_id,
        "u_conversation_id": record.conversation_id,
        "u_message_id": record.message_id,
        "u_model_used": record.model_used,
        "u_prompt_tokens": usage.prompt_tokens,
        "u_completion_tokens": usage.completion_tokens,
        "u_total_tokens": usage.total_tokens,
        "u_cost_credits": usage.cost,
        "u_is_free_model": usage.is_free_model,
        "u_processing_time_ms": record.processing_time_ms,
        "u_metadata": record.metadata,
        "u_created_at": record.created_at,
        "u_time_to_first_token_ms": record.time_to_first_token_ms,
        "u_attempts": list(record.attempts),
        "u_fallback_used": record.fell_back,
    }


# An answer and its usage record in one statement (a data-modifying CTE). The usage
# row's foreign key to the message is checked at the end of the statement, when the
# message row exists.
# Named u_<column>: in a statement whose CTE writes messages, a parameter named like a
# messages column would be taken as one more value for that CTE.
_USAGE_VALUES: dict[str, ColumnElement[Any]] = {
    name: bindparam(f"u_{name}", type_=_u[name].type)
    for name in (
        "id",
        "user_id",
        "conversation_id",
        "message_id",
        "model_used",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "cost_credits",
        "is_free_model",
        "processing_time_ms",
        "metadata",
        "created_at",
        "time_to_first_token_ms",
        "attempts",
        "fallback_used",
    )
}
# The cost is a float in the domain: sent as one (float8) and cast by the server, since
# the driver's encoding of a float as numeric goes through its text and costs more than
# the rest of the row.
_USAGE_VALUES["cost_credits"] = cast(
    bindparam("u_cost_credits", type_=DOUBLE_PRECISION()), _u.cost_credits.type
)
_INSERT_USAGE = insert(usage_tracking).values(_USAGE_VALUES)
_INSERT_ANSWER_WITH_USAGE = _with_bump(
    insert(usage_tracking).values(_USAGE_VALUES).add_cte(_INSERT_MESSAGE_ROW.cte("answer"))
)
_SAVE_ANSWER_WITH_USAGE = _with_bump(
    insert(usage_tracking).values(_USAGE_VALUES).add_cte(_SAVE_MESSAGE_ROW.cte("answer"))
)


def _usage(row: Sequence[Any]) -> UsageRecord:
    (
        id_,
        user_id,
        conversation_id,
        message_id,
        model,
        prompt,
        completion,
        cost,
        is_free,
        processing_ms,
        created,
        metadata,
        first_token_ms,
        attempts,
        fallback_used,
    ) = row
    return UsageRecord(
        id=id_,
        user_id=user_id,
        conversation_id=conversation_id,
        message_id=message_id,
        model_used=model,
        usage=Usage(
            prompt_tokens=prompt or 0,
            completion_tokens=completion or 0,
            cost=float(cost),
            is_free_model=is_free,
        ),
        processing_time_ms=processing_ms or 0,
        created_at=created,
        time_to_first_token_ms=first_token_ms,
        attempts=tuple(str(a) for a in attempts or ()),
        fell_back=fallback_used,
        metadata=metadata,
    )


# Aggregates. One statement per shape (cached), each a single GROUP BY over the rows of
# the window: ROLLUP(model_used) yields a row per model plus the window's total row
# (grouping(model_used) = 1), so that every sum is exact in the database (costs are
# numeric) and nothing is re-added in Python. The statements serve both the per-user
# repository (under row-level security, filtered by user_id so that an index serves
# them) and the service-wide reader (adapters.postgres.analytics).


def _mean(column: ColumnElement[Any]) -> ColumnElement[Any]:
    # sum::float8 / count: one correctly rounded division, like Python's sum(ints) / n
    # (avg() would round a numeric quotient, then again to float). NULL without values.
    return cast(func.sum(column), DOUBLE_PRECISION).op("/", return_type=DOUBLE_PRECISION)(
        func.nullif(func.count(column), 0)
    )


def _in_window(
    statement: Select[Any], per_user: bool, by_conversation: bool, has_start: bool, has_end: bool
) -> Select[Any]:
    if per_user:
        statement = statement.where(_u.user_id == bindparam("user_id", type_=Uuid()))
    if by_conversation:
        statement = statement.where(
            _u.conversation_id == bindparam("conversation_id", type_=Uuid())
        )
    # Half-open [start, end): a period's end is the next period's start.
    if has_start:
        statement = statement.where(
            _u.created_at >= bindparam("start", type_=DateTime(timezone=True))
        )
    if has_end:
        statement = statement.where(_u.created_at < bindparam("end", type_=DateTime(timezone=True)))
    return statement


@functools.cache
def usage_aggregate_statement(
    *,
    per_user: bool,
    by_conversation: bool,
    has_start: bool,
    has_end: bool,
    group_by: GroupBy | None,
) -> Executable:
    """Usage per model plus total rows, per period when ``group_by`` is given.

    Columns: period start (or NULL), is-total flag, model, requests, prompt, completion
    and total tokens, cost, free requests, fallback requests, mean processing time,
    mean time to first token. Ordered by period, then requests descending and model
    name (byte order, like Python's). Parameters: ``user_id`` when ``per_user``,
    ``conversation_id``, ``start``, ``end`` as the flags say (see :func:`window_params`).
    """
    model = _u.model_used
    if group_by is None:
        period: ColumnElement[Any] = literal_column("NULL::timestamptz")
        grouping: tuple[ColumnElement[Any], ...] = (func.rollup(model),)
    else:
        # UTC periods; weeks start on Monday. The unit is a literal (from the enum),
        # so that GROUP BY and the select list hold the same expression.
        period = func.date_trunc(
            literal_column(f"'{group_by.value}'"),
            _u.created_at,
            literal_column("'UTC'"),
            type_=DateTime(timezone=True),
        )
        grouping = (period, func.rollup(model))
    requests = func.count()
    statement = select(
        period,
        func.grouping(model),
        model,
        requests,
        func.coalesce(func.sum(_u.prompt_tokens), 0),
        func.coalesce(func.sum(_u.completion_tokens), 0),
        func.coalesce(func.sum(_u.total_tokens), 0),
        func.coalesce(func.sum(_u.cost_credits), 0, type_=_u.cost_credits.type),
        requests.filter(_u.is_free_model),
        requests.filter(_u.fallback_used),
        _mean(_u.processing_time_ms),
        _mean(_u.time_to_first_token_ms),
    ).select_from(usage_tracking)
    statement = _in_window(statement, per_user, by_conversation, has_start, has_end)
    order: list[ColumnElement[Any]] = [] if group_by is None else [period]
    order += [requests.desc(), model.collate("C")]
    return statement.group_by(*grouping).order_by(*order)


@functools.cache
def distinct_users_statement(*, has_start: bool, has_end: bool) -> Executable:
    """How many distinct users have usage in the window (parameters: ``start``, ``end``)."""
    statement = select(func.count(distinct(_u.user_id))).select_from(usage_tracking)
    return _in_window(statement, False, False, has_start, has_end)


_PAID_COST = select(func.coalesce(func.sum(_u.cost_credits), 0, type_=_u.cost_credits.type)).where(
    ~_u.is_free_model,
    _u.created_at >= bindparam("since", type_=DateTime(timezone=True)),
)


def paid_cost_statement() -> Executable:
    """The cost of paid-model answers since ``:since`` (an index-only scan of
    ix_usage_paid_created)."""
    return _PAID_COST


def window_params(window: UsageWindow, **params: Any) -> dict[str, Any]:
    """``params`` plus the window's bounds that are set."""
    if window.start is not None:
        params["start"] = window.start
    if window.end is not None:
        params["end"] = window.end
    return params


def _model_usage(row: Sequence[Any]) -> ModelUsage:
    (_, _, model, requests, prompt, completion, total, cost, free, fallback, mean, ttft) = row
    return ModelUsage(
        model=model,
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=total,
        cost=float(cost),
        free_requests=free,
        fallback_requests=fallback,
        avg_processing_time_ms=0.0 if mean is None else float(mean),
        avg_time_to_first_token_ms=None if ttft is None else float(ttft),
    )


def _totals(total: Sequence[Any] | None, models: builtins.list[ModelUsage]) -> UsageTotals:
    if total is None:
        return UsageTotals()
    (_, _, _, requests, prompt, completion, tokens, cost, free, fallback, _, _) = total
    return UsageTotals(
        requests=requests,
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=tokens,
        cost=float(cost),
        free_requests=free,
        fallback_requests=fallback,
        models=tuple(models),
    )


def totals_from_rows(rows: Sequence[Sequence[Any]]) -> UsageTotals:
    """The result of :func:`usage_aggregate_statement` without ``group_by``."""
    total = next((row for row in rows if row[1]), None)
    return _totals(total, [_model_usage(row) for row in rows if not row[1]])


def buckets_from_rows(rows: Sequence[Sequence[Any]]) -> builtins.list[UsageBucket]:
    """The result of :func:`usage_aggregate_statement` with ``group_by``, oldest first."""
    totals: dict[Any, Sequence[Any]] = {}
    models: dict[Any, builtins.list[ModelUsage]] = {}
    for row in rows:  # ordered by period, then most used model first
        if row[1]:
            totals[row[0]] = row
        else:
            models.setdefault(row[0], []).append(_model_usage(row))
    return [
        UsageBucket(period_start=start, totals=_totals(totals[start], models.get(start, [])))
        for start in totals
    ]


class PostgresUsageRepository:
    """The usage ledger of the unit of work's user (see ``chatcore.ports.UsageRepository``)."""

    def __init__(self, source: ConnectionSource) -> None:
        self._source = source

    async def add(self, record: UsageRecord) -> None:
        self._source.defer(_INSERT_USAGE, _usage_params(record), _ignore)

    async def for_messages(self, message_ids: Sequence[UUID]) -> dict[UUID, UsageRecord]:
        if not message_ids:
            return {}
        rows = await _execute(self._source, _USAGE_FOR_MESSAGES, {"message_ids": list(message_ids)})
        return {record.message_id: record for record in map(_usage, rows)}

    async def _aggregate(
        self, window: UsageWindow, group_by: GroupBy | None, conversation_id: UUID | None
    ) -> builtins.list[Sequence[Any]]:
        statement = usage_aggregate_statement(
            per_user=True,
            by_conversation=conversation_id is not None,
            has_start=window.start is not None,
            has_end=window.end is not None,
            group_by=group_by,
        )
        params = window_params(window, user_id=self._source.user_id)
        if conversation_id is not None:
            params["conversation_id"] = conversation_id
        return builtins.list(await _execute(self._source, statement, params))

    async def totals(self, window: UsageWindow, conversation_id: UUID | None = None) -> UsageTotals:
        return totals_from_rows(await self._aggregate(window, None, conversation_id))

    async def series(
        self, window: UsageWindow, group_by: GroupBy, conversation_id: UUID | None = None
    ) -> builtins.list[UsageBucket]:
        return buckets_from_rows(await self._aggregate(window, group_by, conversation_id))
