"""The unit of work: one transaction, run as the service's role on behalf of one user."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from sqlalchemy import Executable, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.compiled import StatementCache
from adapters.postgres.history import HistoryCache, PendingHistory
from adapters.postgres.repositories import (
    PostgresConversationRepository,
    PostgresMessageRepository,
    PostgresReactionRepository,
    PostgresUsageRepository,
)
from adapters.postgres.tables import APP_ROLE, USER_SETTING

__all__ = ["FairGate", "HeldConnections", "PostgresUnitOfWork", "PostgresUnitOfWorkFactory"]

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


class PostgresUnitOfWork:
    """One transaction for one user; implements ``chatcore.ports.UnitOfWork``.

    On enter it takes a pooled connection, begins a transaction and switches to the
    service's role and user, in one round trip. It rolls back on exit unless
    :meth:`commit` was called, and always returns the connection to the pool. After a
    commit, the next statement opens a new transaction with the same scope (never an
    unscoped one).

    The transaction is the unit of work's own, sent to the driver (``BEGIN`` together
    with the scope, ``COMMIT``, ``ROLLBACK``); SQLAlchemy runs the statements in its
    autocommit mode, so it never begins one of its own. A connection is only given back
    to the pool outside any transaction: if the driver still reports one after the
    rollback (or the rollback failed), the connection is discarded.

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
        self.conversations = PostgresConversationRepository(self)
        self.messages = PostgresMessageRepository(self)
        self.usage = PostgresUsageRepository(self)
        self.reactions = PostgresReactionRepository(self)

    async def _begin(self) -> None:
        await self._driver.execute(_begin_scoped(self.user_id))
        self._scoped = True

    async def connection(self) -> AsyncConnection:
        """The connection, in a transaction scoped to :attr:`user_id` (for the repositories)."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the unit of work is not open; use 'async with'")
        if not self._scoped:
            # Without this, the statement would run outside any transaction, as the
            # login role, outside row-level security.
            await self._begin()
        return connection

    async def fetch(
        self, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """Run ``statement`` in the scoped transaction; its rows (for the repositories).

        The statement runs on the driver connection, compiled once (see
        :mod:`adapters.postgres.compiled`). Errors are the driver's, but for a
        connection lost meanwhile, which is a :class:`ConnectionError`.
        """
        await self.connection()
        driver = self._driver
        compiled = self._statements(statement)
        try:
            if not compiled.resolved:
                # Once per statement: how the server types its columns decides some of
                # the conversions of what it returns.
                described = await driver.prepare(compiled.sql)
                oids = [attribute.type.oid for attribute in described.get_attributes()]
                compiled = self._statements.resolve(statement, oids)
            records = await driver.fetch(compiled.sql, *compiled.arguments(params))
        except Exception as exc:
            if driver.is_closed():
                raise ConnectionError(f"the database connection was lost: {exc}") from exc
            raise
        return compiled.rows(records)

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a unit of work is used once")
        self._entered = True
        if self._gate is not None:
            await self._gate.acquire()
            self._holding = True
        try:
            try:
                await self._open()
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                # A pooled connection died while idle (the database restarted).
                # SQLAlchemy has now invalidated every connection older than this
                # moment; the kept ones died too. One more try gets a fresh one —
                # cheaper than pinging before every checkout.
                await self._held.forget()
                await self._open()
        except BaseException:
            self._leave_gate()
            raise
        return self

    def _leave_gate(self) -> None:
        if self._holding and self._gate is not None:
            self._holding = False
            self._gate.release()

    async def _open(self) -> None:
        connection, driver = await self._held.take()
        try:
            self._driver = driver
            self._connection = connection
            try:
                await self._begin()
            except Exception:
                self._connection = None
                # Let SQLAlchemy see the connection: a dead one raises DBAPIError with
                # connection_invalidated (and the pool is renewed); a live one means
                # the failure was something else, which is re-raised.
                await connection.execute(_PROBE)
                raise
        except BaseException:
            await connection.close()
            raise

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        driver, self._driver = self._driver, None
        self._scoped = False
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

    async def commit(self) -> None:
        """Commit the transaction; later statements run in a new, equally scoped one."""
        if self._connection is None:
            raise RuntimeError("the unit of work is not open; use 'async with'")
        if self._scoped:
            self._scoped = False
            await self._driver.execute("COMMIT")
        if self.history is not None:
            self.history.commit()


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
    return StatementCache(engine.dialect, options.get("schema_translate_map") or {})
