"""Service-wide usage, read from the in-memory usage ledger (every user's committed rows)."""

from __future__ import annotations

import math
from datetime import datetime

from adapters.memory.store import InMemoryStore, in_window, usage_series
from chatcore.usage import GroupBy, UsageBucket, UsageTotals, UsageWindow, summarize

__all__ = ["InMemorySpendLedger", "InMemorySystemUsageReader"]


class InMemorySystemUsageReader:
    """Implements ``chatcore.usage.SystemUsageReader`` (and so ``SpendLedger``) over ``store``.

    Like the PostgreSQL reader it sees what is committed, across every user.
    """

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store

    async def totals(self, window: UsageWindow) -> UsageTotals:
        return summarize(in_window(self._store.usage.values(), window))

    async def series(self, window: UsageWindow, group_by: GroupBy) -> list[UsageBucket]:
        return usage_series(in_window(self._store.usage.values(), window), group_by)

    async def paid_cost_since(self, since: datetime) -> float:
        # Rounded to the ledger's precision, like the database's exact numeric sum.
        paid = in_window(self._store.usage.values(), UsageWindow(start=since))
        return round(math.fsum(r.usage.cost for r in paid if not r.usage.is_free_model), 8)

    async def users(self, window: UsageWindow) -> int:
        return len({r.user_id for r in in_window(self._store.usage.values(), window)})


# The fallback policy's name for it (``chatcore.fallback.SpendLedger``).
InMemorySpendLedger = InMemorySystemUsageReader
