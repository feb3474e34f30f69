"""The unit of work: one transaction, run as the service's role on behalf of one user."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

from sqlalchemy import Executable, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.compiled import READ, WRITE, CompiledStatement, ScopedCall, StatementCache
from adapters.postgres.history import HistoryCache, PendingHistory
from adapters.postgres.repositories import (
    CONVERSATION_VERSIONS,
    PostgresConversationRepository,
    PostgresMessageRepository,
    PostgresReactionRepository,
    PostgresUsageRepository,
    translated,
)
from adapters.postgres.tables import APP_ROLE, USER_SETTING
from chatcore.ports import StaleReadError

__all__ = ["FairGate", "HeldConnections", "PostgresUnitOfWork", "PostgresUnitOfWorkFactory"]

_log = logging.getLogger("chatcore.database")

# A statement that touches the connection, run through SQLAlchemy after the driver
# failed: if the connection is dead, SQLAlchemy invalidates it and every pooled
# connection older than it (the database restarted), and says so.
_PROBE = text("SELECT 1")


class FairGate:
    """At most ``capacity`` holders at once; waiters get in strictly in arrival order.

    A released place goes straight to the first waiter, so a newcomer can never take it
    first (SQLAlchemy's pool queue lets one: a woken waiter that finds its connection
    taken waits again at the back, and under load some requests wait many times over).
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._free = capacity
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """How many wait (counted, for tests and diagnostics)."""
        return sum(not f.done() for f in self._waiters)

    async def acquire(self) -> None:
        # A free place means nobody waits: release() hands a place to a waiter rather
        # than freeing it whenever there is one.
        if self._free > 0:
            self._free -= 1
            return
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(ticket)
        try:
            await ticket
        except asyncio.CancelledError:
            if ticket.done() and not ticket.cancelled():
                self.release()  # handed a place just as we were cancelled: pass it on
            raise

    def release(self) -> None:
        while self._waiters:
            ticket = self._waiters.popleft()
            if not ticket.done():  # a waiter that gave up is skipped
                ticket.set_result(None)
                return
        self._free += 1


class HeldConnections:
    """Connections taken from the engine's pool and kept, so that the next unit of work
    reuses one without a checkout.

    A SQLAlchemy checkout and return (a ``Connection``, the pool's events, the
    isolation level set again) cost as much CPU as a statement; a unit of work of the
    message route takes two. Up to ``keep`` connections stay checked out here between
    units of work, newest first; the others go back to the engine's pool. They are
    still SQLAlchemy's connections: opened with its settings and codecs, and
    invalidated through it when they die.

    :meth:`aclose` gives every kept connection back; call it before the engine's
    ``dispose()``.
    """

    def __init__(self, engine: AsyncEngine, keep: int) -> None:
        self._engine = engine
        self._keep = max(0, keep)
        self._idle: list[tuple[AsyncConnection, Any]] = []
        self._closed = False

    @property
    def idle(self) -> int:
        """How many connections are kept, unused (for tests and diagnostics)."""
        return len(self._idle)

    async def take(self) -> tuple[AsyncConnection, Any]:
        """A connection and its asyncpg connection: a kept one, else a new checkout."""
        while self._idle:
            connection, driver = self._idle.pop()
            if not connection.invalidated and not driver.is_closed():
                return connection, driver
            await _close_quietly(connection)
        connection = await self._engine.connect()
        try:
            raw = await connection.get_raw_connection()
            driver = raw.driver_connection
            if not connection.info.get(_ROLE_CHECKED):
                await _check_service_role(driver)
                connection.info[_ROLE_CHECKED] = True
        except BaseException:
            await connection.close()
            raise
        return connection, driver

    async def give_back(self, connection: AsyncConnection, driver: Any) -> None:
        """Keep ``connection`` for the next unit of work, or return it to the engine."""
        if self._closed or len(self._idle) >= self._keep or connection.invalidated:
            await connection.close()
        else:
            self._idle.append((connection, driver))

    async def forget(self) -> None:
        """Return every kept connection to the engine (after one of them was found
        dead: the database restarted, and they died with it)."""
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            await _close_quietly(connection)

    async def aclose(self) -> None:
        self._closed = True
        await self.forget()


_ROLE_CHECKED = "chatcore.service_role_checked"
# The connection's settings that the unit of work relies on (decision 0014).
_SESSION_CHECK = "SELECT current_user, current_setting('enable_bitmapscan')"


async def _check_service_role(driver: Any) -> None:
    """Refuse a connection that would run the unit of work's statements as anything but
    the service's role: outside row-level security if the login role is a superuser or
    the owner. Once per connection (its pool record remembers it)."""
    role, bitmapscan = await driver.fetchrow(_SESSION_CHECK)
    if role != APP_ROLE or bitmapscan != "off":
        raise RuntimeError(
            f"the engine's connections run as {role!r} with enable_bitmapscan={bitmapscan}, "
            f"not as {APP_ROLE!r} with it off; create the engine with "
            "adapters.postgres.create_engine"
        )


async def _close_quietly(connection: AsyncConnection) -> None:
    try:
        await connection.close()
    except Exception:  # a dead connection: the pool discards it either way
        return


def _begin_scoped(user_id: UUID) -> str:
    """BEGIN and the user's scope as one simple-protocol round trip.

    The setting is transaction-local (``SET LOCAL``): it ends with the transaction, so a
    pooled connection never carries one user's identity into another's request. The
    role that row-level security applies to, ``chatcore_app``, and the planner's
    ``enable_bitmapscan = off`` (decision 0012) are the connection's own settings from
    its start (:func:`adapters.postgres.database.create_engine`, decision 0014), checked
    once per connection by :class:`HeldConnections`. A utility command, not a ``SELECT
    set_config(...)``: the server neither plans it nor sends a row back. The simple
    protocol takes no parameters, so the user id is written into the text: ``str(UUID)``
    is only hex digits and dashes, and the setting's name is our own constant.
    """
    return f"BEGIN; SET LOCAL {USER_SETTING} = '{UUID(str(user_id))}'"


@dataclass(frozen=True, slots=True)
class _Deferred:
    """A write kept until the next statement or the commit; ``then`` gets its rows."""

    statement: Executable
    params: Mapping[str, Any]
    then: Callable[[Sequence[Sequence[Any]]], None]
    checks: UUID | None = None  # the conversation whose remembered version it checks


# Per physical connection (its pool record): the scoped calls created on it.
_FUNCTIONS = "chatcore.scoped_functions"
_UNDEFINED_FUNCTION = "42883"


class PostgresUnitOfWork:
    """One unit of work for one user; implements ``chatcore.ports.UnitOfWork``.

    On enter it takes a pooled connection and sends nothing. Every statement acts for
    :attr:`user_id` under row-level security, in one of two ways (decision 0016):

    - **a transaction of the unit of work's own**: ``BEGIN`` with the user's scope in one
      round trip (:func:`_begin_scoped`), the statements, then ``COMMIT`` at
      :meth:`commit` or ``ROLLBACK`` on exit;
    - **a scoped call**: one statement in one round trip, in a transaction of its own,
      as a function of the connection's temporary schema that sets the scope first
      (:class:`adapters.postgres.compiled.ScopedCall`).

    Reads that come before any write and lock nothing are scoped calls: under READ
    COMMITTED each statement of a transaction sees what was committed when it started,
    so a read alone sees what it would have seen in the transaction. Writes through
    :meth:`defer` are kept until the next statement or the commit. If the commit finds
    exactly one, outside any transaction, it is sent as a scoped call: one round trip
    that writes and commits. Otherwise the kept writes, and everything after them,
    run in the unit of work's transaction. Locking reads, SQL text and writes whose
    result is needed at once (:meth:`fetch`) open that transaction. Nothing of an
    uncommitted unit of work is ever committed: kept writes are dropped on exit, and a
    scoped call is only ever a read or the unit of work's only write, sent at commit.
    A write's errors therefore come from :meth:`commit` when it was kept.

    A connection is only given back to the pool outside any transaction: if the
    driver still reports one after the rollback (or the rollback failed), the
    connection is discarded. A connection found dead before the unit of work sent
    anything that counts is renewed, once, and the statement sent again.

    Attributes:
        user_id: the user every statement acts for.
        conversations: the user's conversations.
        messages: the user's messages.
        usage: the user's usage ledger.
        reactions: the user's reactions to messages.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        user_id: UUID,
        gate: FairGate | None = None,
        statements: StatementCache | None = None,
        held: HeldConnections | None = None,
        *,
        history: HistoryCache | None = None,
    ) -> None:
        self.user_id = user_id
        # What this transaction read and wrote of conversations' newest messages, for
        # the shared cache when it commits (decision 0015).
        self.history = PendingHistory(history, user_id) if history is not None else None
        self._engine = engine
        self._held = held if held is not None else HeldConnections(engine, 0)
        self._gate = gate
        self._statements = statements if statements is not None else statement_cache(engine)
        self._holding = False
        self._connection: AsyncConnection | None = None
        self._driver: Any = None
        self._scoped = False
        self._entered = False
        self._deferred: list[_Deferred] = []
        self.conversations = PostgresConversationRepository(self)
        self.messages = PostgresMessageRepository(self)
        self.usage = PostgresUsageRepository(self)
        self.reactions = PostgresReactionRepository(self)

    # --- round trips ----------------------------------------------------------------

    def _open_connection(self) -> AsyncConnection:
        connection = self._connection
        if connection is None:
            raise RuntimeError("the unit of work is not open; use 'async with'")
        return connection

    async def _renew(self) -> bool:
        """Replace a dead connection (the database restarted, or killed it); False when
        the connection is alive after all. Let SQLAlchemy see it: a dead one raises
        DBAPIError with ``connection_invalidated``, and the pool drops every connection
        older than it; the kept ones died too."""
        connection = self._open_connection()
        try:
            await connection.execute(_PROBE)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        else:
            return False
        self._connection = self._driver = None
        await _close_quietly(connection)
        await self._held.forget()
        self._connection, self._driver = await self._held.take()
        return True

    async def _send(self, action: Callable[[], Awaitable[_T]], *, repeatable: bool) -> _T:
        """One round trip. Outside the transaction, on a connection found dead: renewed
        first, or (``repeatable``: the action changes nothing, so sending it twice is
        safe) after it failed, and the action sent once more."""
        if self._scoped:
            return await self._lost_is_connection_error(action)
        if self._driver.is_closed():
            await self._renew()
        try:
            return await self._lost_is_connection_error(action)
        except ConnectionError:
            if not repeatable or not await self._renew():
                raise
        return await self._lost_is_connection_error(action)

    async def _lost_is_connection_error(self, action: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await action()
        except Exception as exc:
            if self._driver is not None and self._driver.is_closed():
                raise ConnectionError(f"the database connection was lost: {exc}") from exc
            raise

    async def _begin(self) -> None:
        await self._send(lambda: self._driver.execute(_begin_scoped(self.user_id)), repeatable=True)
        self._scoped = True

    async def _compiled(self, statement: Executable) -> CompiledStatement:
        compiled = self._statements(statement)
        if compiled.resolved:
            return compiled

        async def describe() -> CompiledStatement:
            # Once per statement: how the server types its columns decides some of the
            # conversions of what it returns, and its parameters' types the scoped call.
            described = await self._driver.prepare(compiled.sql)
            return self._statements.resolve(
                statement,
                [attribute.type for attribute in described.get_attributes()],
                described.get_parameters(),
            )

        return await self._send(describe, repeatable=True)

    async def _plain(
        self, compiled: CompiledStatement, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """``compiled`` in the unit of work's transaction (opened if need be)."""
        if not self._scoped:
            await self._begin()
        arguments = compiled.arguments(params)
        records = await self._send(
            lambda: self._driver.fetch(compiled.sql, *arguments), repeatable=False
        )
        return compiled.rows(records)

    async def _call(
        self, compiled: CompiledStatement, scoped: ScopedCall, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]] | None:
        """``compiled`` as a scoped call; None when scoped calls cannot be made here (the
        role may not create temporary functions): then run it in a transaction."""
        arguments = [*compiled.arguments(params), self.user_id]
        repeatable = compiled.kind == READ

        async def create() -> None:
            try:
                await self._driver.execute(scoped.create)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) in _CANNOT_CREATE:
                    raise _ScopedCallRefusedError(str(exc)) from exc
                raise

        async def call() -> Any:
            created: set[str] = self._open_connection().info.setdefault(_FUNCTIONS, set())
            if scoped.name not in created:
                await create()
                created.add(scoped.name)
            try:
                return await self._driver.fetch(scoped.call, *arguments)
            except Exception as exc:
                if getattr(exc, "sqlstate", None) != _UNDEFINED_FUNCTION:
                    raise
                # Dropped meanwhile (DISCARD TEMP): nothing ran; create it again.
                await create()
                return await self._driver.fetch(scoped.call, *arguments)

        try:
            records = await self._send(call, repeatable=repeatable)
        except _ScopedCallRefusedError as exc:
            if self._statements.scoped_calls:
                self._statements.scoped_calls = False
                _log.warning(
                    "scoped calls are off: the database refused a temporary function "
                    "(%s); every unit of work runs in a transaction of its own",
                    exc,
                )
            return None
        return compiled.rows(records)

    # --- for the repositories ---------------------------------------------------------

    async def connection(self) -> AsyncConnection:
        """The connection, in a transaction scoped to :attr:`user_id` (for the repositories)."""
        self._open_connection()
        await self._flush()
        if not self._scoped:
            # Without this, the statement would run outside any transaction, as the
            # login role, outside row-level security.
            await self._begin()
        return self._open_connection()  # renewed if it was found dead

    async def fetch(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Run ``statement`` for :attr:`user_id`; its rows (for the repositories).

        A read that locks nothing, before any write, is a scoped call; anything else
        runs in the unit of work's transaction, after the kept writes. The statement
        runs on the driver connection, compiled once (see
        :mod:`adapters.postgres.compiled`). Errors are the driver's, but for a
        connection lost meanwhile, which is a :class:`ConnectionError`.
        """
        self._open_connection()
        await self._flush()
        return await self._read(statement, params)

    async def _read(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """:meth:`fetch` without sending the kept writes first."""
        compiled = await self._compiled(statement)
        scoped = compiled.scoped
        if (
            not self._scoped
            and compiled.kind == READ
            and scoped is not None
            and self._statements.scoped_calls
        ):
            rows = await self._call(compiled, scoped, params)
            if rows is not None:
                return rows
        return await self._plain(compiled, params)

    def defer(
        self,
        statement: Executable,
        params: Mapping[str, Any],
        then: Callable[[Sequence[Sequence[Any]]], None],
        *,
        checks: UUID | None = None,
    ) -> None:
        """Keep a write until the next statement or :meth:`commit`, whichever comes
        first; ``then`` gets its rows once it ran (for the repositories). ``checks``:
        the conversation whose remembered version the write checks itself."""
        self._open_connection()
        self._deferred.append(_Deferred(statement, dict(params), then, checks))

    async def _check_remembered(self, carried: set[UUID | None]) -> None:
        """Check, in one statement, the versions that reads answered from memory rely
        on, but for the conversations whose kept writes check theirs (``carried``);
        :class:`StaleReadError` if one changed (decision 0017)."""
        history = self.history
        if history is None:
            return
        wanted = {c: v for c, v in history.unchecked.items() if c not in carried}
        if not wanted:
            return
        rows = await self._read(CONVERSATION_VERSIONS, {"ids": list(wanted)})
        found = {row[0]: row[1] for row in rows}
        stale = [c for c, version in wanted.items() if found.get(c) != version]
        for conversation_id in wanted:
            if conversation_id in stale:
                history.stale(conversation_id)
            else:
                history.checked(conversation_id)
        if stale:
            raise StaleReadError(
                f"conversation {stale[0]} changed since it was remembered; nothing was written"
            )

    async def _flush(self) -> None:
        """Send the kept writes, in order, in the unit of work's transaction."""
        while self._deferred:
            write = self._deferred.pop(0)
            compiled = await self._compiled(write.statement)
            rows = await translated(self._plain(compiled, write.params))
            write.then(rows)

    # --- the unit of work ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a unit of work is used once")
        self._entered = True
        if self._gate is not None:
            await self._gate.acquire()
            self._holding = True
        try:
            self._connection, self._driver = await self._held.take()
        except BaseException:
            self._leave_gate()
            raise
        return self

    def _leave_gate(self) -> None:
        if self._holding and self._gate is not None:
            self._holding = False
            self._gate.release()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        stale = None
        try:
            if isinstance(exc, Exception) and not isinstance(exc, StaleReadError):
                stale = await self._stale_instead(exc)
        finally:
            await self._close(exc)
        if stale is not None:
            raise stale from exc

    async def _close(self, exc: BaseException | None) -> None:
        """Roll back what was not committed and give the connection back."""
        connection, self._connection = self._connection, None
        driver, self._driver = self._driver, None
        self._scoped = False
        self._deferred.clear()  # kept writes of a unit of work that did not commit
        if self.history is not None:
            self.history.discard()  # whatever was not committed
        if connection is None:
            self._leave_gate()
            return
        try:
            # A connection lost meanwhile has nothing to roll back; it is discarded below.
            if not driver.is_closed() and driver.is_in_transaction():
                await driver.execute("ROLLBACK")
        except BaseException:
            # A failed (or cancelled) rollback must not hide the error that made us
            # leave; the connection is discarded rather than pooled mid-transaction.
            await connection.invalidate()
            if exc is None:
                raise
        finally:
            try:
                if not connection.invalidated and (
                    driver.is_closed() or driver.is_in_transaction()
                ):
                    await connection.invalidate()
                await self._held.give_back(connection, driver)
            finally:
                self._leave_gate()

    async def _stale_instead(self, error: Exception) -> StaleReadError | None:
        """The unit of work ends with ``error``, maybe decided on a read answered from
        memory: if that read was out of date, the :class:`StaleReadError` to raise in
        its place (the unit runs again). If the check itself fails, ``error`` stands."""
        if self._connection is None or self.history is None or not self.history.unchecked:
            return None
        try:
            await self._check_remembered(set())
        except StaleReadError as stale:
            return stale
        except Exception:  # the unit's own error is the one to report
            _log.debug("could not check the remembered reads of a failed unit of work")
        return None

    async def commit(self) -> None:
        """Commit: the kept writes and the transaction; later statements start anew.
        Reads answered from memory are checked first, by the kept writes that check
        them or by one statement."""
        self._open_connection()
        await self._check_remembered({write.checks for write in self._deferred})
        if not self._scoped and len(self._deferred) == 1 and self._statements.scoped_calls:
            write = self._deferred[0]
            compiled = await self._compiled(write.statement)
            if compiled.kind == WRITE and compiled.scoped is not None:
                rows = await translated(self._call(compiled, compiled.scoped, write.params))
                if rows is not None:
                    self._deferred.clear()
                    write.then(rows)
        await self._flush()
        if self._scoped:
            self._scoped = False
            await self._lost_is_connection_error(lambda: self._driver.execute("COMMIT"))
        if self.history is not None:
            self.history.commit()


_T = TypeVar("_T")


# Creating a function in pg_temp refused: no TEMPORARY privilege on the database
# (42501), a read-only server (25006).
_CANNOT_CREATE = frozenset({"42501", "25006"})


class _ScopedCallRefusedError(Exception):
    """The database refused to create a scoped call's function."""


class PostgresUnitOfWorkFactory:
    """Opens :class:`PostgresUnitOfWork` on a shared engine; implements ``UnitOfWorkFactory``."""

    def __init__(
        self,
        engine: AsyncEngine,
        max_open: int | None = None,
        keep: int = 0,
        history: HistoryCache | None = None,
    ) -> None:
        """``max_open``: how many units of work may hold a connection at once (the
        pool's size plus overflow); the others wait in arrival order. None: no limit
        here, the pool's own queue decides. ``keep``: how many connections to keep
        checked out between units of work (see :class:`HeldConnections`); then
        :meth:`aclose` must run before the engine is disposed. ``history``: the
        conversations' newest messages kept between units of work
        (:mod:`adapters.postgres.history`); None: every read goes to the database."""
        self.engine = engine
        # The same pool; SQLAlchemy in autocommit mode leaves the transaction to the
        # unit of work (see PostgresUnitOfWork).
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._gate = FairGate(max_open) if max_open is not None else None
        # Shared by every unit of work: each statement is compiled once per engine.
        self.statements = statement_cache(engine)
        self.held = HeldConnections(self._autocommit, keep)
        self.history = history

    def __call__(self, user_id: UUID) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(
            self._autocommit, user_id, self._gate, self.statements, self.held, history=self.history
        )

    async def aclose(self) -> None:
        """Return the kept connections to the engine's pool."""
        await self.held.aclose()


def statement_cache(engine: AsyncEngine) -> StatementCache:
    """A cache of statements compiled for ``engine``'s dialect and schema."""
    options = engine.get_execution_options()
    return StatementCache(
        engine.dialect, options.get("schema_translate_map") or {}, setting=USER_SETTING
    )
