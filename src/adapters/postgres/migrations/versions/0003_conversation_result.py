"""At most one conversation per assessment result.

conversations gains ``result_id`` (the assessment result an assessment conversation
was made for, NULL for the others) and a partial unique index on it. The index, not a
read-then-write, decides who creates the conversation of a result: the repository's
``INSERT ... ON CONFLICT (result_id) WHERE result_id IS NOT NULL DO NOTHING``. It spans
every user's rows (an index ignores row-level security), deleted conversations included.

Existing rows keep ``result_id`` NULL (their ``context_data`` may name a result, but
older duplicates would break the index; they stay as they are).

Revision ID: 0003
Revises: 0002
Create Date: 2025-01-03 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen names (see 0001): a migration must not change meaning with the application code.
TABLE = "conversations"
COLUMN = "result_id"
INDEX = "uq_conversations_result"


def _schema() -> str:
    schema = context.config.attributes["schema"]
    assert isinstance(schema, str)
    return schema


def upgrade() -> None:
    schema = _schema()
    # Nullable without a default: a catalog-only change, no table rewrite.
    op.add_column(TABLE, sa.Column(COLUMN, sa.Text(), nullable=True), schema=schema)
    # Every row has NULL here, which the partial index leaves out: building it reads the
    # table once and indexes nothing. (Not CONCURRENTLY: migrations run in one transaction.)
    op.create_index(
        INDEX,
        TABLE,
        [COLUMN],
        unique=True,
        schema=schema,
        postgresql_where=sa.text(f"{COLUMN} IS NOT NULL"),
    )


def downgrade() -> None:
    schema = _schema()
    op.drop_index(INDEX, TABLE, schema=schema)
    op.drop_column(TABLE, COLUMN, schema=schema)
