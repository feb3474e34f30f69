"""Migrations: idempotent, safe to run concurrently, schema as a parameter."""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres import (
    ANALYTICS_ROLE,
    APP_ROLE,
    PostgresSystemUsageReader,
    PostgresUnitOfWorkFactory,
    create_engine,
    downgrade,
    metadata,
    migrate,
    missing_migrations,
    to_async_url,
)
from chatcore.domain import Conversation, Message, SenderType, Usage, UsageRecord, new_id
from chatcore.pagination import PageRequest
from chatcore.ports import ConversationFilter
from chatcore.usage import UsageWindow

pytestmark = pytest.mark.postgres

HEAD = "0005"
# The unique index of 0003, as pg_indexes shows it.
RESULT_INDEX = (
    "CREATE UNIQUE INDEX uq_conversations_result ON {schema}.conversations USING btree"
    " (result_id) WHERE (result_id IS NOT NULL)"
)

CreateDb = Callable[[], Awaitable[str]]

# The catalog facts a migration decides: tables, columns, indexes, constraints, policies.
_SNAPSHOT = """
SELECT 'column', c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = :schema
UNION ALL
SELECT 'constraint', conname || ' ' || pg_get_constraintdef(co.oid)
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = :schema
UNION ALL
SELECT 'policy', concat_ws(' ', tablename, policyname, permissive, cmd, roles::text, qual,
                           with_check)
FROM pg_policies WHERE schemaname = :schema
UNION ALL
SELECT 'grant', grantee || ' ' || table_name || ' ' || privilege_type
FROM information_schema.role_table_grants
WHERE table_schema = :schema AND grantee IN ('chatcore_app', 'chatcore_analytics')
UNION ALL
SELECT 'schema usage', r.rolname FROM pg_roles r, pg_namespace n
WHERE n.nspname = :schema AND r.rolname IN ('chatcore_app', 'chatcore_analytics')
      AND has_schema_privilege(r.oid, n.oid, 'USAGE')
UNION ALL
SELECT 'rls', c.relname || ' ' || c.relrowsecurity || ' ' || c.relforcerowsecurity
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relkind = 'r'
UNION ALL
SELECT 'version', version_num FROM {version_table}
"""


async def snapshot(url: str, schema: str) -> list[tuple[str, str]]:
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            version_table = (
                conn.dialect.identifier_preparer.quote_identifier(schema) + ".alembic_version"
            )
            sql = _SNAPSHOT.format(version_table=version_table)
            rows = await conn.execute(text(sql), {"schema": schema})
            return sorted((kind, fact) for kind, fact in rows)
    finally:
        await engine.dispose()


async def round_trip(url: str, schema: str) -> None:
    """The service works on the migrated schema (head): write and read back one conversation.

    Also an answer's usage record (0002), read back by the user and by the service-wide
    reader, and the conversation's result (0003): taken for everyone, found by its user.
    """
    engine = create_engine(url, schema, pool_size=2)
    try:
        factory = PostgresUnitOfWorkFactory(engine)
        user, now = uuid.uuid4(), datetime.now(UTC)
        result_id = f"result-{uuid.uuid4()}"
        conversation = Conversation(
            id=new_id(now),
            user_id=user,
            title="hello",
            created_at=now,
            updated_at=now,
            result_id=result_id,
        )
        answer = Message(
            id=new_id(now),
            conversation_id=conversation.id,
            user_id=user,
            sender_type=SenderType.ASSISTANT,
            content="hi",
            created_at=now,
        )
        record = UsageRecord(
            id=new_id(now),
            user_id=user,
            conversation_id=conversation.id,
            message_id=answer.id,
            model_used="openai/gpt-4o-mini",
            usage=Usage(prompt_tokens=3, completion_tokens=4, cost=0.5, is_free_model=False),
            processing_time_ms=5,
            created_at=now,
            time_to_first_token_ms=2,
            attempts=("a: failed (timeout)", "openai/gpt-4o-mini: answered"),
            fell_back=True,
        )
        async with factory(user) as uow:
            assert await uow.conversations.add_for_result(conversation)
            await uow.messages.add(answer)
            await uow.usage.add(record)
            await uow.commit()
        async with factory(user) as uow:
            assert await uow.conversations.get(conversation.id) == conversation
            assert await uow.conversations.get_by_result(result_id) == conversation
            listed = await uow.conversations.list(ConversationFilter(), PageRequest(limit=5))
            assert listed == [conversation]
            assert await uow.usage.for_messages([answer.id]) == {answer.id: record}
        other = uuid.uuid4()
        async with factory(other) as uow:
            assert await uow.conversations.get(conversation.id) is None
            assert await uow.conversations.get_by_result(result_id) is None
            taken = Conversation(
                id=new_id(now),
                user_id=other,
                title="mine?",
                created_at=now,
                updated_at=now,
                result_id=result_id,
            )
            assert await uow.conversations.add_for_result(taken) is False
        reader = PostgresSystemUsageReader(engine)
        assert await reader.paid_cost_since(now) == 0.5
        totals = await reader.totals(UsageWindow(start=now))
        assert (totals.requests, totals.fallback_requests) == (1, 1)
    finally:
        await engine.dispose()


async def raw_round_trip(url: str, schema: str) -> None:
    """Before 0003 (the repositories read result_id): a conversation in raw SQL, run as the
    service role for one user, visible to that user only."""
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    table = '"' + schema.replace('"', '""') + '".conversations'
    user, conversation = uuid.uuid4(), uuid.uuid4()
    scope = text(
        f"SELECT set_config('role', '{APP_ROLE}', true),"
        " set_config('app.current_user_id', :u, true)"
    )
    try:
        async with engine.begin() as conn:
            await conn.execute(scope, {"u": str(user)})
            await conn.execute(
                text(f"INSERT INTO {table} (id, user_id, title) VALUES (:c, :u, 'raw')"),
                {"c": conversation, "u": user},
            )
        for who, expected in ((user, ["raw"]), (uuid.uuid4(), [])):
            async with engine.begin() as conn:
                await conn.execute(scope, {"u": str(who)})
                titles = await conn.execute(
                    text(f"SELECT title FROM {table} WHERE id = :c"),
                    {"c": conversation},
                )
                assert titles.scalars().all() == expected
    finally:
        await engine.dispose()


async def test_migrating_twice_changes_nothing(pg_url: str) -> None:
    before = await snapshot(pg_url, "chat")
    assert ("version", HEAD) in before
    assert ("index", RESULT_INDEX.format(schema="chat")) in before
    await migrate(pg_url, "chat")
    assert await snapshot(pg_url, "chat") == before


async def migrate_in_subprocess(url: str, schema: str = "chat") -> None:
    """Migrate from another Python process, as another replica would."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import sys; from adapters.postgres import run_migrations;"
        " run_migrations(sys.argv[1], sys.argv[2])",
        url,
        schema,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, output.decode(errors="replace")


async def test_concurrent_migrations_of_one_database(create_db: CreateDb) -> None:
    # Two processes (the advisory lock) and two tasks of this one (the in-process lock).
    url = await create_db()
    await asyncio.gather(
        migrate_in_subprocess(url), migrate_in_subprocess(url), migrate(url), migrate(url)
    )
    facts = await snapshot(url, "chat")
    assert ("version", HEAD) in facts
    await round_trip(url, "chat")


async def test_concurrent_migrations_of_two_databases(create_db: CreateDb) -> None:
    # Advisory locks are per database: these really run at the same time, and race on
    # the cluster-wide role (see also the deterministic race below).
    first, second = await asyncio.gather(create_db(), create_db())
    await asyncio.gather(
        migrate_in_subprocess(first),
        migrate_in_subprocess(second),
        migrate(first, "chat_other"),
        migrate(second, "chat_other"),
    )
    assert await snapshot(first, "chat") == await snapshot(second, "chat")
    await asyncio.gather(round_trip(first, "chat"), round_trip(second, "chat_other"))


async def _wait_until_blocked(conn: AsyncConnection, pid: int) -> None:
    for _ in range(200):
        waiting = await conn.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        )
        if waiting.scalar() == "Lock":
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second creator never waited on the first")


async def test_role_creation_tolerates_a_concurrent_creator(
    login_engine: AsyncEngine, create_db: CreateDb
) -> None:
    # The cluster-wide role race, made deterministic with a throwaway role: the first
    # creator's transaction stays open while the second one (in another database, where
    # the migration advisory lock does not reach) blocks on pg_authid's unique index;
    # when the first commits, the second gets unique_violation and must shrug it off.
    initial = importlib.import_module("adapters.postgres.migrations.versions.0001_initial")
    role = f"chatcore_race_{uuid.uuid4().hex[:10]}"
    create_role: str = initial.create_role_sql(role)
    other = create_async_engine(to_async_url(await create_db()), poolclass=NullPool)
    try:
        async with login_engine.connect() as first, other.connect() as second:
            await first.begin()
            await second.begin()
            await first.execute(text(create_role))
            second_pid = (await second.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            blocked = asyncio.ensure_future(second.execute(text(create_role)))
            async with login_engine.connect() as watcher:
                await _wait_until_blocked(watcher, second_pid)
            await first.commit()
            await asyncio.wait_for(blocked, timeout=10)
            await second.commit()
        async with login_engine.connect() as conn:
            count = await conn.execute(
                text("SELECT count(*) FROM pg_roles WHERE rolname = :role"), {"role": role}
            )
            assert count.scalar() == 1
    finally:
        await other.dispose()
        async with login_engine.connect() as conn:
            await conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
            await conn.commit()


@pytest.mark.parametrize("schema", ["chat_alt", "Chat-Alt"])
async def test_a_non_default_schema(create_db: CreateDb, schema: str) -> None:
    url = await create_db()
    await migrate(url, schema)
    facts = await snapshot(url, schema)
    assert ("version", HEAD) in facts
    assert ("rls", "conversations true true") in facts
    assert (
        "index",
        RESULT_INDEX.format(schema=f'"{schema}"' if "-" in schema else schema),
    ) in facts
    # Nothing leaked into the default schema name.
    assert not await _schema_exists(url, "chat")
    await round_trip(url, schema)
    # A second schema in the same database migrates independently.
    await migrate(url, "chat")
    await round_trip(url, "chat")
    assert [f for f in await snapshot(url, schema) if f[0] != "version"] == [
        f for f in facts if f[0] != "version"
    ]


async def _schema_exists(url: str, schema: str) -> bool:
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = :s)"), {"s": schema}
            )
            return bool(found.scalar())
    finally:
        await engine.dispose()


async def test_query_tables_match_the_migration(login_engine: AsyncEngine) -> None:
    # tables.py (used by the queries) and the migration (which made the database) are
    # written separately; Alembic's autogenerate comparison says whether they agree.
    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "version_table_schema": "chat",
            },
        )
        return [d for d in compare_metadata(context, metadata) if "alembic_version" not in str(d)]

    async with login_engine.connect() as conn:
        # The metadata has no schema: compare it with the search path's first schema.
        await conn.execute(text("SET LOCAL search_path TO chat"))
        assert await conn.run_sync(compare) == []


async def _grants(engine: AsyncEngine, role: str) -> dict[str, str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type)"
                " FROM information_schema.role_table_grants"
                " WHERE grantee = :role AND table_schema = 'chat' GROUP BY table_name"
            ),
            {"role": role},
        )
        return dict(rows.all())


async def test_service_role_is_granted_what_it_needs_only(login_engine: AsyncEngine) -> None:
    assert await _grants(login_engine, APP_ROLE) == dict.fromkeys(
        ("conversations", "messages", "usage_tracking", "message_reactions"),
        "DELETE,INSERT,SELECT,UPDATE",
    )


async def test_analytics_role_may_only_read_usage(login_engine: AsyncEngine) -> None:
    assert await _grants(login_engine, ANALYTICS_ROLE) == {"usage_tracking": "SELECT"}
    async with login_engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT rolsuper, rolbypassrls, rolcanlogin, rolinherit,"
                    " has_schema_privilege(oid, 'chat', 'USAGE'),"
                    " has_schema_privilege(oid, 'chat', 'CREATE')"
                    " FROM pg_roles WHERE rolname = :role"
                ),
                {"role": ANALYTICS_ROLE},
            )
        ).one()
    assert tuple(row) == (False, False, False, False, True, False)


async def test_downgrade_to_0001_and_upgrade_again(create_db: CreateDb, pg_url: str) -> None:
    head = await snapshot(pg_url, "chat")
    url = await create_db()
    await migrate(url, "chat", revision="0001")
    initial = await snapshot(url, "chat")
    assert ("version", "0001") in initial
    await raw_round_trip(url, "chat")

    # Rows written under 0001 get the new columns' defaults.
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    user, conversation, usage = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO chat.conversations (id, user_id, title) VALUES (:c, :u, 'old');"),
                {"c": conversation, "u": user},
            )
            await conn.execute(
                text(
                    "INSERT INTO chat.usage_tracking (id, user_id, conversation_id, model_used,"
                    " cost_credits, is_free_model) VALUES (:id, :u, :c, 'old-model', 0.25, false)"
                ),
                {"id": usage, "u": user, "c": conversation},
            )
        await migrate(url, "chat")
        assert await snapshot(url, "chat") == head
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT time_to_first_token_ms, attempts, fallback_used"
                        " FROM chat.usage_tracking WHERE id = :id"
                    ),
                    {"id": usage},
                )
            ).one()
        assert tuple(row) == (None, [], False)
        await round_trip(url, "chat")

        await downgrade(url, "0001", "chat")
        assert await snapshot(url, "chat") == initial
        await raw_round_trip(url, "chat")

        await migrate(url, "chat")
        assert await snapshot(url, "chat") == head
        await round_trip(url, "chat")
        async with engine.connect() as conn:
            count = await conn.execute(
                text("SELECT count(*) FROM chat.usage_tracking WHERE id = :id"), {"id": usage}
            )
            assert count.scalar() == 1  # the data survived the round trip
    finally:
        await engine.dispose()


async def test_downgrade_to_0002_and_upgrade_again(create_db: CreateDb, pg_url: str) -> None:
    head = await snapshot(pg_url, "chat")
    url = await create_db()
    await migrate(url, "chat", revision="0002")
    before = await snapshot(url, "chat")
    assert ("version", "0002") in before
    assert not [fact for fact in before if "result_id" in fact[1]]
    await raw_round_trip(url, "chat")

    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    user, old, new = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    insert = text(
        "INSERT INTO chat.conversations (id, user_id, title, context_type, context_data)"
        " VALUES (:c, :u, :t, 'assessment', CAST(:data AS jsonb))"
    )
    try:
        async with engine.begin() as conn:
            # An assessment conversation of before 0003: its result only in context_data.
            await conn.execute(
                insert, {"c": old, "u": user, "t": "old", "data": '{"result_id": "r-old"}'}
            )
        await migrate(url, "chat")
        assert await snapshot(url, "chat") == head
        async with engine.begin() as conn:
            old_result = await conn.execute(
                text("SELECT result_id FROM chat.conversations WHERE id = :c"), {"c": old}
            )
            assert old_result.scalar_one() is None  # no backfill
            await conn.execute(
                text(
                    "INSERT INTO chat.conversations (id, user_id, title, result_id)"
                    " VALUES (:c, :u, 'new', 'r-new')"
                ),
                {"c": new, "u": user},
            )
            # NULLs stay out of the unique index: any number of conversations lack a result.
            for _ in range(2):
                await conn.execute(
                    text(
                        "INSERT INTO chat.conversations (id, user_id, title) VALUES (:c, :u, 'x')"
                    ),
                    {"c": uuid.uuid4(), "u": user},
                )
        await round_trip(url, "chat")

        await downgrade(url, "0002", "chat")
        assert await snapshot(url, "chat") == before
        await raw_round_trip(url, "chat")

        await migrate(url, "chat")
        assert await snapshot(url, "chat") == head
        await round_trip(url, "chat")
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT id, result_id FROM chat.conversations WHERE id IN (:a, :b)"),
                {"a": old, "b": new},
            )
            # The rows survived; the results did not (the downgrade dropped the column).
            assert dict(rows.all()) == {old: None, new: None}
    finally:
        await engine.dispose()


async def test_a_non_superuser_owner_can_migrate_and_is_held_by_rls(
    pg_engine: AsyncEngine, pg_server_url: str
) -> None:
    # Managed databases give a login that is no superuser but may create roles. The
    # migration must then grant itself the right to SET ROLE to the service role (on
    # PostgreSQL 16 a CREATEROLE user holds only ADMIN on the roles it created, which is
    # simulated here), and FORCE must hold the owner to the policies.
    async with pg_engine.connect() as conn:
        superuser, version = (
            await conn.execute(
                text(
                    "SELECT rolsuper, current_setting('server_version_num')::int"
                    " FROM pg_roles WHERE rolname = session_user"
                )
            )
        ).one()
    if not superuser:
        pytest.skip("needs a superuser login to create the owner role")
    owner, password = f"chatcore_owner_{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    database = f"chatcore_test_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(
        to_async_url(pg_server_url), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    owner_url = (
        make_url(pg_server_url)
        .set(username=owner, password=password, database=database)
        .render_as_string(hide_password=False)
    )
    try:
        async with admin.connect() as conn:
            await conn.execute(
                text(
                    f"CREATE ROLE {owner} LOGIN PASSWORD '{password}'"
                    " NOSUPERUSER CREATEROLE NOBYPASSRLS"
                )
            )
            if version >= 160000:
                for role in (APP_ROLE, ANALYTICS_ROLE):
                    await conn.execute(
                        text(f"GRANT {role} TO {owner} WITH ADMIN TRUE, INHERIT FALSE, SET FALSE")
                    )
            await conn.execute(text(f'CREATE DATABASE "{database}" OWNER {owner}'))
        await migrate(owner_url, "chat")
        await round_trip(owner_url, "chat")

        engine = create_engine(owner_url, pool_size=1)
        try:
            factory = PostgresUnitOfWorkFactory(engine)
            user, now = uuid.uuid4(), datetime.now(UTC)
            async with factory(user) as uow:
                await uow.conversations.add(
                    Conversation(
                        id=new_id(now), user_id=user, title="x", created_at=now, updated_at=now
                    )
                )
                await uow.commit()
            async with engine.connect() as conn:
                # The owner itself, without the role switch and without a user: nothing.
                count = await conn.execute(text("SELECT count(*) FROM chat.conversations"))
                assert count.scalar() == 0
                await conn.execute(
                    text("SELECT set_config('app.current_user_id', :u, true)"), {"u": str(user)}
                )
                count = await conn.execute(text("SELECT count(*) FROM chat.conversations"))
                assert count.scalar() == 1
            async with engine.connect() as conn:
                # The owner is now a member of the analytics role, with its privileges
                # (INHERIT): the analytics policy applies to it too, yet grants nothing
                # without the role switch. round_trip wrote a usage row.
                inherits = await conn.execute(
                    text("SELECT pg_has_role(session_user, :role, 'USAGE')"),
                    {"role": ANALYTICS_ROLE},
                )
                assert inherits.scalar() is True
                count = await conn.execute(text("SELECT count(*) FROM chat.usage_tracking"))
                assert count.scalar() == 0
            reader = PostgresSystemUsageReader(engine)
            assert (await reader.totals(UsageWindow())).requests == 1
        finally:
            await engine.dispose()
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            await conn.execute(text(f"DROP OWNED BY {owner}"))
            await conn.execute(text(f"DROP ROLE IF EXISTS {owner}"))
        await admin.dispose()


async def test_missing_migrations_name_what_a_database_lacks(create_db: CreateDb) -> None:
    url = await create_db()
    assert await missing_migrations(url, "chat") == (None, ["0001", "0002", "0003", "0004", HEAD])
    await migrate(url, "chat", revision="0002")
    assert await missing_migrations(url, "chat") == ("0002", ["0003", "0004", HEAD])
    await migrate(url, "chat")
    assert await missing_migrations(url, "chat") == (HEAD, [])
    # Another schema of the same database is checked on its own.
    assert await missing_migrations(url, "chat_other") == (
        None,
        ["0001", "0002", "0003", "0004", HEAD],
    )
    # A revision this release does not know: a newer release migrated it (rolling
    # upgrade); its changes are additive, so nothing is missing.
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE chat.alembic_version SET version_num = '9999'"))
    finally:
        await engine.dispose()
    assert await missing_migrations(url, "chat") == ("9999", [])


def _serve(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "PYTHONPATH"}}
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", "1"],
        env={
            **env,
            "DATABASE_URL": url,
            "CHATCORE_DATA_DIR": str(tmp_path / "data"),
            "JWT_SECRET": "a-secret-of-sixteen-chars-or-more",
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_serve_refuses_a_database_this_release_has_not_migrated(
    create_db: CreateDb, tmp_path: Path
) -> None:
    # Every request would fail; start-up stops instead, with one line saying what to do.
    url = await create_db()
    await migrate(url, "chat", revision="0003")
    done = await asyncio.to_thread(_serve, url, tmp_path)
    assert done.returncode == 2
    # The log lines before it are JSON; the error is one plain line.
    (line,) = [x for x in done.stderr.splitlines() if x.startswith("chatcore:")]
    assert "DATABASE_URL" in line
    assert "at revision 0003" in line
    assert f"needs revision {HEAD}" in line
    assert "chatcore migrate" in line
    assert '"serving"' not in done.stdout + done.stderr
