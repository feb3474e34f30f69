"""The tables, as SQLAlchemy Core metadata.

Tables carry no schema (``schema=None``): the configured schema (``DB_SCHEMA``,
default ``chat``) is applied at execution time with
``schema_translate_map={None: schema}``, so one compiled statement serves any
schema. The DDL itself lives in the Alembic migrations; this module mirrors it for
queries (and a test checks that the two agree).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

__all__ = [
    "ANALYTICS_ROLE",
    "APP_ROLE",
    "DEFAULT_SCHEMA",
    "USER_SETTING",
    "conversations",
    "message_reactions",
    "messages",
    "metadata",
    "usage_tracking",
]

DEFAULT_SCHEMA = "chat"
# The unprivileged role the service's connections run as (set when each one starts,
# decision 0014), so that row-level security applies even when the login role is a
# superuser or the owner.
APP_ROLE = "chatcore_app"
# The read-only role of service-wide usage figures (admin analytics, the paid-model
# budget): SELECT on usage_tracking only, every user's rows, nothing else.
ANALYTICS_ROLE = "chatcore_analytics"
# The per-transaction setting the row-level security policies read.
USER_SETTING = "app.current_user_id"

metadata = MetaData()

_EMPTY_JSON = text("'{}'::jsonb")

conversations = Table(
    "conversations",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("user_id", Uuid(), nullable=False),
    Column("title", String(255), nullable=False),
    Column("context_type", String(50), nullable=False, server_default="general"),
    Column("context_data", JSONB(), nullable=False, server_default=_EMPTY_JSON),
    Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
    Column("status", String(20), nullable=False, server_default="active"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # 0003: the assessment result an assessment conversation was made for.
    Column("result_id", Text(), nullable=True),
    # 0005: one more at every change to the conversation's messages (decision 0015).
    Column("history_version", BigInteger(), nullable=False, server_default=text("0")),
    CheckConstraint("status IN ('active', 'archived', 'deleted')", name="ck_conversations_status"),
    CheckConstraint(
        "context_type IN ('general', 'assessment', 'career_guidance')",
        name="ck_conversations_context_type",
    ),
    # Target of the (conversation_id, user_id) foreign keys below: a message or a usage
    # row can only belong to a conversation of the same user.
    UniqueConstraint("id", "user_id", name="uq_conversations_id_user"),
    Index(
        "ix_conversations_user_status_updated",
        "user_id",
        "status",
        text("updated_at DESC"),
        text("id DESC"),
    ),
    # 0003: at most one conversation per result, whoever's it is and deleted or not. The
    # arbiter of INSERT ... ON CONFLICT (result_id) WHERE result_id IS NOT NULL.
    Index(
        "uq_conversations_result",
        "result_id",
        unique=True,
        postgresql_where=text("result_id IS NOT NULL"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("conversation_id", Uuid(), nullable=False),
    Column("user_id", Uuid(), nullable=False),
    Column("sender_type", String(20), nullable=False),
    Column("content", Text(), nullable=False),
    Column(
        "parent_message_id",
        Uuid(),
        ForeignKey("messages.id", ondelete="SET NULL", name="fk_messages_parent"),
        nullable=True,
    ),
    Column("status", String(20), nullable=False, server_default="complete"),
    Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["conversation_id", "user_id"],
        ["conversations.id", "conversations.user_id"],
        ondelete="CASCADE",
        name="fk_messages_conversation",
    ),
    CheckConstraint(
        "sender_type IN ('user', 'assistant', 'system')", name="ck_messages_sender_type"
    ),
    CheckConstraint(
        "status IN ('complete', 'streaming', 'cancelled', 'failed')", name="ck_messages_status"
    ),
    Index("ix_messages_conversation_created", "conversation_id", "created_at", "id"),
    Index("ix_messages_parent", "parent_message_id"),
)

usage_tracking = Table(
    "usage_tracking",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("user_id", Uuid(), nullable=False),
    Column("conversation_id", Uuid(), nullable=True),
    Column(
        "message_id",
        Uuid(),
        ForeignKey("messages.id", ondelete="CASCADE", name="fk_usage_message"),
        nullable=True,
    ),
    Column("model_used", String(200), nullable=False),
    Column("prompt_tokens", Integer(), nullable=True),
    Column("completion_tokens", Integer(), nullable=True),
    Column("total_tokens", Integer(), nullable=True),
    # asdecimal=False: the domain keeps cost as a float; the column stays exact numeric.
    Column("cost_credits", Numeric(14, 8, asdecimal=False), nullable=False, server_default="0"),
    Column("is_free_model", Boolean(), nullable=False, server_default=text("true")),
    Column("processing_time_ms", Integer(), nullable=True),
    Column("metadata", JSONB(), nullable=False, server_default=_EMPTY_JSON),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    # 0002: the fallback ledger.
    Column("time_to_first_token_ms", Integer(), nullable=True),
    # Every rung of the model chain tried or skipped, in order: a JSON list of strings.
    Column("attempts", JSONB(), nullable=False, server_default=text("'[]'::jsonb")),
    Column("fallback_used", Boolean(), nullable=False, server_default=text("false")),
    ForeignKeyConstraint(
        ["conversation_id", "user_id"],
        ["conversations.id", "conversations.user_id"],
        ondelete="CASCADE",
        name="fk_usage_conversation",
    ),
    Index("ix_usage_user_created", "user_id", "created_at"),
    Index("ix_usage_created", "created_at"),
    Index("ix_usage_message", "message_id"),
    # 0002: a conversation's usage (and the cascade when a conversation is deleted).
    Index("ix_usage_user_conversation_created", "user_id", "conversation_id", "created_at"),
    # 0002: the paid-model budget, an index-only scan over the few paid rows (user_id for
    # the row-level security filter).
    Index(
        "ix_usage_paid_created",
        "created_at",
        postgresql_include=["cost_credits", "user_id"],
        postgresql_where=text("NOT is_free_model"),
    ),
)

# 0004: a student's reactions to answers, one per kind and message.
message_reactions = Table(
    "message_reactions",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column(
        "message_id",
        Uuid(),
        ForeignKey("messages.id", ondelete="CASCADE", name="fk_reactions_message"),
        nullable=False,
    ),
    Column("conversation_id", Uuid(), nullable=False),
    Column("user_id", Uuid(), nullable=False),
    Column("reaction", String(20), nullable=False),
    Column("feedback", Text(), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=text("now()")),
    ForeignKeyConstraint(
        ["conversation_id", "user_id"],
        ["conversations.id", "conversations.user_id"],
        ondelete="CASCADE",
        name="fk_reactions_conversation",
    ),
    CheckConstraint(
        "reaction IN ('like', 'dislike', 'helpful', 'not_helpful')", name="ck_reactions_reaction"
    ),
    # The arbiter of the upsert, and the reactions of one message in one index range.
    UniqueConstraint("message_id", "user_id", "reaction", name="uq_reactions_message_user_kind"),
)
