"""What the hot queries read: their cost must not grow with the data around them.

Each test fills a fresh database, lets PostgreSQL gather statistics (ANALYZE), and runs
the query under ``EXPLAIN (ANALYZE)`` as the service runs it: in the transaction a unit
of work opens (the service's role, one user, row-level security on).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.postgres import create_engine, migrate
from adapters.postgres.repositories import _GET_CONVERSATION_WITH_RECENT
from adapters.postgres.uow import _begin_scoped, statement_cache
from chatcore.services.common import ChatSettings

pytestmark = pytest.mark.postgres

CreateDb = Callable[[], Awaitable[str]]
WINDOW = ChatSettings().history_window  # what a message reads by default


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _fill(conn: AsyncConnection, user: uuid.UUID, conversation: uuid.UUID) -> None:
    """One long conversation of ``user`` among many users' short ones."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    await conn.execute(
        text(
            "INSERT INTO chat.conversations (id, user_id, title)"
            " SELECT gen_random_uuid(), gen_random_uuid(), 'other' FROM generate_series(1, 400)"
        )
    )
    await conn.execute(
        text(
            "INSERT INTO chat.messages (id, conversation_id, user_id, sender_type, content,"
            " created_at) SELECT gen_random_uuid(), c.id, c.user_id, 'user', 'hi', now()"
            " FROM chat.conversations c, generate_series(1, 2)"
        )
    )
    await conn.execute(
        text("INSERT INTO chat.conversations (id, user_id, title) VALUES (:c, :u, 'long')"),
        {"c": conversation, "u": user},
    )
    await conn.execute(
        text(
            "INSERT INTO chat.messages (id, conversation_id, user_id, sender_type, content,"
            " created_at) SELECT gen_random_uuid(), :c, :u,"
            " CASE WHEN i % 2 = 0 THEN 'user' ELSE 'assistant' END, repeat('word ', 40),"
            " CAST(:start AS timestamptz) + i * interval '1 second'"
            " FROM generate_series(1, 1000) AS i"
        ),
        {"c": conversation, "u": user, "start": start},
    )


@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_history_reads_only_the_window_however_long_the_conversation(
    create_db: CreateDb, plan_cache_mode: str
) -> None:
    # Both plans: the service's statements are prepared, and after a few runs PostgreSQL
    # may switch a prepared statement to its generic plan.
    url = await create_db()
    await migrate(url, "chat")
    engine = create_engine(url, "chat", pool_size=1)
    user, conversation = uuid.uuid4(), uuid.uuid4()
    compiled = statement_cache(engine)(_GET_CONVERSATION_WITH_RECENT)
    arguments = compiled.arguments(
        {"conversation_id": conversation, "limit": WINDOW, "known_version": None}
    )
    try:
        async with engine.begin() as conn:
            # Many users' rows: as the login role (the service's role sees none of them).
            await conn.execute(text("SET LOCAL ROLE NONE"))
            await _fill(conn, user, conversation)
        async with engine.connect() as conn:
            await conn.execute(text("SET LOCAL ROLE NONE"))
            await conn.execute(text("ANALYZE chat.conversations, chat.messages"))
            await conn.commit()
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            # The transaction the service's units of work open (the user; the role and
            # the planner's settings are the connection's own).
            await driver.execute(_begin_scoped(user))
            await driver.execute(f"SET LOCAL plan_cache_mode = {plan_cache_mode}")
            raw = await driver.fetchval(
                f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.sql}", *arguments
            )
            await driver.execute("ROLLBACK")
    finally:
        await engine.dispose()
    plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
    scans = [n for n in _nodes(plan) if n.get("Relation Name") == "messages"]
    assert scans, plan
    # The newest WINDOW messages of 1,000, in index order: the scan stops at the limit
    # (one row past it at most) rather than reading the conversation and sorting it.
    read = sum(n["Actual Rows"] + n.get("Rows Removed by Filter", 0) for n in scans)
    assert read <= WINDOW + 1, json.dumps(plan, indent=1)
    assert all(n["Node Type"] in ("Index Scan", "Index Only Scan") for n in scans), plan
    assert plan["Actual Rows"] == WINDOW
