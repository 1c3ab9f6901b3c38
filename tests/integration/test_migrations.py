"""The Alembic migrations build exactly the schema that core/storage/schema.py declares.

A table or column added to schema.py without a migration (or the other way round), or a
column type changed in one and not the other, would work in tests that create tables from
metadata and break on a real upgraded database.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select, text

from core.cases import search
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import alembic_config, upgrade
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


def company(conn: Any, now: dt.datetime, *, procedure: bool = True) -> None:
    """Company 1 (and, with ``procedure``, version 1 of its repair-desk procedure) written
    as an older schema holds them; ``now`` naive (stored UTC)."""
    conn.execute(
        text(
            "INSERT INTO company (id, key, name, timezone, locale, created_at) "
            "VALUES (1, 'acme', 'Acme', 'UTC', 'en', :now)"
        ),
        {"now": now},
    )
    if procedure:
        conn.execute(
            text(
                "INSERT INTO procedure_version (id, company_id, procedure, version, digest, "
                "definition, params, created_at)"
                " VALUES (1, 1, 'repair-desk', 1, 'd', '{}', '{}', :now)"
            ),
            {"now": now},
        )


def test_inbox_queues_migration_fills_existing_assignees(empty_db: Database) -> None:
    """Upgrading a database with cases: each assignee row gets its case's procedure, next
    due instant (or the no-deadline mark) and opening instant, rows of closed cases go, and
    each queue's load is counted."""
    upgrade(empty_db, "c3c0c0c0c0c3")
    due = dt.datetime(2026, 12, 5, 9, 0, tzinfo=dt.UTC)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    with empty_db.write() as conn:
        company(conn, now.replace(tzinfo=None))
        for cid, status, next_due in ((1, "open", due), (2, "open", None), (3, "closed", None)):
            conn.execute(
                text(
                    "INSERT INTO kefu_case (id, company_id, procedure_version_id, procedure,"
                    " number, status, step, fields, assignees, version, created_by, created_at,"
                    " updated_at, next_due_at)"
                    " VALUES (:id, 1, 1, 'repair-desk', :num, :st, 's', '{}', '[]', 1,"
                    " 'x', :created, :now, :due)"
                ),
                {
                    "id": cid,
                    "num": f"N{cid}",
                    "st": status,
                    "now": now.replace(tzinfo=None),
                    "created": (now - dt.timedelta(hours=cid)).replace(tzinfo=None),
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
                t.case_assignee.c.case_id,
                t.case_assignee.c.procedure,
                t.case_assignee.c.due_at,
                t.case_assignee.c.created_at,
            ).order_by(t.case_assignee.c.case_id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, "repair-desk", due, now - dt.timedelta(hours=1)),
        (2, "repair-desk", t.NO_DUE, now - dt.timedelta(hours=2)),
    ]
    # and each queue's load counts its open cases (the closed one's row is gone)
    with empty_db.read() as conn:
        loads = conn.execute(select(t.assignee_load)).all()
    assert [tuple(r) for r in loads] == [(1, "role", "agent", 2)]


def test_search_documents_are_rewritten_with_runs_apart(empty_db: Database) -> None:
    """Documents written before e3 ran their runs together ("12 24 46" was found by a
    search for 1246) and had no triples: the upgrade rewrites them."""
    upgrade(empty_db, "e2e0e0e0e0e2")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).replace(tzinfo=None)  # stored naive (UTC)
    fields = {"symptom": "空调 12 24 46", "phone": "13912345678"}
    old_doc = "c1 " + " ".join(
        "g" + run[i : i + 2].encode().hex()
        for run in ("bx1", "空调", "12", "24", "46", "13912345678")
        for i in range(len(run) - 1)
    )
    with empty_db.write() as conn:
        company(conn, now)
        conn.execute(
            text(
                "INSERT INTO kefu_case (id, company_id, procedure_version_id, procedure,"
                " number, status, step, fields, assignees, version, created_by, created_at,"
                " updated_at) VALUES (1, 1, 1, 'repair-desk', 'BX1', 'open', 's', :fields,"
                " '[]', 1, 'x', :now, :now)"
            ),
            {"fields": json.dumps(fields, ensure_ascii=False), "now": now},
        )
        key = "rowid" if empty_db.is_sqlite else "case_id"
        conn.execute(
            text(f"INSERT INTO case_search ({key}, doc) VALUES (1, :doc)"), {"doc": old_doc}
        )

    def found(q: str) -> list[int]:
        dialect = "sqlite" if empty_db.is_sqlite else "postgresql"
        with empty_db.read() as conn:
            found = search.matched(dialect, 1, q)
            assert found is not None
            source, match, key = found
            return list(conn.execute(select(key).select_from(source).where(match)).scalars())

    assert found("13912345678") == []  # searched by triples the old document lacks
    upgrade(empty_db)
    assert found("1246") == []
    assert found("13912345678") == [1]
    assert found("5678") == [1]
    assert found("空调") == [1]


def test_search_documents_are_written_anew_as_triples_and_back(empty_db: Database) -> None:
    """Revision ea writes every document as its runs' triples and last pairs (SQLite's
    held pairs, PostgreSQL's pairs and triples); a downgrade writes them as they were."""
    upgrade(empty_db)
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).replace(tzinfo=None)  # stored naive (UTC)
    with empty_db.write() as conn:
        company(conn, now)
        for cid, fields in ((1, {"name": "张三丰", "phone": "13912345678"}), (2, {"name": "李四"})):
            conn.execute(
                text(
                    "INSERT INTO kefu_case (id, company_id, procedure_version_id, procedure,"
                    " number, status, step, fields, assignees, version, created_by,"
                    " created_at, updated_at) VALUES (:id, 1, 1, 'repair-desk', :num, 'open',"
                    " 's', :fields, '[]', 1, 'x', :now, :now)"
                ),
                {"id": cid, "num": f"BX{cid}", "fields": json.dumps(fields), "now": now},
            )
    cfg = alembic_config(empty_db)
    with empty_db.write() as conn:  # down: the documents as e9 wrote them
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "e9e0e0e0e0e9")
    key = "rowid" if empty_db.is_sqlite else "case_id"

    def docs() -> list[str]:
        with empty_db.read() as conn:
            return list(conn.execute(text(f"SELECT doc FROM case_search ORDER BY {key}")).scalars())

    def grams(size: int, mark: str, runs: tuple[str, ...]) -> list[str]:
        return [
            t
            for run in runs
            for t in [
                "x",
                *(mark + run[i : i + size].encode().hex() for i in range(len(run) - size + 1)),
            ]
        ]

    runs = ("bx1", "张三丰", "13912345678")
    earlier = ["c1", *grams(2, "g", runs)]
    if not empty_db.is_sqlite:
        earlier += grams(3, "t", runs)
    assert docs()[0].split() == earlier
    upgrade(empty_db)
    written = [
        search.document(1, "BX1", {"name": "张三丰", "phone": "13912345678"}),
        search.document(1, "BX2", {"name": "李四"}),
    ]
    if empty_db.is_sqlite:
        assert docs() == written
    else:  # the terms alone, as made from each document
        with empty_db.read() as conn:
            columns = [c["name"] for c in inspect(conn).get_columns("case_search")]
            terms = conn.execute(text("SELECT terms::text FROM case_search ORDER BY case_id"))
            made = [
                conn.execute(text("SELECT to_tsvector('simple', :d)::text"), {"d": d}).scalar()
                for d in written
            ]
            assert (columns, list(terms.scalars())) == (["case_id", "terms"], made)

    def found(q: str) -> list[int]:
        dialect = "sqlite" if empty_db.is_sqlite else "postgresql"
        with empty_db.read() as conn:
            source, match, key = search.matched(dialect, 1, q) or (None, None, None)
            return list(conn.execute(select(key).select_from(source).where(match)).scalars())

    assert [found(q) for q in ("三丰", "张三", "5678", "李四", "bx")] == [
        [1],
        [1],
        [1],
        [2],
        [1, 2],
    ]


def test_cancelled_timers_are_deleted_and_the_others_kept(empty_db: Database) -> None:
    """Before e9 a cancelled timer stayed as a row (and in the key index) for ever: the
    upgrade deletes those; pending, claimed and fired ones stay as they were."""
    upgrade(empty_db, "e8e0e0e0e0e8")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC).replace(tzinfo=None)  # stored naive (UTC)
    with empty_db.write() as conn:
        company(conn, now, procedure=False)
        for status in ("pending", "claimed", "done", "cancelled"):
            conn.execute(
                text(
                    "INSERT INTO timer (company_id, kind, due_at, idempotency_key, payload,"
                    " status, attempts) VALUES (1, 'sla.breach', :now, :key, '{}', :st, 0)"
                ),
                {"now": now, "key": f"sla.breach:{status}", "st": status},
            )
    upgrade(empty_db)
    with empty_db.read() as conn:
        left = conn.execute(
            select(t.timer.c.idempotency_key, t.timer.c.status).order_by(t.timer.c.id)
        ).all()
    assert [tuple(r) for r in left] == [
        ("sla.breach:pending", "pending"),
        ("sla.breach:claimed", "claimed"),
        ("sla.breach:done", "done"),
    ]
