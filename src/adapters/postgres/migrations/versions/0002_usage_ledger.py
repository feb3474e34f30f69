"""Usage ledger for the model fallback chain and analytics; the read-only analytics role.

usage_tracking gains ``time_to_first_token_ms``, ``attempts`` (a JSON list of the
rungs tried) and ``fallback_used``; two indexes serve a conversation's usage and the
paid-model budget. ``chatcore_analytics`` may read every user's usage rows (and no
other table), for admin figures and the budget, which run under ``SET LOCAL ROLE``.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the adapter's constants (see 0001).
ANALYTICS_ROLE = "chatcore_analytics"
TABLE = "usage_tracking"
POLICY = "usage_tracking_analytics"

# The role helpers of 0001, which is frozen too: creation tolerant of a concurrent
# creator in another database, membership for a non-superuser login role.
_initial = importlib.import_module("adapters.postgres.migrations.versions.0001_initial")
create_role_sql = _initial.create_role_sql
grant_role_sql = _initial.grant_role_sql


def _schema() -> str:
    schema = context.config.attributes["schema"]
    assert isinstance(schema, str)
    return schema


def _quote(name: str) -> str:
    return op.get_bind().dialect.identifier_preparer.quote_identifier(name)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def upgrade() -> None:
    schema = _schema()
    # Constant defaults: PostgreSQL stores them in the catalog, no table rewrite.
    op.add_column(
        TABLE, sa.Column("time_to_first_token_ms", sa.Integer(), nullable=True), schema=schema
    )
    op.add_column(
        TABLE,
        sa.Column("attempts", JSONB(), nullable=False, server_default=sa.text("'[]'::jsonb")),
        schema=schema,
    )
    op.add_column(
        TABLE,
        sa.Column("fallback_used", sa.Boolean(), nullable=False, server_default=sa.false()),
        schema=schema,
    )
    # A conversation's usage (GET /conversations/{id}/usage) and the ON DELETE CASCADE
    # from conversations: straight to the conversation's rows, where (user_id,
    # created_at) reads every row of the user and filters.
    op.create_index(
        "ix_usage_user_conversation_created",
        TABLE,
        ["user_id", "conversation_id", "created_at"],
        schema=schema,
    )
    # Today's paid spend, read before every paid call: the few paid rows only, as an
    # index-only scan. user_id is included because the row-level security filter reads it
    # (the owner policy's "user_id = ..." OR the analytics policy's test).
    op.create_index(
        "ix_usage_paid_created",
        TABLE,
        ["created_at"],
        schema=schema,
        postgresql_include=["cost_credits", "user_id"],
        postgresql_where=sa.text("NOT is_free_model"),
    )

    s = _quote(schema)
    t = f"{s}.{_quote(TABLE)}"
    role = _quote(ANALYTICS_ROLE)
    op.execute(create_role_sql(ANALYTICS_ROLE))
    op.execute(grant_role_sql(ANALYTICS_ROLE))
    op.execute(f"GRANT USAGE ON SCHEMA {s} TO {role}")
    op.execute(f"GRANT SELECT ON {t} TO {role}")
    # Every row, but only to a transaction that switched to the role: a login role that
    # is a member of it (and so would inherit a policy "TO chatcore_analytics") still
    # sees no usage rows when it forgets the switch.
    op.execute(
        f"CREATE POLICY {_quote(POLICY)} ON {t} AS PERMISSIVE FOR SELECT TO {role}"
        f" USING (current_user = {_literal(ANALYTICS_ROLE)})"
    )


def downgrade() -> None:
    schema = _schema()
    s = _quote(schema)
    t = f"{s}.{_quote(TABLE)}"
    role = _quote(ANALYTICS_ROLE)
    op.execute(f"DROP POLICY IF EXISTS {_quote(POLICY)} ON {t}")
    # The role is cluster-wide and may serve other databases: it stays, without rights here.
    op.execute(f"REVOKE SELECT ON {t} FROM {role}")  # noqa: S608 - quoted identifiers
    op.execute(f"REVOKE USAGE ON SCHEMA {s} FROM {role}")
    op.drop_index("ix_usage_paid_created", TABLE, schema=schema)
    op.drop_index("ix_usage_user_conversation_created", TABLE, schema=schema)
    op.drop_column(TABLE, "fallback_used", schema=schema)
    op.drop_column(TABLE, "attempts", schema=schema)
    op.drop_column(TABLE, "time_to_first_token_ms", schema=schema)
