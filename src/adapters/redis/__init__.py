"""Redis adapters: state shared by every replica."""

from adapters.redis.ratelimit import RedisRateLimiter

__all__ = ["RedisRateLimiter"]
