"""Per-company counters (case numbers, round-robin dispatch), bumped inside a transaction.

One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per bump: the first bump of a scope
cannot race another first bump (both PostgreSQL and SQLite support it), and the row lock
it takes holds until the caller's transaction ends, so a rolled-back transaction gives its
number back — no gaps, no duplicates.
"""

from __future__ import annotations

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from core.storage import schema as t


def bump(conn: Connection, company_id: int, scope: str) -> int:
    """Add one to the counter ``scope`` of the company and return its new value (first: 1)."""
    c = t.counter
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(c).values(company_id=company_id, scope=scope[:64], value=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.c.company_id, c.c.scope], set_={"value": c.c.value + 1}
    ).returning(c.c.value)
    return int(conn.execute(stmt).scalar_one())
