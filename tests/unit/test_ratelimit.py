"""The in-process sliding-window limiter."""

from __future__ import annotations

from adapters.memory import InMemoryRateLimiter
from chatcore.clock import FakeClock


async def test_sliding_window_counts_any_window_not_a_fixed_one() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock)
    assert (await limiter.hit("k", 3, 60)).remaining == 2
    clock.advance(30)
    await limiter.hit("k", 3, 60)
    await limiter.hit("k", 3, 60)
    refused = await limiter.hit("k", 3, 60)
    assert not refused.allowed
    assert refused.retry_after == 30  # the first hit leaves the window in 30 s
    clock.advance(30)
    assert (await limiter.hit("k", 3, 60)).allowed  # the first hit left
    assert not (await limiter.hit("k", 3, 60)).allowed  # the two at +30 s are still in


async def test_refused_hits_do_not_count_and_keys_are_independent() -> None:
    clock = FakeClock()
    limiter = InMemoryRateLimiter(clock)
    await limiter.hit("a", 1, 10)
    for _ in range(5):
        assert not (await limiter.hit("a", 1, 10)).allowed
    assert (await limiter.hit("b", 1, 10)).allowed
    clock.advance(10)
    assert (await limiter.hit("a", 1, 10)).allowed
