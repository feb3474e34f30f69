"""Usage analytics: totals and time series over the usage ledger."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from chatcore.domain.message import UsageRecord

__all__ = [
    "GroupBy",
    "ModelUsage",
    "SystemUsageReader",
    "UsageBucket",
    "UsageTotals",
    "UsageWindow",
    "bucket_start",
    "summarize",
]


class GroupBy(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(slots=True, frozen=True, kw_only=True)
class UsageWindow:
    """A half-open time range ``[start, end)``; None leaves that side open."""

    start: datetime | None = None
    end: datetime | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class ModelUsage:
    """What one model did in a window."""

    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    free_requests: int = 0
    fallback_requests: int = 0
    avg_processing_time_ms: float = 0.0
    avg_time_to_first_token_ms: float | None = None


@dataclass(slots=True, frozen=True, kw_only=True)
class UsageTotals:
    """Sums over a window, plus the per-model breakdown (most used first)."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    free_requests: int = 0
    fallback_requests: int = 0
    models: tuple[ModelUsage, ...] = field(default_factory=tuple)

    @property
    def fallback_rate(self) -> float:
        return self.fallback_requests / self.requests if self.requests else 0.0

    @property
    def free_model_share(self) -> float:
        return self.free_requests / self.requests if self.requests else 0.0


@dataclass(slots=True, frozen=True, kw_only=True)
class UsageBucket:
    """Totals of one period (``period_start`` is the UTC start of the day/week/month)."""

    period_start: datetime
    totals: UsageTotals


class SystemUsageReader(Protocol):
    """Service-wide usage across every user (for admins; bypasses per-user isolation)."""

    async def totals(self, window: UsageWindow) -> UsageTotals:
        """Totals of every user's answers in ``window``."""
        ...

    async def series(self, window: UsageWindow, group_by: GroupBy) -> list[UsageBucket]:
        """Totals per period, oldest first, periods without usage left out."""
        ...

    async def paid_cost_since(self, since: datetime) -> float:
        """Cost of paid-model answers since ``since`` (the fallback policy's budget)."""
        ...

    async def users(self, window: UsageWindow) -> int:
        """Distinct users with at least one answer in ``window``."""
        ...


def bucket_start(ts: datetime, group_by: GroupBy) -> datetime:
    """The UTC start of the day, week (Monday) or month holding ``ts``.

    The same periods as PostgreSQL's ``date_trunc(unit, ts AT TIME ZONE 'UTC')``. A
    naive ``ts`` is taken to be UTC.
    """
    utc = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    day = utc.replace(hour=0, minute=0, second=0, microsecond=0)
    if group_by is GroupBy.WEEK:
        return day - timedelta(days=day.weekday())
    if group_by is GroupBy.MONTH:
        return day.replace(day=1)
    return day


def summarize(records: Iterable[UsageRecord]) -> UsageTotals:
    """Totals of ``records`` with the per-model breakdown, most requests first (ties by name).

    Costs are summed exactly and rounded to 8 decimal places, the ledger's precision,
    so that the result does not depend on the order of the records (and equals the
    database's exact ``numeric`` sum). Averages are over the records of one model;
    ``avg_time_to_first_token_ms`` over those that have one (None if none has).
    """
    by_model: dict[str, list[UsageRecord]] = {}
    every: list[UsageRecord] = []
    for record in records:
        by_model.setdefault(record.model_used, []).append(record)
        every.append(record)

    def cost(group: list[UsageRecord]) -> float:
        return round(math.fsum(r.usage.cost for r in group), 8)

    models: list[ModelUsage] = []
    for model, group in by_model.items():
        ttft = [r.time_to_first_token_ms for r in group if r.time_to_first_token_ms is not None]
        models.append(
            ModelUsage(
                model=model,
                requests=len(group),
                prompt_tokens=sum(r.usage.prompt_tokens for r in group),
                completion_tokens=sum(r.usage.completion_tokens for r in group),
                total_tokens=sum(r.usage.total_tokens for r in group),
                cost=cost(group),
                free_requests=sum(1 for r in group if r.usage.is_free_model),
                fallback_requests=sum(1 for r in group if r.fell_back),
                avg_processing_time_ms=sum(r.processing_time_ms for r in group) / len(group),
                avg_time_to_first_token_ms=sum(ttft) / len(ttft) if ttft else None,
            )
        )
    models.sort(key=lambda m: (-m.requests, m.model))
    return UsageTotals(
        requests=len(every),
        prompt_tokens=sum(m.prompt_tokens for m in models),
        completion_tokens=sum(m.completion_tokens for m in models),
        total_tokens=sum(m.total_tokens for m in models),
        cost=cost(every),
        free_requests=sum(m.free_requests for m in models),
        fallback_requests=sum(m.fallback_requests for m in models),
        models=tuple(models),
    )
