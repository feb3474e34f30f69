"""Per-user rate limits: messages per minute and new conversations per day."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from chatcore.errors import RateLimitedError
from chatcore.ports import RateLimiter

__all__ = ["RateLimits", "RatePolicy"]


@dataclass(slots=True, frozen=True, kw_only=True)
class RatePolicy:
    messages_per_minute: int = 20
    conversations_per_day: int = 100


class RateLimits:
    """Applies :class:`RatePolicy` through a :class:`RateLimiter` (in-process or shared)."""

    def __init__(self, limiter: RateLimiter, policy: RatePolicy) -> None:
        self._limiter = limiter
        self._policy = policy

    async def message(self, user_id: UUID) -> None:
        """Count one message; raises :class:`RateLimitedError` when over the limit."""
        limit = self._policy.messages_per_minute
        decision = await self._limiter.hit(f"msg:{user_id}", limit, 60)
        if not decision.allowed:
            raise RateLimitedError(
                f"too many messages: at most {limit} per minute",
                retry_after=decision.retry_after,
                limit=limit,
                window="minute",
            )

    async def conversation(self, user_id: UUID) -> None:
        """Count one new conversation; raises :class:`RateLimitedError` when over the limit."""
        limit = self._policy.conversations_per_day
        decision = await self._limiter.hit(f"conv:{user_id}", limit, 86_400)
        if not decision.allowed:
            raise RateLimitedError(
                f"too many new conversations: at most {limit} per day",
                retry_after=decision.retry_after,
                limit=limit,
                window="day",
            )
