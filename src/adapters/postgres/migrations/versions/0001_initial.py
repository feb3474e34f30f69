"""Initial schema: conversations, messages, usage ledger, row-level security.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the adapter's constants: a migration must not change meaning when
# the application code does.
APP_ROLE = "chatcore_app"
USER_SETTING = "app.current_user_id"
TABLES = ("conversations", "messages", "usage_tracking")

_EMPTY_JSON = sa.text("'{}'::jsonb")


def _schema() -> str:
    # The schema is a parameter of the run (DB_SCHEMA), never a literal in a migration.
    schema = context.config.attributes["schema"]
    assert isinstance(schema, str)
    return schema


def _quote(name: str) -> str:
    return op.get_bind().dialect.identifier_preparer.quote_identifier(name)


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def create_role_sql(role: str) -> str:
    """The statement that creates ``role`` unless it exists, tolerating a concurrent creator.

    Roles are cluster-wide: two databases migrating at once (advisory locks are per
    database) both try to create it. The loser blocks on the unique index of
    ``pg_authid`` until the winner commits, then fails with ``unique_violation``, or
    sees the role and fails with ``duplicate_object``; either way the role exists.
    The existence check comes first so that a login role without CREATEROLE can
    migrate a database when an administrator created the role beforehand.
    """
    quoted = '"' + role.replace('"', '""') + '"'
    name = _literal(role)
    # Both interpolations are escaped (identifier and literal), and the role is a constant.
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {name}) THEN
        BEGIN
            CREATE ROLE {quoted} NOLOGIN NOINHERIT NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    -- A role that bypasses row-level security would silently defeat every policy.
    IF EXISTS (
        SELECT FROM pg_catalog.pg_roles
        WHERE rolname = {name} AND (rolsuper OR rolbypassrls)
    ) THEN
        RAISE EXCEPTION 'role % must not be a superuser nor bypass row-level security',
            {name};
    END IF;
END
$$"""  # noqa: S608


def grant_role_sql(role: str) -> str:
    """The statement that lets the login role ``SET ROLE`` to ``role`` (superusers can anyway).

    PostgreSQL 16 separates membership from the right to ``SET ROLE`` (a CREATEROLE
    user gets an ADMIN-only membership in the roles it creates), hence the version test.
    """
    quoted = '"' + role.replace('"', '""') + '"'
    name = _literal(role)
    # Both interpolations are escaped (identifier and literal), and the role is a constant.
    return f"""
DO $$
DECLARE
    can_set boolean;
BEGIN
    IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    IF current_setting('server_version_num')::int >= 160000 THEN
        can_set := pg_has_role(current_user, {name}, 'SET');
    ELSE
        can_set := pg_has_role(current_user, {name}, 'MEMBER');
    END IF;
    IF NOT can_set THEN
        BEGIN
            GRANT {quoted} TO CURRENT_USER;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
END
$$"""  # noqa: S608


def upgrade() -> None:
    schema = _schema()
    s = _quote(schema)
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")

    op.create_table(
        "conversations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(255), nullable=False),
        sa.Column("context_type", sa.String(50), nullable=False, server_default="general"),
        sa.Column("context_data", JSONB(), nullable=False, server_default=_EMPTY_JSON),
        sa.Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
        sa.Column("status", sa.String(20), nullable=False, server_default="active"),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "status IN ('active', 'archived', 'deleted')", name="ck_conversations_status"
        ),
        sa.CheckConstraint(
            "context_type IN ('general', 'assessment', 'career_guidance')",
            name="ck_conversations_context_type",
        ),
        sa.UniqueConstraint("id", "user_id", name="uq_conversations_id_user"),
        schema=schema,
    )
    op.create_index(
        "ix_conversations_user_status_updated",
        "conversations",
        ["user_id", "status", sa.text("updated_at DESC"), sa.text("id DESC")],
        schema=schema,
    )

    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sender_type", sa.String(20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("parent_message_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(20), nullable=False, server_default="complete"),
        sa.Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "sender_type IN ('user', 'assistant', 'system')", name="ck_messages_sender_type"
        ),
        sa.CheckConstraint(
            "status IN ('complete', 'streaming', 'cancelled', 'failed')",
            name="ck_messages_status",
        ),
        schema=schema,
    )
    # (conversation_id, user_id) rather than conversation_id alone: a message can only
    # belong to a conversation of its own user (foreign-key checks bypass row security).
    op.create_foreign_key(
        "fk_messages_conversation",
        "messages",
        "conversations",
        ["conversation_id", "user_id"],
        ["id", "user_id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_messages_parent",
        "messages",
        "messages",
        ["parent_message_id"],
        ["id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="SET NULL",
    )
    op.create_index(
        "ix_messages_conversation_created",
        "messages",
        ["conversation_id", "created_at", "id"],
        schema=schema,
    )
    op.create_index("ix_messages_parent", "messages", ["parent_message_id"], schema=schema)

    op.create_table(
        "usage_tracking",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("model_used", sa.String(200), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("total_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_credits", sa.Numeric(14, 8), nullable=False, server_default="0"),
        sa.Column("is_free_model", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("processing_time_ms", sa.Integer(), nullable=True),
        sa.Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        schema=schema,
    )
    op.create_foreign_key(
        "fk_usage_conversation",
        "usage_tracking",
        "conversations",
        ["conversation_id", "user_id"],
        ["id", "user_id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="CASCADE",
    )
    op.create_foreign_key(
        "fk_usage_message",
        "usage_tracking",
        "messages",
        ["message_id"],
        ["id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="CASCADE",
    )
    op.create_index(
        "ix_usage_user_created", "usage_tracking", ["user_id", "created_at"], schema=schema
    )
    op.create_index("ix_usage_created", "usage_tracking", ["created_at"], schema=schema)
    op.create_index("ix_usage_message", "usage_tracking", ["message_id"], schema=schema)

    # Row-level security. The service runs its statements as APP_ROLE (its connections
    # start as it, decision 0014):
    # superusers and BYPASSRLS roles ignore policies, FORCE makes them apply to the
    # tables' owner too. NULLIF: once a SET LOCAL ends the setting reads '' (not NULL),
    # and ''::uuid would raise instead of matching nothing.
    role = _quote(APP_ROLE)
    op.execute(create_role_sql(APP_ROLE))
    op.execute(grant_role_sql(APP_ROLE))
    op.execute(f"GRANT USAGE ON SCHEMA {s} TO {role}")
    current_user = f"NULLIF(current_setting({_literal(USER_SETTING)}, true), '')::uuid"
    for table in TABLES:
        t = f"{s}.{_quote(table)}"
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {role}")
        op.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY {_quote(table + '_owner')} ON {t} "
            f"USING (user_id = {current_user}) WITH CHECK (user_id = {current_user})"
        )


def downgrade() -> None:
    schema = _schema()
    # The role is cluster-wide and may serve other databases: it stays.
    for table in reversed(TABLES):
        op.drop_table(table, schema=schema)
