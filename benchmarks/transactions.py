"""What a unit of work's transaction costs around its statements, on PostgreSQL directly.

A message is two units of work: the question (two statements) and the answer (one).
This script runs that shape on asyncpg with concurrent tasks, as the service's event
loop does, in three forms, and prints the client's and PostgreSQL's CPU per message:

- ``statements``: the three statements alone, no transaction (the baseline: what no
  unit of work can go below);
- ``scope``: each unit of work as chatcore sends it, ``BEGIN`` with the user's
  ``SET LOCAL`` in one round trip, the statements, ``COMMIT``, on connections that
  start as the service's role with bitmap scans off (decision 0014);
- ``scope+role``: the same with the role and the planner setting sent in every
  ``BEGIN`` (``SET LOCAL ROLE``, ``SET LOCAL enable_bitmapscan``), as before 0014;
- ``calls``: each statement as a scoped call (decision 0016), the function that
  ``adapters.postgres.compiled.ScopedCall`` makes of it: one round trip, in a
  transaction of its own, no ``BEGIN`` or ``COMMIT``, as chatcore sends a message now.

The statements are ``SELECT $1::int``: what is measured is the transaction around
them. The phases alternate for ``--rounds`` rounds, so that a busy neighbour shows as
spread between rounds rather than as a difference between forms.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/chatcore_bench \\
        python benchmarks/transactions.py [--tasks 50] [--duration 5] [--rounds 3]

The database must be migrated (``chatcore migrate``): the role must exist.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import uvloop

from adapters.postgres.compiled import ScopedCall
from adapters.postgres.tables import APP_ROLE, USER_SETTING
from load import CpuSample

_SESSION = {"role": APP_ROLE, "enable_bitmapscan": "off"}


def _begin(user: uuid.UUID, with_role: bool) -> str:
    scope = f"SET LOCAL {USER_SETTING} = '{user}'"
    if with_role:
        return f"BEGIN; SET LOCAL ROLE {APP_ROLE}; {scope}; SET LOCAL enable_bitmapscan = off"
    return f"BEGIN; {scope}"


UnitOfWork = Callable[[Any, uuid.UUID, int], Awaitable[None]]
_STATEMENT = "SELECT $1::int"


async def _scoped_call(conn: Any) -> str:
    """Create the statement's scoped call on ``conn``; the SQL that calls it."""
    described = await conn.prepare(_STATEMENT)
    call = ScopedCall.of(
        _STATEMENT,
        described.get_parameters(),
        [a.type for a in described.get_attributes()],
        USER_SETTING,
    )
    assert call is not None
    await conn.execute(call.create)
    return call.call


def _form(name: str) -> UnitOfWork:
    async def statements(conn: Any, user: uuid.UUID, count: int) -> None:
        for i in range(count):
            await conn.fetch("SELECT $1::int", i)

    async def scoped(conn: Any, user: uuid.UUID, count: int) -> None:
        await conn.execute(_begin(user, with_role=name == "scope+role"))
        for i in range(count):
            await conn.fetch("SELECT $1::int", i)
        await conn.execute("COMMIT")

    async def calls(conn: Any, user: uuid.UUID, count: int) -> None:
        call = _CALL[0]  # the same function on every connection (see _init)
        for i in range(count):
            await conn.fetch(call, i, user)

    if name == "calls":
        return calls
    return statements if name == "statements" else scoped


# The function's name is a digest of its definition: one call SQL for every connection.
_CALL: list[str] = []


async def _init(conn: Any) -> None:
    _CALL[:] = [await _scoped_call(conn)]


async def _phase(url: str, name: str, tasks: int, duration: float) -> tuple[float, float, float]:
    """Messages per second, client and PostgreSQL CPU microseconds per message."""
    settings = None if name == "scope+role" else _SESSION
    pool = await asyncpg.create_pool(
        url,
        min_size=tasks,
        max_size=tasks,
        server_settings=settings,
        init=_init if name == "calls" else None,
    )
    form = _form(name)
    done = 0
    stop = asyncio.Event()

    async def user_loop() -> None:
        nonlocal done
        user = uuid.uuid4()
        while not stop.is_set():
            async with pool.acquire() as conn:  # the question's unit of work
                await form(conn, user, 2)
            async with pool.acquire() as conn:  # the answer's
                await form(conn, user, 1)
            done += 1

    try:
        runners = [asyncio.create_task(user_loop()) for _ in range(tasks)]
        await asyncio.sleep(1.0)  # warm-up
        before, count, start = CpuSample.take(), done, time.perf_counter()
        await asyncio.sleep(duration)
        after, messages, elapsed = CpuSample.take(), done - count, time.perf_counter() - start
        stop.set()
        await asyncio.gather(*runners)
    finally:
        await pool.close()
    used, _ = after.used_since(before, set())
    per = 1e6 / max(messages, 1)
    return messages / elapsed, used["client"] * per, used["postgres"] * per


async def _main(args: argparse.Namespace) -> None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL must name a migrated database on 127.0.0.1")
    forms = ("statements", "scope", "scope+role", "calls")
    results: dict[str, list[tuple[float, float, float]]] = {f: [] for f in forms}
    print(f"{args.tasks} tasks, {args.duration:g} s per phase, {args.rounds} rounds")
    for round_ in range(1, args.rounds + 1):
        for name in forms:
            rate, client, pg = await _phase(url, name, args.tasks, args.duration)
            results[name].append((rate, client, pg))
            print(
                f"  round {round_} {name:<11} {rate:8.0f} msgs/s"
                f"  client {client:6.0f} us/msg  postgres {pg:6.0f} us/msg"
            )
    print("\nmedians, and above the baseline (statements alone)")
    base = results["statements"]
    base_client = statistics.median(r[1] for r in base)
    base_pg = statistics.median(r[2] for r in base)
    for name in forms:
        client = statistics.median(r[1] for r in results[name])
        pg = statistics.median(r[2] for r in results[name])
        print(
            f"  {name:<11} client {client:6.0f} (+{client - base_client:5.0f}) us/msg"
            f"  postgres {pg:6.0f} (+{pg - base_pg:5.0f}) us/msg"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=50, help="concurrent users")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the four phases")
    args = parser.parse_args()
    if args.tasks < 1 or args.duration <= 0 or args.rounds < 1:
        parser.error("--tasks, --duration and --rounds must be positive")
    uvloop.run(_main(args))


if __name__ == "__main__":
    main()
