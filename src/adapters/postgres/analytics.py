"""Service-wide usage: every user's rows, read as the analytics role.

Admin figures and the paid-model budget need all users' usage, which the service's
own role (``chatcore_app``) cannot see. Each call opens its own transaction and
switches to ``chatcore_analytics`` (``SET LOCAL ROLE``), whose only right is reading
``usage_tracking``: a bug here can neither write nor read a conversation or message.
The statements are the repository's (``adapters.postgres.repositories``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.postgres.repositories import (
    buckets_from_rows,
    distinct_users_statement,
    paid_cost_statement,
    totals_from_rows,
    usage_aggregate_statement,
    window_params,
)
from adapters.postgres.tables import ANALYTICS_ROLE
from chatcore.usage import GroupBy, UsageBucket, UsageTotals, UsageWindow

__all__ = ["PostgresSystemUsageReader"]

# Transaction-local, like the unit of work's scope: it ends with the transaction. The
# engine's connections start with bitmap scans off, for the unit of work's reads of
# one user's rows (decision 0012); aggregates over every user's rows may want them.
_SCOPE = text(
    f"SELECT set_config('role', '{ANALYTICS_ROLE}', true),"
    " set_config('enable_bitmapscan', 'on', true)"
)


class PostgresSystemUsageReader:
    """Implements ``chatcore.usage.SystemUsageReader``, hence ``chatcore.fallback.SpendLedger``.

    Sees committed rows of every user, as of the start of each call's statement.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, statement: Executable, params: dict[str, Any]) -> Sequence[Any]:
        async with self._engine.connect() as connection, connection.begin():
            await connection.execute(_SCOPE)
            result = await connection.execute(statement, params)
            return result.all()

    async def _aggregate(self, window: UsageWindow, group_by: GroupBy | None) -> Sequence[Any]:
        statement = usage_aggregate_statement(
            per_user=False,
            by_conversation=False,
            has_start=window.start is not None,
            has_end=window.end is not None,
            group_by=group_by,
        )
        return await self._rows(statement, window_params(window))

    async def totals(self, window: UsageWindow) -> UsageTotals:
        return totals_from_rows(await self._aggregate(window, None))

    async def series(self, window: UsageWindow, group_by: GroupBy) -> list[UsageBucket]:
        return buckets_from_rows(await self._aggregate(window, group_by))

    async def paid_cost_since(self, since: datetime) -> float:
        (row,) = await self._rows(paid_cost_statement(), {"since": since})
        return float(row[0])

    async def users(self, window: UsageWindow) -> int:
        statement = distinct_users_statement(
            has_start=window.start is not None, has_end=window.end is not None
        )
        (row,) = await self._rows(statement, window_params(window))
        return int(row[0])
