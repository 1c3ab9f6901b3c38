"""The Alembic migrations build exactly the schema that core/storage/schema.py declares.

A table or column added to schema.py without a migration (or the other way round) would
work in tests that create tables from metadata and break on a real upgraded database.
"""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from core.storage.schema import metadata


def test_upgraded_database_matches_declared_schema(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, metadata)
        tables = set(inspect(conn).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert diff == [], f"schema.py and the migrations differ: {diff}"
