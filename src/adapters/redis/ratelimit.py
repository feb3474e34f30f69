"""A sliding-window rate limiter in Redis, shared by every replica."""

from __future__ import annotations

import math
import secrets

from redis.asyncio import Redis

from chatcore.ports import RateDecision

__all__ = ["RedisRateLimiter"]

# One atomic step: drop hits older than the window, refuse when full (telling when
# the oldest hit leaves), else record this hit. Time comes from the Redis server, so
# replicas with skewed clocks still agree.
_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, 0, tonumber(oldest[2]) + window - now}
end
redis.call('ZADD', KEYS[1], now, now .. '-' .. ARGV[3])
redis.call('PEXPIRE', KEYS[1], window)
return {1, limit - count - 1, 0}
"""


class RedisRateLimiter:
    """Exact sliding windows kept in sorted sets under ``prefix``."""

    def __init__(self, client: Redis, prefix: str = "chatcore:rl:") -> None:
        self._client = client
        self._prefix = prefix
        self._script = client.register_script(_SCRIPT)

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        result = await self._script(
            keys=[self._prefix + key],
            args=[window_seconds * 1000, limit, secrets.token_hex(6)],
        )
        allowed, remaining, retry_ms = (int(x) for x in result)
        if allowed:
            return RateDecision(allowed=True, remaining=remaining)
        return RateDecision(
            allowed=False, remaining=0, retry_after=max(1, math.ceil(retry_ms / 1000))
        )

    async def ping(self) -> bool:
        return bool(await self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()
