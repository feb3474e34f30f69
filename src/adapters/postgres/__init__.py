"""The PostgreSQL adapter: SQLAlchemy Core on asyncpg, Alembic migrations, row-level security.

Typical use::

    await migrate(url, schema)
    engine = create_engine(url, schema)
    uow_factory = PostgresUnitOfWorkFactory(engine)
    async with uow_factory(user_id) as uow:
        ...
        await uow.commit()
"""

from adapters.postgres.analytics import PostgresSystemUsageReader
from adapters.postgres.database import create_engine, max_connections, ping, to_async_url
from adapters.postgres.embedded import start_embedded, stop_embedded
from adapters.postgres.history import HistoryCache
from adapters.postgres.migrate import (
    alembic_config,
    downgrade,
    migrate,
    migration_lock_key,
    missing_migrations,
    run_migrations,
)
from adapters.postgres.repositories import (
    PostgresConversationRepository,
    PostgresMessageRepository,
    PostgresReactionRepository,
    PostgresUsageRepository,
)
from adapters.postgres.tables import (
    ANALYTICS_ROLE,
    APP_ROLE,
    DEFAULT_SCHEMA,
    USER_SETTING,
    metadata,
)
from adapters.postgres.uow import PostgresUnitOfWork, PostgresUnitOfWorkFactory

__all__ = [
    "ANALYTICS_ROLE",
    "APP_ROLE",
    "DEFAULT_SCHEMA",
    "USER_SETTING",
    "HistoryCache",
    "PostgresConversationRepository",
    "PostgresMessageRepository",
    "PostgresReactionRepository",
    "PostgresSystemUsageReader",
    "PostgresUnitOfWork",
    "PostgresUnitOfWorkFactory",
    "PostgresUsageRepository",
    "alembic_config",
    "create_engine",
    "downgrade",
    "max_connections",
    "metadata",
    "migrate",
    "migration_lock_key",
    "missing_migrations",
    "ping",
    "run_migrations",
    "start_embedded",
    "stop_embedded",
    "to_async_url",
]
