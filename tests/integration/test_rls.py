"""Row-level security, proved in the database itself with raw SQL (no repositories).

The service's transactions run as ``chatcore_app`` with ``app.current_user_id`` set
for the transaction. A statement without any ``WHERE user_id = ...`` must still see,
and write, only the current user's rows, although the login role is a superuser or
owns the tables.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.postgres import ANALYTICS_ROLE, APP_ROLE, PostgresUnitOfWorkFactory
from chatcore.domain import new_id

pytestmark = pytest.mark.postgres

SCHEMA = "chat"
TABLES = ("conversations", "messages", "usage_tracking", "message_reactions")


@asynccontextmanager
async def as_service(engine: AsyncEngine, user_id: UUID | None) -> AsyncIterator[AsyncConnection]:
    """A transaction as the service runs it: SET LOCAL ROLE, then the user (if any).

    Rolled back at the end unless the body commits.
    """
    async with engine.connect() as connection:
        await connection.begin()
        await connection.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
        if user_id is not None:
            await connection.execute(
                text("SELECT set_config('app.current_user_id', :uid, true)"), {"uid": str(user_id)}
            )
        yield connection


async def insert_conversation(conn: AsyncConnection, user_id: UUID, cid: UUID) -> None:
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.conversations (id, user_id, title, created_at, updated_at)"
            " VALUES (:id, :uid, 'raw', now(), now())"
        ),
        {"id": cid, "uid": user_id},
    )


async def insert_message(conn: AsyncConnection, user_id: UUID, cid: UUID, mid: UUID) -> None:
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.messages (id, conversation_id, user_id, sender_type, content)"
            " VALUES (:id, :cid, :uid, 'user', 'hello')"
        ),
        {"id": mid, "cid": cid, "uid": user_id},
    )


async def insert_usage(conn: AsyncConnection, user_id: UUID, cid: UUID, mid: UUID) -> None:
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.usage_tracking (id, user_id, conversation_id, message_id,"
            " model_used, prompt_tokens, completion_tokens, total_tokens)"
            " VALUES (:id, :uid, :cid, :mid, 'offline', 1, 2, 3)"
        ),
        {"id": uuid.uuid4(), "uid": user_id, "cid": cid, "mid": mid},
    )


async def insert_reaction(conn: AsyncConnection, user_id: UUID, cid: UUID, mid: UUID) -> UUID:
    reaction_id = uuid.uuid4()
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.message_reactions (id, message_id, conversation_id, user_id,"
            " reaction) VALUES (:id, :mid, :cid, :uid, 'like')"
        ),
        {"id": reaction_id, "uid": user_id, "cid": cid, "mid": mid},
    )
    return reaction_id


async def seed(engine: AsyncEngine, user_id: UUID, conversations: int = 2) -> dict[str, set[UUID]]:
    """Rows of ``user_id`` in every table, written under the service role as that user."""
    ids: dict[str, set[UUID]] = {table: set() for table in TABLES}
    async with as_service(engine, user_id) as conn:
        for _ in range(conversations):
            cid, mid = new_id(datetime.now(UTC)), new_id(datetime.now(UTC))
            await insert_conversation(conn, user_id, cid)
            await insert_message(conn, user_id, cid, mid)
            await insert_usage(conn, user_id, cid, mid)
            ids["message_reactions"].add(await insert_reaction(conn, user_id, cid, mid))
            ids["conversations"].add(cid)
            ids["messages"].add(mid)
        rows = await conn.execute(
            text(f"SELECT id FROM {SCHEMA}.usage_tracking WHERE user_id = :uid"), {"uid": user_id}
        )
        ids["usage_tracking"] = {row[0] for row in rows}
        await conn.commit()
    return ids


async def assert_login_role_is_privileged(engine: AsyncEngine) -> None:
    """The point of the test: the login role would bypass RLS on its own."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT r.rolsuper, pg_get_userbyid(c.relowner) = session_user"
                    " FROM pg_roles r, pg_class c"
                    " WHERE r.rolname = session_user AND c.oid = :table ::regclass"
                ),
                {"table": f"{SCHEMA}.conversations"},
            )
        ).one()
    is_superuser, is_owner = row
    assert is_superuser or is_owner


def is_rls_violation(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "42501"


@pytest.mark.parametrize("table", TABLES)
async def test_select_without_where_sees_only_the_current_users_rows(
    pg_engine: AsyncEngine, login_engine: AsyncEngine, table: str
) -> None:
    await assert_login_role_is_privileged(pg_engine)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_ids = await seed(pg_engine, alice)
    bob_ids = await seed(pg_engine, bob, conversations=3)

    async with as_service(pg_engine, alice) as conn:
        rows = (await conn.execute(text(f"SELECT * FROM {SCHEMA}.{table}"))).mappings().all()
        assert {row["id"] for row in rows} == alice_ids[table]
        assert {row["user_id"] for row in rows} == {alice}
    async with as_service(pg_engine, bob) as conn:
        bob_rows = (await conn.execute(text(f"SELECT id FROM {SCHEMA}.{table}"))).all()
        assert {row[0] for row in bob_rows} == bob_ids[table]

    # As the login role itself, a superuser sees both users' rows (superusers bypass
    # every policy): the service's role, not the query, is what isolates users. A mere
    # owner is held by FORCE ROW LEVEL SECURITY and, without a user set, sees nothing.
    # The service's own connections never run as the login role (decision 0014): without
    # a user they see nothing.
    async with pg_engine.connect() as conn:
        unscoped = await conn.execute(
            text(f"SELECT count(*) FROM {SCHEMA}.{table} WHERE user_id IN (:a, :b)"),
            {"a": alice, "b": bob},
        )
        assert unscoped.scalar() == 0
    async with login_engine.connect() as conn:
        superuser, count = (
            await conn.execute(
                text(
                    "SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user),"
                    f" (SELECT count(*) FROM {SCHEMA}.{table} WHERE user_id IN (:a, :b))"
                ),
                {"a": alice, "b": bob},
            )
        ).one()
    assert count == (len(alice_ids[table]) + len(bob_ids[table]) if superuser else 0)


@pytest.mark.parametrize("table", TABLES)
async def test_no_user_set_sees_nothing(pg_engine: AsyncEngine, table: str) -> None:
    await seed(pg_engine, uuid.uuid4())
    async with as_service(pg_engine, None) as conn:
        assert (await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{table}"))).scalar() == 0


async def test_setting_left_empty_by_an_ended_transaction_matches_nothing(
    pg_engine: AsyncEngine,
) -> None:
    # After a transaction-local set_config ends, the setting reads '' rather than NULL;
    # the policy's NULLIF keeps ''::uuid from raising.
    await seed(pg_engine, uuid.uuid4())
    async with pg_engine.connect() as conn:
        async with conn.begin():
            await conn.execute(
                text("SELECT set_config('app.current_user_id', :uid, true)"),
                {"uid": str(uuid.uuid4())},
            )
        async with conn.begin():
            assert (
                await conn.execute(text("SELECT current_setting('app.current_user_id', true)"))
            ).scalar() == ""
            await conn.execute(text(f"SET LOCAL ROLE {APP_ROLE}"))
            count = await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.conversations"))
            assert count.scalar() == 0


async def test_insert_for_another_user_is_refused(pg_engine: AsyncEngine) -> None:
    await assert_login_role_is_privileged(pg_engine)
    alice, bob = uuid.uuid4(), uuid.uuid4()
    bob_ids = await seed(pg_engine, bob, conversations=1)
    alice_ids = await seed(pg_engine, alice, conversations=1)
    (bob_conversation,) = bob_ids["conversations"]
    (alice_conversation,) = alice_ids["conversations"]
    (alice_message,) = alice_ids["messages"]

    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, alice) as conn:
            await insert_conversation(conn, bob, uuid.uuid4())
    assert is_rls_violation(refused.value)

    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, alice) as conn:
            await insert_message(conn, bob, bob_conversation, uuid.uuid4())
    assert is_rls_violation(refused.value)

    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, alice) as conn:
            await insert_usage(conn, bob, alice_conversation, alice_message)
    assert is_rls_violation(refused.value)

    async with as_service(pg_engine, bob) as conn:
        count = await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.conversations"))
        assert count.scalar() == 1


async def test_no_user_set_cannot_insert(pg_engine: AsyncEngine) -> None:
    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, None) as conn:
            await insert_conversation(conn, uuid.uuid4(), uuid.uuid4())
    assert is_rls_violation(refused.value)


@pytest.mark.parametrize("table", TABLES)
async def test_update_and_delete_reach_only_own_rows(pg_engine: AsyncEngine, table: str) -> None:
    alice, bob = uuid.uuid4(), uuid.uuid4()
    await seed(pg_engine, bob)
    await seed(pg_engine, alice)
    async with as_service(pg_engine, alice) as conn:
        # No WHERE at all: only Alice's rows are touched.
        column = "feedback = NULL" if table == "message_reactions" else "metadata = '{}'"
        changed = await conn.execute(text(f"UPDATE {SCHEMA}.{table} SET {column}"))
        assert changed.rowcount == 2
        # Handing her rows to Bob is refused by WITH CHECK.
        with pytest.raises(DBAPIError) as refused:
            async with conn.begin_nested():
                await conn.execute(text(f"UPDATE {SCHEMA}.{table} SET user_id = :b"), {"b": bob})
        assert is_rls_violation(refused.value)
        deleted = await conn.execute(text(f"DELETE FROM {SCHEMA}.{table}"))
        assert deleted.rowcount == 2
    async with as_service(pg_engine, bob) as conn:
        count = await conn.execute(text(f"SELECT count(*) FROM {SCHEMA}.{table}"))
        assert count.scalar() == 2


async def test_message_cannot_join_another_users_conversation(pg_engine: AsyncEngine) -> None:
    # Foreign-key checks bypass row-level security; the (conversation_id, user_id) key
    # is what stops a message of Alice's from hanging under Bob's conversation.
    alice, bob = uuid.uuid4(), uuid.uuid4()
    (bob_conversation,) = (await seed(pg_engine, bob, conversations=1))["conversations"]
    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, alice) as conn:
            await insert_message(conn, alice, bob_conversation, uuid.uuid4())
    assert getattr(refused.value.orig, "sqlstate", None) == "23503"  # foreign_key_violation


async def test_every_table_has_forced_row_level_security(pg_engine: AsyncEngine) -> None:
    async with pg_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,"
                    " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid),"
                    " EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = c.oid"
                    "         AND a.attname = 'user_id' AND NOT a.attisdropped)"
                    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = :schema AND c.relkind IN ('r', 'p')"
                ),
                {"schema": SCHEMA},
            )
        ).all()
    by_name = {
        name: (rls, force, policies, has_user) for name, rls, force, policies, has_user in rows
    }
    # Alembic's bookkeeping is the one table without user data (and without RLS).
    assert set(by_name) == {*TABLES, "alembic_version"}
    for name, (rls, force, policies, has_user) in by_name.items():
        if name == "alembic_version":
            continue
        assert has_user, name
        assert rls, f"{name}: row-level security not enabled"
        assert force, f"{name}: row-level security not forced"
        # The owner policy everywhere; the usage ledger also the analytics read policy.
        assert policies == (2 if name == "usage_tracking" else 1), name


async def test_policies_are_the_owner_ones_plus_a_read_only_analytics_one(
    pg_engine: AsyncEngine,
) -> None:
    async with pg_engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT tablename, policyname, permissive, roles::text[], cmd"
                    " FROM pg_policies WHERE schemaname = :schema"
                ),
                {"schema": SCHEMA},
            )
        ).all()
    assert sorted(tuple(row) for row in rows) == sorted(
        [
            *((t, f"{t}_owner", "PERMISSIVE", ["public"], "ALL") for t in TABLES),
            (
                "usage_tracking",
                "usage_tracking_analytics",
                "PERMISSIVE",
                [ANALYTICS_ROLE],
                "SELECT",
            ),
        ]
    )


@pytest.mark.parametrize("role", [APP_ROLE, ANALYTICS_ROLE])
async def test_service_roles_are_unprivileged(pg_engine: AsyncEngine, role: str) -> None:
    async with pg_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolcanlogin, rolinherit FROM pg_roles"
                    " WHERE rolname = :role"
                ),
                {"role": role},
            )
        ).one()
    assert tuple(row) == (False, False, False, False)


async def test_the_analytics_policy_does_not_widen_the_service_role(
    pg_engine: AsyncEngine,
) -> None:
    # chatcore_app is no member of chatcore_analytics: its usage stays per user.
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alice_ids = await seed(pg_engine, alice)
    await seed(pg_engine, bob)
    async with as_service(pg_engine, alice) as conn:
        rows = (await conn.execute(text(f"SELECT id, user_id FROM {SCHEMA}.usage_tracking"))).all()
    assert {row[0] for row in rows} == alice_ids["usage_tracking"]
    async with pg_engine.connect() as conn:
        member = await conn.execute(
            text("SELECT pg_has_role(:app, :analytics, 'MEMBER')"),
            {"app": APP_ROLE, "analytics": ANALYTICS_ROLE},
        )
        assert member.scalar() is False


async def test_unit_of_work_runs_as_the_service_role_for_one_transaction(
    pg_engine: AsyncEngine,
) -> None:
    user = uuid.uuid4()
    probe = text(
        "SELECT current_user, session_user, current_setting('app.current_user_id', true),"
        " pg_backend_pid()"
    )
    factory = PostgresUnitOfWorkFactory(pg_engine)
    async with factory(user) as uow:
        conn = await uow.connection()
        current, session, setting, pid = (await conn.execute(probe)).one()
        assert (current, setting) == (APP_ROLE, str(user))
        assert session != APP_ROLE
        await uow.commit()
        # The next statement after a commit opens a new transaction, scoped again.
        conn = await uow.connection()
        assert tuple((await conn.execute(probe)).one()) == (APP_ROLE, session, str(user), pid)

    # Back in the pool, the same connection carries no user: it is still the service's
    # role (its own setting, decision 0014), which without a user sees no rows.
    async with pg_engine.connect() as conn:
        current, _, setting, reused_pid = (await conn.execute(probe)).one()
    assert reused_pid == pid  # the pool handed back the connection the unit of work used
    assert current == APP_ROLE
    assert setting in ("", None)


_IN_POOL_PROBE = text(
    "SELECT current_user, session_user, current_setting('app.current_user_id', true)"
)


async def _checked_out_clean(engine: AsyncEngine) -> None:
    """The pooled connection is outside any transaction and carries no user (its role is
    the service's own, decision 0014)."""
    async with asyncio.timeout(10), engine.connect() as conn:
        raw = await conn.get_raw_connection()
        assert raw.driver_connection is not None
        assert not raw.driver_connection.is_in_transaction()
        current, session, setting = (await conn.execute(_IN_POOL_PROBE)).one()
    assert (current, session != APP_ROLE) == (APP_ROLE, True)
    assert setting in ("", None)  # the user is gone with the rollback


async def _one_connection_engine(pg_url: str) -> AsyncEngine:
    # One pooled connection, so the next checkout is the one the unit of work used.
    from adapters.postgres import create_engine  # noqa: PLC0415

    return create_engine(pg_url, SCHEMA, pool_size=1)


async def test_a_unit_of_work_left_by_an_error_returns_its_connection_clean(
    pg_url: str,
) -> None:
    engine = await _one_connection_engine(pg_url)
    try:
        factory = PostgresUnitOfWorkFactory(engine)

        async def failing_use_case() -> None:
            async with factory(uuid.uuid4()) as uow:
                conn = await uow.connection()
                await conn.execute(text("SELECT 1"))
                raise LookupError("the use case failed")

        with pytest.raises(LookupError):
            await failing_use_case()
        await _checked_out_clean(engine)
    finally:
        await engine.dispose()


async def test_a_unit_of_work_cancelled_mid_statement_never_pools_a_transaction(
    pg_url: str,
) -> None:
    engine = await _one_connection_engine(pg_url)
    try:
        factory = PostgresUnitOfWorkFactory(engine)
        started = asyncio.Event()

        async def slow() -> None:
            async with factory(uuid.uuid4()) as uow:
                conn = await uow.connection()
                started.set()
                await conn.execute(text("SELECT pg_sleep(5)"))

        task = asyncio.create_task(slow())
        await started.wait()
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await _checked_out_clean(engine)
    finally:
        await engine.dispose()


# --- one conversation per result: the unique index spans users ------------------------

_INSERT_FOR_RESULT = text(
    f"INSERT INTO {SCHEMA}.conversations (id, user_id, title, result_id)"
    " VALUES (:id, :uid, 'for result', :result)"
    " ON CONFLICT (result_id) WHERE result_id IS NOT NULL DO NOTHING RETURNING id, user_id"
)


async def test_on_conflict_do_nothing_against_another_users_row_neither_fails_nor_leaks(
    pg_engine: AsyncEngine,
) -> None:
    # What add_for_result relies on: the index sees Alice's row although row-level
    # security hides it from Bob, so Bob's insert does nothing, silently; he gets no
    # row back and cannot read hers (the False is all he learns: the result is taken).
    await assert_login_role_is_privileged(pg_engine)
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), f"result-{uuid.uuid4()}"
    alices = uuid.uuid4()
    async with as_service(pg_engine, alice) as conn:
        inserted = await conn.execute(
            _INSERT_FOR_RESULT, {"id": alices, "uid": alice, "result": result}
        )
        assert inserted.all() == [(alices, alice)]
        await conn.commit()

    async with as_service(pg_engine, bob) as conn:
        inserted = await conn.execute(
            _INSERT_FOR_RESULT, {"id": uuid.uuid4(), "uid": bob, "result": result}
        )
        assert inserted.all() == []
        found = await conn.execute(
            text(f"SELECT count(*) FROM {SCHEMA}.conversations WHERE result_id = :r"),
            {"r": result},
        )
        assert found.scalar() == 0
        # The transaction is still usable: nothing was raised.
        assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        await conn.commit()

    async with as_service(pg_engine, alice) as conn:
        rows = await conn.execute(
            text(f"SELECT id, user_id FROM {SCHEMA}.conversations WHERE result_id = :r"),
            {"r": result},
        )
        assert rows.all() == [(alices, alice)]


async def test_on_conflict_do_update_against_another_users_row_is_refused(
    pg_engine: AsyncEngine,
) -> None:
    # Why DO NOTHING: DO UPDATE must read the conflicting row, which the policy refuses
    # (and an upsert could never be allowed to touch another user's row anyway).
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), f"result-{uuid.uuid4()}"
    async with as_service(pg_engine, alice) as conn:
        await conn.execute(_INSERT_FOR_RESULT, {"id": uuid.uuid4(), "uid": alice, "result": result})
        await conn.commit()
    with pytest.raises(DBAPIError) as refused:
        async with as_service(pg_engine, bob) as conn:
            await conn.execute(
                text(
                    f"INSERT INTO {SCHEMA}.conversations (id, user_id, title, result_id)"
                    " VALUES (:id, :uid, 'mine', :result)"
                    " ON CONFLICT (result_id) WHERE result_id IS NOT NULL"
                    " DO UPDATE SET title = excluded.title RETURNING id"
                ),
                {"id": uuid.uuid4(), "uid": bob, "result": result},
            )
    assert is_rls_violation(refused.value)


async def test_on_conflict_still_checks_the_new_rows_owner(pg_engine: AsyncEngine) -> None:
    # WITH CHECK comes before the conflict test: a row for another user is refused even
    # when the result is taken (so the answer never depends on someone else's rows).
    alice, bob, result = uuid.uuid4(), uuid.uuid4(), f"result-{uuid.uuid4()}"
    async with as_service(pg_engine, alice) as conn:
        await conn.execute(_INSERT_FOR_RESULT, {"id": uuid.uuid4(), "uid": alice, "result": result})
        await conn.commit()
    for taken in (result, f"result-{uuid.uuid4()}"):
        with pytest.raises(DBAPIError) as refused:
            async with as_service(pg_engine, bob) as conn:
                await conn.execute(
                    _INSERT_FOR_RESULT, {"id": uuid.uuid4(), "uid": alice, "result": taken}
                )
        assert is_rls_violation(refused.value)


async def test_units_of_work_give_their_place_back_however_they_end(pg_url: str) -> None:
    engine = await _one_connection_engine(pg_url)
    try:
        factory = PostgresUnitOfWorkFactory(engine, max_open=1)
        user = uuid.uuid4()

        async def fails() -> None:
            async with factory(user) as uow:
                await (await uow.connection()).execute(text("SELECT 1"))
                raise LookupError("the use case failed")

        with pytest.raises(LookupError):
            await fails()
        # A place that was not given back would make the next one wait for ever.
        async with asyncio.timeout(10), factory(user) as uow:
            await uow.commit()
        async with asyncio.timeout(10), factory(user):
            pass  # never touched the database

        started = asyncio.Event()

        async def slow() -> None:
            async with factory(user) as uow:
                started.set()
                await (await uow.connection()).execute(text("SELECT pg_sleep(5)"))

        task = asyncio.create_task(slow())
        await started.wait()
        waiting = asyncio.create_task(_checked_out_clean_via(factory, user))
        await asyncio.sleep(0.1)
        assert not waiting.done()  # one at a time
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(waiting, 10)
    finally:
        await engine.dispose()


async def _checked_out_clean_via(factory: PostgresUnitOfWorkFactory, user: UUID) -> None:
    async with factory(user) as uow:
        conn = await uow.connection()
        current, _, setting = (await conn.execute(_IN_POOL_PROBE)).one()
    assert current == APP_ROLE
    assert setting == str(user)
