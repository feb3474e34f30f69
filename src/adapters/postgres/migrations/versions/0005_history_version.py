"""``conversations.history_version``: a counter of changes to a conversation's messages.

Every statement of the service that inserts or updates messages adds one to their
conversation's counter, in the same statement (decision 0015). A service process that
keeps a conversation's newest messages in memory compares the counter to the one it
kept them at: equal, nothing changed, and the messages need not be read again.
Existing rows start at 0, which is as good as any start: only changes count.

Revision ID: 0005
Revises: 0004
Create Date: 2025-01-05 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "conversations"
COLUMN = "history_version"


def _schema() -> str:
    schema = context.config.attributes["schema"]
    assert isinstance(schema, str)
    return schema


def upgrade() -> None:
    # A constant default: PostgreSQL 11+ adds the column without rewriting the table.
    op.add_column(
        TABLE,
        sa.Column(COLUMN, sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        schema=_schema(),
    )


def downgrade() -> None:
    op.drop_column(TABLE, COLUMN, schema=_schema())
