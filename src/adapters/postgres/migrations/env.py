"""Alembic environment: runs on the connection :func:`adapters.postgres.migrate` hands over.

There is no ``alembic.ini`` and no URL here. The caller has opened a transaction,
taken the migration advisory lock and put the connection and the schema name in
``config.attributes``; the migrations run inside that one transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def _run() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    schema = config.attributes.get("schema")
    if not isinstance(connection, Connection) or not isinstance(schema, str):
        raise RuntimeError(
            "run migrations with adapters.postgres.migrate(), which supplies the connection"
        )
    # The version table lives in the schema, and Alembic creates it before the first
    # migration runs: the schema must exist by then.
    quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
    connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=schema,
        include_schemas=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
_run()
