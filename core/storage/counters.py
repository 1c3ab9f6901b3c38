"""Per-company counters (case numbers, round-robin dispatch), bumped inside a transaction.

One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per bump: the first bump of a scope
cannot race another first bump (both PostgreSQL and SQLite support it), and the row lock
it takes holds until the caller's transaction ends, so a rolled-back transaction gives its
number back — no gaps, no duplicates.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy.dialects import postgresql, sqlite

from core.storage import schema as t
from core.storage.prepared import Query


def _bump_statement(dialect: Any) -> Any:
    c = t.counter
    stmt = dialect.insert(c).values(company_id=bindparam("co"), scope=bindparam("scope"), value=1)
    return stmt.on_conflict_do_update(
        index_elements=[c.c.company_id, c.c.scope], set_={"value": c.c.value + 1}
    ).returning(c.c.value)


# built once and run on the driver's cursor: building the upsert on every call, or even
# executing it through SQLAlchemy, cost more than running it
_BUMP = Query({"postgresql": _bump_statement(postgresql), "sqlite": _bump_statement(sqlite)})


def bump(conn: Connection, company_id: int, scope: str) -> int:
    """Add one to the counter ``scope`` of the company and return its new value (first: 1)."""
    return int(_BUMP.first(conn, {"co": company_id, "scope": scope[:64]}).value)
