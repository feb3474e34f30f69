"""The unit of work: one transaction, run as the service's role on behalf of one user."""

from __future__ import annotations

from types import TracebackType
from typing import Self
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres.repositories import (
    PostgresConversationRepository,
    PostgresMessageRepository,
    PostgresUsageRepository,
)
from adapters.postgres.tables import APP_ROLE, USER_SETTING

__all__ = ["PostgresUnitOfWork", "PostgresUnitOfWorkFactory"]

# Both settings in one round trip, both transaction-local (is_local = true): they end
# with the transaction, so a pooled connection never carries one user's identity into
# another's request. set_config('role', ...) is what SET LOCAL ROLE does: current_user
# becomes the unprivileged role, to which row-level security applies even when the login
# role is a superuser or owns the tables.
_SCOPE = text(
    f"SELECT set_config('role', '{APP_ROLE}', true), set_config('{USER_SETTING}', :user_id, true)"
)


class PostgresUnitOfWork:
    """One transaction for one user; implements ``chatcore.ports.UnitOfWork``.

    On enter it takes a pooled connection, begins a transaction and switches to the
    service's role and user. It rolls back on exit unless :meth:`commit` was called,
    and always returns the connection to the pool. After a commit, the next statement
    opens a new transaction with the same scope (never an unscoped one).

    Attributes:
        user_id: the user every statement acts for.
        conversations: the user's conversations.
        messages: the user's messages.
        usage: the user's usage ledger.
    """

    def __init__(self, engine: AsyncEngine, user_id: UUID) -> None:
        self.user_id = user_id
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._scoped = False
        self._entered = False
        self.conversations = PostgresConversationRepository(self)
        self.messages = PostgresMessageRepository(self)
        self.usage = PostgresUsageRepository(self)

    async def _begin(self, connection: AsyncConnection) -> None:
        await connection.begin()
        await connection.execute(_SCOPE, {"user_id": str(self.user_id)})
        self._scoped = True

    async def connection(self) -> AsyncConnection:
        """The connection, in a transaction scoped to :attr:`user_id` (for the repositories)."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the unit of work is not open; use 'async with'")
        if not self._scoped:
            # Without this, SQLAlchemy would autobegin a transaction as the login role,
            # outside row-level security.
            await self._begin(connection)
        return connection

    async def __aenter__(self) -> Self:
        if self._entered:
            raise RuntimeError("a unit of work is used once")
        self._entered = True
        try:
            self._connection = await self._open()
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # A pooled connection died while idle (the database restarted). SQLAlchemy
            # has now invalidated every connection older than this moment, so one more
            # try gets a fresh one — cheaper than pinging before every checkout.
            self._connection = await self._open()
        return self

    async def _open(self) -> AsyncConnection:
        connection = await self._engine.connect()
        try:
            await self._begin(connection)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection, self._connection = self._connection, None
        self._scoped = False
        if connection is None:
            return
        try:
            if connection.in_transaction():
                await connection.rollback()
        except Exception:
            # A failed rollback (say, the server went away) must not hide the error
            # that made us leave; the pool discards a broken connection anyway.
            if exc is None:
                raise
        finally:
            await connection.close()

    async def commit(self) -> None:
        """Commit the transaction; later statements run in a new, equally scoped one."""
        connection = self._connection
        if connection is None:
            raise RuntimeError("the unit of work is not open; use 'async with'")
        if self._scoped:
            self._scoped = False
            await connection.commit()


class PostgresUnitOfWorkFactory:
    """Opens :class:`PostgresUnitOfWork` on a shared engine; implements ``UnitOfWorkFactory``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    def __call__(self, user_id: UUID) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.engine, user_id)
