"""The database migrations (Alembic, ``versions/``), and what several of them share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import sqlalchemy as sa

_case = sa.table(
    "kefu_case",
    sa.column("id", sa.Integer()),
    sa.column("company_id", sa.Integer()),
    sa.column("number", sa.String()),
    sa.column("fields", sa.JSON()),
)


def search_documents(
    conn: sa.Connection, make: Callable[[int, str, Mapping[str, Any]], str]
) -> Iterator[list[dict[str, Any]]]:
    """Every case's search document, made by ``make`` from its company, number and fields:
    ``{"id", "doc"}`` rows, 5,000 cases at a time in case-id order (the order a text
    index is written fastest in)."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(_case.c.id, _case.c.company_id, _case.c.number, _case.c.fields)
            .where(_case.c.id > last)
            .order_by(_case.c.id)
            .limit(5000)
        ).all()
        if not rows:
            return
        yield [{"id": r.id, "doc": make(r.company_id, r.number, r.fields or {})} for r in rows]
        last = rows[-1].id
