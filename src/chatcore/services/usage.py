"""Usage use cases: a conversation's, a user's, and (for admins) the whole service's."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from chatcore.errors import ValidationError
from chatcore.ports import UnitOfWorkFactory
from chatcore.services.common import load_conversation
from chatcore.usage import GroupBy, SystemUsageReader, UsageBucket, UsageTotals, UsageWindow

__all__ = ["SystemReport", "UsageReport", "UsageService"]


@dataclass(slots=True, frozen=True, kw_only=True)
class UsageReport:
    window: UsageWindow
    totals: UsageTotals
    series: list[UsageBucket] | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class SystemReport:
    window: UsageWindow
    totals: UsageTotals
    users: int
    series: list[UsageBucket]


def _check(window: UsageWindow) -> UsageWindow:
    if window.start and window.end and window.start >= window.end:
        raise ValidationError("start_date must be before end_date")
    return window


class UsageService:
    """Reads of the usage ledger; user reads are isolated like every other read."""

    def __init__(self, *, uow: UnitOfWorkFactory, system: SystemUsageReader) -> None:
        self._uow = uow
        self._system = system

    async def conversation(
        self,
        user_id: UUID,
        conversation_id: UUID,
        window: UsageWindow,
        group_by: GroupBy | None = None,
    ) -> UsageReport:
        """Totals of one of the user's conversations (404 for anyone else's), with a
        series when ``group_by`` is given."""
        async with self._uow(user_id) as uow:
            await load_conversation(uow, conversation_id)
            totals = await uow.usage.totals(_check(window), conversation_id)
            series = await uow.usage.series(window, group_by, conversation_id) if group_by else None
        return UsageReport(window=window, totals=totals, series=series)

    async def summary(
        self, user_id: UUID, window: UsageWindow, group_by: GroupBy | None = None
    ) -> UsageReport:
        """The user's totals over every conversation, with a series when asked."""
        async with self._uow(user_id) as uow:
            totals = await uow.usage.totals(_check(window))
            series = await uow.usage.series(window, group_by) if group_by else None
        return UsageReport(window=window, totals=totals, series=series)

    async def stats(self, user_id: UUID, window: UsageWindow, group_by: GroupBy) -> UsageReport:
        """The user's totals and their series per day, week or month."""
        async with self._uow(user_id) as uow:
            totals = await uow.usage.totals(_check(window))
            series = await uow.usage.series(window, group_by)
        return UsageReport(window=window, totals=totals, series=series)

    async def system(self, window: UsageWindow, group_by: GroupBy) -> SystemReport:
        """Service-wide figures; the caller must have checked that the user is an admin."""
        _check(window)
        return SystemReport(
            window=window,
            totals=await self._system.totals(window),
            users=await self._system.users(window),
            series=await self._system.series(window, group_by),
        )
