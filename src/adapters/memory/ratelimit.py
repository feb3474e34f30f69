"""An in-process sliding-window rate limiter."""

from __future__ import annotations

import math
from collections import deque

from chatcore.ports import Clock, RateDecision

__all__ = ["InMemoryRateLimiter"]


class InMemoryRateLimiter:
    """Exact sliding windows: at most ``limit`` events in any ``window_seconds``.

    Per process; with several replicas use the Redis limiter so the limits are shared.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._calls = 0

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        now = self._clock.now().timestamp()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - window_seconds:
            hits.popleft()
        self._calls += 1
        if self._calls % 10_000 == 0:
            self._sweep(now, window_seconds)
        if len(hits) >= limit:
            retry_after = math.ceil(hits[0] + window_seconds - now)
            return RateDecision(allowed=False, remaining=0, retry_after=max(1, retry_after))
        hits.append(now)
        return RateDecision(allowed=True, remaining=limit - len(hits))

    def _sweep(self, now: float, window_seconds: int) -> None:
        # Forget keys whose newest hit is older than a day, so memory stays bounded.
        horizon = now - max(window_seconds, 86_400)
        for key in [k for k, v in self._hits.items() if not v or v[-1] <= horizon]:
            del self._hits[key]
