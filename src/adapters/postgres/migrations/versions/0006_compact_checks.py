"""The enumerated-value CHECK constraints written as one array constant.

PostgreSQL reads a table's CHECK constraints from their stored expression trees and
plans them again every time a statement that writes the table starts: four times per
message sent (the question's and the answer's insert and conversation update). Written
``col IN ('a', 'b')`` on a ``varchar`` column, a constraint is stored as an array built
from one cast constant per value, which takes twice as long to read and plan as the
same test written ``col::text = ANY ('{a,b}'::text[])``: one constant. The values, the
names and what is accepted are unchanged.

Adding a constraint checks the existing rows: one scan of each table, while the
migration holds the table's lock (writes wait; on a large ``messages`` table, migrate
at a quiet moment).

Revision ID: 0006
Revises: 0005
Create Date: 2025-01-06 00:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import context, op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, constraint, column, allowed values), as in adapters.postgres.tables.
CHECKS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("conversations", "ck_conversations_status", "status", ("active", "archived", "deleted")),
    (
        "conversations",
        "ck_conversations_context_type",
        "context_type",
        ("general", "assessment", "career_guidance"),
    ),
    ("messages", "ck_messages_sender_type", "sender_type", ("user", "assistant", "system")),
    (
        "messages",
        "ck_messages_status",
        "status",
        ("complete", "streaming", "cancelled", "failed"),
    ),
    (
        "message_reactions",
        "ck_reactions_reaction",
        "reaction",
        ("like", "dislike", "helpful", "not_helpful"),
    ),
)


def _schema() -> str:
    schema = context.config.attributes["schema"]
    assert isinstance(schema, str)
    return schema


def _replace(compact: bool) -> None:
    schema = _schema()
    for table, name, column, values in CHECKS:
        if compact:
            condition = f"{column}::text = ANY ('{{{','.join(values)}}}'::text[])"
        else:
            condition = f"{column} IN ({', '.join(repr(v) for v in values)})"
        target = f'"{schema}"."{table}"'
        op.execute(
            f'ALTER TABLE {target} DROP CONSTRAINT "{name}", '
            f'ADD CONSTRAINT "{name}" CHECK ({condition})'
        )


def upgrade() -> None:
    _replace(compact=True)


def downgrade() -> None:
    _replace(compact=False)
