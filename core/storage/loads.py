"""How many open cases each queue holds (table ``assignee_load``), kept in the transaction.

A queue is an assignee — ``person:wang``, ``department:service``, ``role:engineer`` — and
its load is the number of its rows in ``case_assignee``, which holds rows of open cases
only. The commit pipeline calls :func:`move` wherever a case's assignees change, inside
the change's transaction, so the load is always that count; :func:`of` reads it with one
primary-key lookup per queue, whatever the queue's length (dispatch reads every holder's
load on every dispatching action; counting each queue grew with it).

The upsert takes each row's lock until the transaction ends (PostgreSQL), so two changes
moving the same queue wait for each other instead of losing a count; rows are written in
key order, so two changes moving the same pair of queues cannot deadlock.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from core.storage import schema as t
from core.storage.prepared import Prepared, Query


def _move_statement(dialect: Any) -> Any:
    a = t.assignee_load
    stmt = dialect.insert(a).values(
        company_id=bindparam("co"),
        kind=bindparam("kind"),
        ref=bindparam("ref"),
        open_cases=bindparam("by"),
    )
    return stmt.on_conflict_do_update(
        index_elements=[a.c.company_id, a.c.kind, a.c.ref],
        set_={"open_cases": a.c.open_cases + stmt.excluded.open_cases},
    )


_MOVE = Prepared({"postgresql": _move_statement(postgresql), "sqlite": _move_statement(sqlite)})


def move(conn: Connection, company_id: int, before: Iterable[str], after: Iterable[str]) -> None:
    """A case's assignees went from ``before`` to ``after`` (``kind:ref`` texts; both
    empty for a closed case): one less in each queue it left, one more in each it joined."""
    old, new = set(before), set(after)
    if old == new:
        return
    moves = sorted([(a, -1) for a in old - new] + [(a, 1) for a in new - old])
    rows = []
    for queue, by in moves:
        kind, _, ref = queue.partition(":")
        rows.append({"co": company_id, "kind": kind, "ref": ref, "by": by})
    _MOVE.execute_many(conn, rows)


@functools.lru_cache(maxsize=32)
def _loads(queues: int) -> Query:
    """The loads of ``queues`` queues of one kind (parameters ``r0``…): one fixed query
    per number of queues."""
    a = t.assignee_load
    return Query(
        select(a.c.ref, a.c.open_cases).where(
            a.c.company_id == bindparam("co"),
            a.c.kind == bindparam("kind"),
            a.c.ref.in_([bindparam(f"r{i}") for i in range(queues)]),
        )
    )


def of(conn: Connection, company_id: int, kind: str, refs: Sequence[str]) -> dict[str, int]:
    """The open cases of each queue ``kind:ref`` of ``refs`` (0 for one that never held a
    case)."""
    if not refs:
        return {}
    params: dict[str, object] = {"co": company_id, "kind": kind}
    params |= {f"r{i}": ref for i, ref in enumerate(refs)}
    found = {r.ref: int(r.open_cases) for r in _loads(len(refs)).all(conn, params)}
    return {ref: found.get(ref, 0) for ref in refs}


def mismatches(conn: Connection, company_id: int) -> list[tuple[str, str, int, int]]:
    """The company's queues whose kept load differs from a count of their inbox rows:
    ``(kind, ref, kept, counted)`` each (for ``kefu audit verify``; it reads every open
    case's assignee rows once)."""
    a, load = t.case_assignee, t.assignee_load
    counted = {
        (r.kind, r.ref): int(r.n)
        for r in conn.execute(
            select(a.c.kind, a.c.ref, func.count().label("n"))
            .where(a.c.company_id == company_id)
            .group_by(a.c.kind, a.c.ref)
        )
    }
    kept = {
        (r.kind, r.ref): int(r.open_cases)
        for r in conn.execute(
            select(load.c.kind, load.c.ref, load.c.open_cases).where(
                load.c.company_id == company_id
            )
        )
    }
    return [
        (kind, ref, kept.get((kind, ref), 0), counted.get((kind, ref), 0))
        for kind, ref in sorted(kept.keys() | counted.keys())
        if kept.get((kind, ref), 0) != counted.get((kind, ref), 0)
    ]


_SET = Prepared(
    update(t.assignee_load)
    .where(
        t.assignee_load.c.company_id == bindparam("co"),
        t.assignee_load.c.kind == bindparam("kind"),
        t.assignee_load.c.ref == bindparam("ref"),
    )
    .values(open_cases=bindparam("n"))
)


def repair(conn: Connection, company_id: int) -> list[tuple[str, str, int, int]]:
    """Set each of the company's queue loads that :func:`mismatches` finds to the count of
    its inbox rows, in ``conn``'s write transaction; returns what it changed, as
    ``mismatches`` gives it. Run it where no change of the company's cases runs at the same
    time (a change between the count and the write would be counted or not by chance)."""
    wrong = mismatches(conn, company_id)
    for kind, ref, _kept, counted in wrong:
        row = {"co": company_id, "kind": kind, "ref": ref}
        if _SET.execute(conn, row | {"n": counted}) == 0:  # no load row yet: start one
            _MOVE.execute(conn, row | {"by": counted})
    return wrong
