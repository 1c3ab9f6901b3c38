"""The Alembic migrations build exactly the schema that core/storage/schema.py declares.

A table or column added to schema.py without a migration (or the other way round), or a
column type changed in one and not the other, would work in tests that create tables from
metadata and break on a real upgraded database.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import upgrade
from core.storage.schema import metadata
from core.testing.scenarios import temporary_pg_database


def test_upgraded_database_matches_declared_schema(db):
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": t.in_metadata}
        )
        diff = compare_metadata(ctx, metadata)
        tables = set(inspect(conn).get_table_names())
    assert {t.name for t in metadata.sorted_tables} <= tables
    assert diff == [], f"schema.py and the migrations differ: {diff}"


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database with no tables at all (for upgrades from an older revision)."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'old.db'}")
        yield db
        db.dispose()
        return
    from tests import pg

    pg.session_url(request.config)  # skips (or fails in CI) when PostgreSQL is down
    with temporary_pg_database(pg.PG_ADMIN_URL, prefix="kefu_mig") as url:
        db = Database(url)
        yield db
        db.dispose()


def test_inbox_queues_migration_fills_existing_assignees(empty_db: Database) -> None:
    """Upgrading a database with cases: each assignee row gets its case's procedure and
    next due instant (or the no-deadline mark), and rows of closed cases go."""
    upgrade(empty_db, "c3c0c0c0c0c3")
    due = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with empty_db.write() as conn:
        conn.execute(
            text(
                "INSERT INTO company (id, key, name, timezone, locale, created_at) "
                "VALUES (1, 'acme', 'Acme', 'UTC', 'en', :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        conn.execute(
            text(
                "INSERT INTO procedure_version (id, company_id, procedure, version, digest, "
                "definition, params, created_at)"
                " VALUES (1, 1, 'repair-desk', 1, 'd', '{}', '{}', :now)"
            ),
            {"now": now.replace(tzinfo=None)},
        )
        for cid, status, next_due in ((1, "open", due), (2, "open", None), (3, "closed", None)):
            conn.execute(
                text(
                    "INSERT INTO kefu_case (id, company_id, procedure_version_id, procedure,"
                    " number, status, step, fields, assignees, version, created_by, created_at,"
                    " updated_at, next_due_at)"
                    " VALUES (:id, 1, 1, 'repair-desk', :num, :st, 's', '{}', '[]', 1,"
                    " 'x', :now, :now, :due)"
                ),
                {
                    "id": cid,
                    "num": f"N{cid}",
                    "st": status,
                    "now": now.replace(tzinfo=None),
                    "due": next_due.replace(tzinfo=None) if next_due else None,
                },
            )
            conn.execute(
                text(
                    "INSERT INTO case_assignee (case_id, kind, ref, company_id) "
                    "VALUES (:id, 'role', 'agent', 1)"
                ),
                {"id": cid},
            )
    upgrade(empty_db)
    with empty_db.read() as conn:
        rows = conn.execute(
            select(
                t.case_assignee.c.case_id, t.case_assignee.c.procedure, t.case_assignee.c.due_at
            ).order_by(t.case_assignee.c.case_id)
        ).all()
    assert [tuple(r) for r in rows] == [(1, "repair-desk", due), (2, "repair-desk", t.NO_DUE)]
