"""FairGate: a bounded number of holders, waiters served strictly in arrival order."""

from __future__ import annotations

import asyncio

import pytest

from adapters.postgres.uow import FairGate


async def test_waiters_get_in_in_arrival_order_and_newcomers_cannot_jump_the_queue() -> None:
    gate = FairGate(1)
    await gate.acquire()  # held
    order: list[int] = []

    async def holder(n: int) -> None:
        await gate.acquire()
        order.append(n)
        await asyncio.sleep(0)
        gate.release()

    first = [asyncio.create_task(holder(n)) for n in range(3)]
    await asyncio.sleep(0)  # all three are waiting now
    assert gate.waiting == 3
    gate.release()
    # A newcomer arriving right after the release, before the woken waiter ran.
    late = asyncio.create_task(holder(99))
    await asyncio.gather(*first, late)
    assert order == [0, 1, 2, 99]


async def test_at_most_capacity_hold_at_once() -> None:
    gate = FairGate(3)
    inside = peak = 0

    async def work() -> None:
        nonlocal inside, peak
        await gate.acquire()
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.001)
        inside -= 1
        gate.release()

    await asyncio.gather(*(work() for _ in range(20)))
    assert peak == 3
    assert gate.waiting == 0


async def test_a_waiter_that_gives_up_is_skipped_and_loses_no_place() -> None:
    gate = FairGate(1)
    await gate.acquire()
    quitter = asyncio.create_task(gate.acquire())
    stayer = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    quitter.cancel()
    await asyncio.sleep(0)
    gate.release()
    await asyncio.wait_for(stayer, 1)  # the place went past the cancelled waiter
    gate.release()
    await asyncio.wait_for(gate.acquire(), 1)  # and the capacity is whole


async def test_a_place_handed_over_to_a_cancelled_waiter_is_passed_on() -> None:
    gate = FairGate(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    second = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # hands the place to `first`...
    first.cancel()  # ...which is cancelled before it runs
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 1)


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        FairGate(0)
