"""Copy a kefu database whole into an empty one: from the embedded SQLite file to
PostgreSQL when a service department outgrows it (``kefu copy-data``), or back.

Every table of the schema is copied row by row with its ids, in an order where each row's
references arrive before it, so the copy is the same history: the journal's chain and
codes verify on the target (``kefu audit verify``), case numbers and ids continue where
the source stopped. The text-search documents are the one thing written anew, in the
target's own form (SQLite FTS5 and PostgreSQL ``tsvector`` differ; see
:mod:`core.cases.search`).

The source is read in one read transaction, a consistent snapshot even while kefu keeps
running on it; the target is written in one write transaction, so a copy that fails half
way leaves the target as empty as it was. Attachments' contents live in the attachment
store on disk, not in the database; the target's server uses the same store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Integer, Row, Table, func, insert, select, text

from core.cases import search
from core.storage import schema as t
from core.storage.db import Database
from core.storage.migrate import alembic_config, upgrade

#: rows read and written at a time
BATCH = 5000


class CopyRefused(Exception):
    """The copy cannot start: the message names the database and why."""


@dataclass
class Copied:
    """One table copied: its name, rows and seconds taken."""

    table: str
    rows: int
    seconds: float


def shown_url(db: Database) -> str:
    """The database's URL as it may be printed (no password)."""
    return db.engine.url.render_as_string(hide_password=True)


def _revision(db: Database) -> str | None:
    with db.read() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _first_filled(conn: Connection) -> str | None:
    """The first table of the schema holding a row, or None."""
    for table in t.metadata.sorted_tables:
        if conn.execute(select(text("1")).select_from(table).limit(1)).first() is not None:
            return table.name
    return None


def copy_database(
    source: Database,
    target: Database,
    *,
    progress: Callable[[Copied], None] | None = None,
) -> list[Copied]:
    """Copy every row of ``source`` into ``target`` (migrated first, and empty); refresh
    the target's statistics. Raises CopyRefused when the source's schema is not the
    current one (``kefu init`` upgrades it) or the target holds data."""
    if source.is_sqlite and not Path(source.url.split("///", 1)[-1]).is_file():
        raise CopyRefused(f"{shown_url(source)}: no such file")
    head = ScriptDirectory.from_config(alembic_config(source)).get_current_head()
    at = _revision(source)
    if at is None:
        raise CopyRefused(f"{shown_url(source)}: not a kefu database (no schema revision)")
    if at != head:
        raise CopyRefused(
            f"{shown_url(source)}: schema revision {at}, this kefu writes {head}; "
            "upgrade it first (kefu init --database …)"
        )
    upgrade(target)
    done: list[Copied] = []

    def copied(name: str, rows: int, since: float) -> None:
        done.append(Copied(name, rows, time.perf_counter() - since))
        if progress is not None:
            progress(done[-1])

    with target.write() as dst:
        filled = _first_filled(dst)
        if filled is not None:
            raise CopyRefused(
                f"{shown_url(target)}: not empty (table {filled} has rows); "
                "copy into a new, empty database"
            )
        with source.read() as src:
            for table in t.metadata.sorted_tables:
                t0, rows = time.perf_counter(), 0
                result = src.execution_options(yield_per=BATCH).execute(
                    select(table).order_by(*table.primary_key.columns)
                )
                for part in result.partitions():
                    _insert(dst, table, part)
                    rows += len(part)
                copied(table.name, rows, t0)
            t0, rows = time.perf_counter(), 0
            c = t.case
            result = src.execution_options(yield_per=BATCH).execute(
                select(c.c.id, c.c.company_id, c.c.number, c.c.fields).order_by(c.c.id)
            )
            for part in result.partitions():
                search.write(dst, ((r.id, True, r.company_id, r.number, r.fields) for r in part))
                rows += len(part)
            copied(f"{t.SEARCH_TABLE} (written anew)", rows, t0)
        if not target.is_sqlite:
            _continue_sequences(dst)
    target.optimize()
    return done


def _insert(conn: Connection, table: Table, rows: Sequence[Row[Any]]) -> None:
    """Write ``rows`` (all of ``table``'s columns, in order) in ``conn``'s transaction:
    through PostgreSQL's COPY there (psycopg's, each value prepared by its column's type
    as an INSERT would; a third of the time of batched INSERTs), INSERTs elsewhere."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(table), [r._asdict() for r in rows])
        return
    columns = list(table.c)
    procs = [c.type.dialect_impl(conn.dialect).bind_processor(conn.dialect) for c in columns]
    names = ", ".join(f'"{c.name}"' for c in columns)
    driver: Any = conn.connection.driver_connection
    with driver.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for r in rows:
            copy.write_row([v if p is None else p(v) for v, p in zip(r, procs, strict=True)])


def _continue_sequences(conn: Connection) -> None:
    """PostgreSQL: each id sequence continues after the highest id copied (SQLite takes the
    next rowid from the table itself)."""
    for table in t.metadata.sorted_tables:
        key = list(table.primary_key.columns)
        if len(key) != 1 or not isinstance(key[0].type, Integer) or not key[0].autoincrement:
            continue
        top = conn.execute(select(func.max(key[0]))).scalar()
        if top is None:
            continue
        conn.execute(
            text("SELECT setval(pg_get_serial_sequence(:table, :column), :top)"),
            {"table": f'"{table.name}"', "column": key[0].name, "top": top},
        )
