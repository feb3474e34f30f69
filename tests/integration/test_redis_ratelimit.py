"""The Redis limiter shares one window between replicas."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from adapters.redis import RedisRateLimiter

pytestmark = pytest.mark.redis

REDIS_URL = os.environ.get("CHATCORE_TEST_REDIS_URL") or os.environ.get(
    "REDIS_URL", "redis://127.0.0.1:6379/0"
)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        await client.ping()
    except (RedisConnectionError, OSError) as exc:
        await client.aclose()
        pytest.skip(f"no Redis answers at {REDIS_URL} ({exc}); set CHATCORE_TEST_REDIS_URL")
    yield client
    await client.aclose()


async def test_two_replicas_share_the_window(redis_client: Redis) -> None:
    prefix = f"chatcore-test-{uuid.uuid4().hex}:"
    replica_a = RedisRateLimiter(redis_client, prefix=prefix)
    replica_b = RedisRateLimiter(Redis.from_url(REDIS_URL), prefix=prefix)
    try:
        assert (await replica_a.hit("msg:u1", 3, 60)).remaining == 2
        assert (await replica_b.hit("msg:u1", 3, 60)).allowed
        assert (await replica_a.hit("msg:u1", 3, 60)).allowed
        refused = await replica_b.hit("msg:u1", 3, 60)
        assert not refused.allowed
        assert 1 <= refused.retry_after <= 60
        # Refused hits are not recorded, other keys are independent.
        assert await redis_client.zcard(prefix + "msg:u1") == 3
        assert (await replica_b.hit("msg:u2", 3, 60)).allowed
        # Keys expire with their window.
        ttl = await redis_client.pttl(prefix + "msg:u1")
        assert 0 < ttl <= 60_000
        assert await replica_a.ping()
    finally:
        await replica_b.aclose()
        await redis_client.delete(prefix + "msg:u1", prefix + "msg:u2")


async def test_window_slides(redis_client: Redis) -> None:
    prefix = f"chatcore-test-{uuid.uuid4().hex}:"
    limiter = RedisRateLimiter(redis_client, prefix=prefix)
    assert (await limiter.hit("k", 1, 1)).allowed
    refused = await limiter.hit("k", 1, 1)
    assert not refused.allowed
    assert refused.retry_after == 1
    await asyncio.sleep(1.05)
    assert (await limiter.hit("k", 1, 1)).allowed
    await redis_client.delete(prefix + "k")
