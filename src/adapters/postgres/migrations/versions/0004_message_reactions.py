"""A student's reactions to answers: ``message_reactions``, with row-level security.

One row per (message, user, reaction); ``like``/``dislike`` and ``helpful``/
``not_helpful`` are each a choice of one, which the service keeps. The table is owned
by its user like the others: enabled and forced row-level security keyed on
``app.current_user_id``, read and written under the service's role. Rows go with their
message or conversation (ON DELETE CASCADE).

Revision ID: 0004
Revises: 0003
Create Date: 2025-01-04 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen names (see 0001): a migration must not change meaning with the application code.
APP_ROLE = "chatcore_app"
USER_SETTING = "app.current_user_id"
TABLE = "message_reactions"


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
    op.create_table(
        TABLE,
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("conversation_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("reaction", sa.String(20), nullable=False),
        sa.Column("feedback", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.CheckConstraint(
            "reaction IN ('like', 'dislike', 'helpful', 'not_helpful')",
            name="ck_reactions_reaction",
        ),
        sa.UniqueConstraint(
            "message_id", "user_id", "reaction", name="uq_reactions_message_user_kind"
        ),
        schema=schema,
    )
    op.create_foreign_key(
        "fk_reactions_message",
        TABLE,
        "messages",
        ["message_id"],
        ["id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="CASCADE",
    )
    # (conversation_id, user_id): a reaction can only belong to a conversation of its
    # own user (foreign-key checks bypass row security).
    op.create_foreign_key(
        "fk_reactions_conversation",
        TABLE,
        "conversations",
        ["conversation_id", "user_id"],
        ["id", "user_id"],
        source_schema=schema,
        referent_schema=schema,
        ondelete="CASCADE",
    )
    s = _quote(schema)
    t = f"{s}.{_quote(TABLE)}"
    role = _quote(APP_ROLE)
    current_user = f"NULLIF(current_setting({_literal(USER_SETTING)}, true), '')::uuid"
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {t} TO {role}")
    op.execute(f"ALTER TABLE {t} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {t} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY {_quote(TABLE + '_owner')} ON {t} "
        f"USING (user_id = {current_user}) WITH CHECK (user_id = {current_user})"
    )


def downgrade() -> None:
    op.drop_table(TABLE, schema=_schema())
