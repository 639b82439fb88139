"""Storage: one schema for SQLite and PostgreSQL, versioned by Alembic migrations."""

from agenitry.gateway.store.database import Database
from agenitry.gateway.store.schema import metadata

__all__ = ["Database", "metadata"]
