"""Migration scripts; Alembic loads them by path (this file only makes them package data)."""
