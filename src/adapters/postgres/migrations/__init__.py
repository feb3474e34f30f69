"""Alembic migrations of the PostgreSQL adapter, run by :func:`adapters.postgres.migrate`."""
