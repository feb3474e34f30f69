"""Clocks: the system's, and a controllable one for tests and simulations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["FakeClock", "SystemClock"]


class SystemClock:
    """The wall clock, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to; each ``now()`` can also step a little.

    Args:
        start: the first time it tells (UTC).
        step: added after every ``now()`` so that successive events are strictly ordered.
    """

    def __init__(
        self,
        start: datetime | None = None,
        step: timedelta = timedelta(microseconds=1),
    ) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._step = step

    def now(self) -> datetime:
        current = self._now
        self._now += self._step
        return current

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)
