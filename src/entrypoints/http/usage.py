"""Usage routes: a conversation's, the user's own, and the service's (admins)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from uuid import UUID

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from chatcore.errors import ForbiddenError, ValidationError
from chatcore.usage import GroupBy, ModelUsage, UsageBucket, UsageTotals, UsageWindow
from entrypoints.auth import Principal
from entrypoints.bootstrap import Container
from entrypoints.http.deps import authenticate
from entrypoints.http.schemas import Ok

__all__ = ["ConversationUsageController", "UsageController"]

DateParam = Annotated[
    str | None,
    Parameter(
        max_length=40,
        description="ISO date (YYYY-MM-DD, whole days in UTC) or date-time; end is inclusive "
        "for dates, exclusive for date-times.",
    ),
]


class ModelUsageOut(msgspec.Struct, kw_only=True):
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    free_requests: int
    fallback_requests: int
    fallback_rate: float
    avg_processing_time_ms: float
    avg_time_to_first_token_ms: float | None


class TotalsOut(msgspec.Struct, kw_only=True):
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float
    free_requests: int
    fallback_requests: int
    fallback_rate: float
    free_model_share: float
    models: list[ModelUsageOut]


class WindowOut(msgspec.Struct, kw_only=True):
    start: datetime | None
    end: datetime | None


class BucketOut(msgspec.Struct, kw_only=True):
    period_start: datetime
    totals: TotalsOut


class ConversationUsageOut(msgspec.Struct, kw_only=True):
    conversation_id: UUID
    window: WindowOut
    totals: TotalsOut
    group_by: GroupBy | msgspec.UnsetType = msgspec.UNSET
    series: list[BucketOut] | msgspec.UnsetType = msgspec.UNSET


class SummaryOut(msgspec.Struct, kw_only=True):
    window: WindowOut
    totals: TotalsOut
    group_by: GroupBy | msgspec.UnsetType = msgspec.UNSET
    series: list[BucketOut] | msgspec.UnsetType = msgspec.UNSET


class StatsOut(msgspec.Struct, kw_only=True):
    window: WindowOut
    group_by: GroupBy
    totals: TotalsOut
    series: list[BucketOut]


class SystemOut(msgspec.Struct, kw_only=True):
    window: WindowOut
    group_by: GroupBy
    users: int
    totals: TotalsOut
    series: list[BucketOut]


def _model_out(m: ModelUsage) -> ModelUsageOut:
    return ModelUsageOut(
        model=m.model,
        requests=m.requests,
        prompt_tokens=m.prompt_tokens,
        completion_tokens=m.completion_tokens,
        total_tokens=m.total_tokens,
        cost=round(m.cost, 8),
        free_requests=m.free_requests,
        fallback_requests=m.fallback_requests,
        fallback_rate=round(m.fallback_requests / m.requests, 4) if m.requests else 0.0,
        avg_processing_time_ms=round(m.avg_processing_time_ms, 1),
        avg_time_to_first_token_ms=(
            None if m.avg_time_to_first_token_ms is None else round(m.avg_time_to_first_token_ms, 1)
        ),
    )


def totals_out(t: UsageTotals) -> TotalsOut:
    return TotalsOut(
        requests=t.requests,
        prompt_tokens=t.prompt_tokens,
        completion_tokens=t.completion_tokens,
        total_tokens=t.total_tokens,
        cost=round(t.cost, 8),
        free_requests=t.free_requests,
        fallback_requests=t.fallback_requests,
        fallback_rate=round(t.fallback_rate, 4),
        free_model_share=round(t.free_model_share, 4),
        models=[_model_out(m) for m in t.models],
    )


def _series(buckets: list[UsageBucket]) -> list[BucketOut]:
    return [BucketOut(period_start=b.period_start, totals=totals_out(b.totals)) for b in buckets]


def _moment(raw: str | None, name: str, *, end: bool) -> datetime | None:
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    try:
        # Any ISO date form (2026-03-10, 20260310, 2026-W10-2) is a whole day.
        day: date | None = date.fromisoformat(text)
    except ValueError:
        day = None
    try:
        if day is not None:
            if end and day == date.max:
                return None  # through the last day there is: no end
            start = datetime.combine(day, time(0), UTC)
            return start + timedelta(days=1) if end else start
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"{name} must be an ISO date or date-time, got {raw!r}") from None
    try:
        # In UTC, like the ledger's timestamps (and so that storage never sees an offset
        # that moves the moment out of datetime's range).
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except OverflowError:
        raise ValidationError(f"{name} is out of range, got {raw!r}") from None


def window_of(start_date: str | None, end_date: str | None) -> UsageWindow:
    return UsageWindow(
        start=_moment(start_date, "start_date", end=False),
        end=_moment(end_date, "end_date", end=True),
    )


def _window_out(window: UsageWindow) -> WindowOut:
    return WindowOut(start=window.start, end=window.end)


class ConversationUsageController(Controller):
    path = "/conversations"
    tags = ["usage"]
    before_request = staticmethod(authenticate)

    @get("/{conversation_id:str}/usage", summary="Usage of one conversation")
    async def conversation_usage(
        self,
        conversation_id: UUID,
        container: Container,
        principal: Principal,
        start_date: DateParam = None,
        end_date: DateParam = None,
        group_by: GroupBy | None = None,
    ) -> Ok[ConversationUsageOut]:
        window = window_of(start_date, end_date)
        report = await container.usage.conversation(
            principal.user_id, conversation_id, window, group_by
        )
        return Ok(
            data=ConversationUsageOut(
                conversation_id=conversation_id,
                window=_window_out(window),
                totals=totals_out(report.totals),
                group_by=group_by or msgspec.UNSET,
                series=_series(report.series) if report.series is not None else msgspec.UNSET,
            )
        )


class UsageController(Controller):
    path = "/usage"
    tags = ["usage"]
    before_request = staticmethod(authenticate)

    @get("/summary", summary="The caller's usage totals")
    async def summary(
        self,
        container: Container,
        principal: Principal,
        start_date: DateParam = None,
        end_date: DateParam = None,
        group_by: GroupBy | None = None,
    ) -> Ok[SummaryOut]:
        window = window_of(start_date, end_date)
        report = await container.usage.summary(principal.user_id, window, group_by)
        return Ok(
            data=SummaryOut(
                window=_window_out(window),
                totals=totals_out(report.totals),
                group_by=group_by or msgspec.UNSET,
                series=_series(report.series) if report.series is not None else msgspec.UNSET,
            )
        )

    @get("/stats", summary="The caller's usage per day, week or month")
    async def stats(
        self,
        container: Container,
        principal: Principal,
        start_date: DateParam = None,
        end_date: DateParam = None,
        group_by: GroupBy = GroupBy.DAY,
    ) -> Ok[StatsOut]:
        window = window_of(start_date, end_date)
        report = await container.usage.stats(principal.user_id, window, group_by)
        return Ok(
            data=StatsOut(
                window=_window_out(window),
                group_by=group_by,
                totals=totals_out(report.totals),
                series=_series(report.series or []),
            )
        )

    @get("/system", summary="Service-wide usage (admins only)")
    async def system(
        self,
        container: Container,
        principal: Principal,
        start_date: DateParam = None,
        end_date: DateParam = None,
        group_by: GroupBy = GroupBy.DAY,
    ) -> Ok[SystemOut]:
        if not principal.is_admin:
            raise ForbiddenError("service-wide usage is for admins only")
        window = window_of(start_date, end_date)
        report = await container.usage.system(window, group_by)
        return Ok(
            data=SystemOut(
                window=_window_out(window),
                group_by=group_by,
                users=report.users,
                totals=totals_out(report.totals),
                series=_series(report.series),
            )
        )
