"""Applying the Alembic migrations, safely from several processes at once."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from adapters.postgres.database import to_async_url
from adapters.postgres.tables import DEFAULT_SCHEMA

__all__ = [
    "alembic_config",
    "downgrade",
    "migrate",
    "migration_lock_key",
    "missing_migrations",
    "run_migrations",
]

_SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
# Alembic keeps its running context in module globals (``alembic.context``,
# ``alembic.op``), so two migrations interleaving in one process, on one event loop or
# in two threads, would trample each other. Processes are serialized by the advisory
# lock; within a process, this lock does it.
_IN_PROCESS = threading.Lock()


def migration_lock_key(schema: str) -> int:
    """The advisory-lock key that serializes migrations of ``schema`` within a database.

    Derived from a hash rather than ``hashtext()`` so that it never changes with the
    server version; advisory locks are per database, so databases do not wait on each other.
    """
    digest = hashlib.sha256(f"chatcore.migrate:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def alembic_config(schema: str = DEFAULT_SCHEMA) -> Config:
    """An Alembic configuration built in code (no ``alembic.ini``) for ``schema``."""
    config = Config()
    # ConfigParser interpolates '%': a path containing one must be escaped.
    config.set_main_option("script_location", str(_SCRIPT_LOCATION).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["schema"] = schema
    return config


def _run(connection: Connection, schema: str, revision: str, up: bool) -> None:
    # A transaction-level lock: released by the commit (or rollback) that ends the
    # migration, even if this process dies, so a crashed replica never blocks the others.
    connection.execute(
        text("SELECT pg_advisory_xact_lock(:key)"), {"key": migration_lock_key(schema)}
    )
    config = alembic_config(schema)
    config.attributes["connection"] = connection
    if up:
        command.upgrade(config, revision)
    else:
        command.downgrade(config, revision)


async def _migrate(url: str, schema: str, revision: str, up: bool) -> None:
    # Polling rather than blocking: the lock may be held by another event loop's task,
    # and a cancelled waiter must not end up owning it.
    while not _IN_PROCESS.acquire(blocking=False):  # noqa: ASYNC110 - an Event cannot span loops
        await asyncio.sleep(0.02)
    try:
        engine = create_async_engine(to_async_url(url), poolclass=NullPool)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(_run, schema, revision, up)
        finally:
            await engine.dispose()
    finally:
        _IN_PROCESS.release()


async def migrate(url: str, schema: str = DEFAULT_SCHEMA, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (the newest by default), in one transaction.

    Safe to call from several replicas at once: an advisory lock serializes them and
    the later ones find nothing left to do.
    """
    await _migrate(url, schema, revision, up=True)


async def downgrade(url: str, revision: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Take the database at ``url`` back to ``revision`` (``"base"``: nothing), in one transaction.

    For operators rolling a release back; serialized with :func:`migrate` by the same locks.
    Cluster-wide roles stay, they may serve other databases.
    """
    await _migrate(url, schema, revision, up=False)


def run_migrations(url: str, schema: str = DEFAULT_SCHEMA) -> None:
    """Synchronous :func:`migrate`, for the command line."""
    asyncio.run(migrate(url, schema))


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _missing(connection: Connection, schema: str) -> tuple[str | None, list[str]]:
    context = MigrationContext.configure(connection, opts={"version_table_schema": schema})
    current = context.get_current_revision()
    script = ScriptDirectory.from_config(alembic_config(schema))
    if current is not None and not _known(script, current):
        # Migrated by a newer release (a rolling upgrade): its changes are additive.
        return current, []
    wanted = [r.revision for r in script.iterate_revisions("head", current or "base")]
    return current, list(reversed(wanted))


async def missing_migrations(
    url: str, schema: str = DEFAULT_SCHEMA
) -> tuple[str | None, list[str]]:
    """The database's revision of ``schema`` (None: never migrated) and the revisions
    this release has that it lacks, oldest first (empty: up to date, or migrated by a
    newer release). Reads only; raises what the driver raises when the database is out
    of reach."""
    engine = create_async_engine(to_async_url(url), poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_missing, schema)
    finally:
        await engine.dispose()
