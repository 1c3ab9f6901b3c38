"""Durable timers: rows in the ``timer`` table, written in the caller's transaction.

This module is the contract between whoever *schedules* work for later (SLA deadlines,
follow-up surveys, schedules, plugins) and the worker that *fires* it
(``core/runtime/worker.py``, ``kefu worker``; embedded in ``kefu serve`` on SQLite).

* ``schedule()`` inserts (or re-schedules) a pending timer inside the transaction of the
  action that causes it, so a timer exists exactly when the change that needs it was
  committed.
* A timer's ``key`` is its idempotency key (unique per database). Re-scheduling a pending
  timer with the same key moves its ``due_at`` and replaces its payload; a timer that has
  already fired is left alone (it is *done*: its effects happened once, and its row stays
  to say so).
* Cancelling a pending timer deletes it: nothing happened that its row would record, and
  scheduling its key again makes it anew. Most deadlines are met, so most timers are
  cancelled; kept, they made the table and its key index grow with the history (95% of
  two million timer rows at a million cases), and every new timer of an old case landed
  in a part of that index no other change had read for months.
* When a timer is due, the worker claims it (lease), opens a write transaction, calls the
  handler registered for its ``kind`` with that connection, and marks the timer done in
  the *same* transaction: the handler's effects happen exactly once even though the timer
  may be delivered more than once (a worker killed mid-batch, a lease that ran out).
  A handler must therefore only write through the connection it is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, delete, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite

from core.storage import schema as t
from core.storage.prepared import Prepared
from core.storage.schema import timer

if TYPE_CHECKING:  # types only: the service imports this module through deadlines (a cycle)
    from core.cases.service import CaseService

PENDING, CLAIMED, DONE = "pending", "claimed", "done"


def live() -> Any:
    """The condition of ix_timer_due (pending or claimed) as its own text: a query of
    due timers carries it beside its own status test so both databases read that index."""
    return text(f"timer.{t.TIMER_LIVE}")


@dataclass(frozen=True)
class DueTimer:
    """A timer handed to its handler."""

    id: int
    company_id: int
    case_id: int | None
    kind: str
    due_at: dt.datetime
    key: str
    payload: dict[str, Any]
    attempts: int


TimerHandler = Callable[["CaseService", Connection, DueTimer], None]
"""``handler(svc, conn, timer)``: do the timer's work through ``conn`` (the worker's write
transaction, which also marks the timer done). Raise to roll back and retry later."""

HANDLERS: dict[str, TimerHandler] = {}


def handler(kind: str) -> Callable[[TimerHandler], TimerHandler]:
    """Register the handler for timers of ``kind`` (one per kind)."""

    def register(fn: TimerHandler) -> TimerHandler:
        if kind in HANDLERS and HANDLERS[kind] is not fn:
            raise ValueError(f"a timer handler for kind {kind!r} is already registered")
        HANDLERS[kind] = fn
        return fn

    return register


def schedule(
    conn: Connection,
    *,
    company_id: int,
    case_id: int | None,
    kind: str,
    due_at: dt.datetime,
    key: str,
    payload: Mapping[str, Any] | None = None,
) -> None:
    """Create the timer ``key`` due at ``due_at`` (aware), or move it if still pending."""
    schedule_many(conn, company_id, case_id, [(kind, key, due_at, payload)])


def schedule_many(
    conn: Connection,
    company_id: int,
    case_id: int | None,
    specs: Sequence[tuple[str, str, dt.datetime, Mapping[str, Any] | None]],
) -> None:
    """:func:`schedule` for each ``(kind, key, due_at, payload)`` of ``specs``, in one
    batch of the same prepared upsert."""
    rows = []
    for kind, key, due_at, payload in specs:
        if due_at.tzinfo is None:
            raise ValueError("timer due_at must be timezone-aware")
        rows.append(
            {
                "company_id": company_id,
                "case_id": case_id,
                "kind": kind,
                "due_at": due_at,
                "idempotency_key": key,
                "payload": dict(payload or {}),
            }
        )
    _UPSERT.execute_many(conn, rows)


def _upsert(dialect: Any) -> Any:
    """One statement for schedule(): insert the timer, or move it if it is pending (a
    timer that fired, or is firing, stays as it is)."""
    stmt = dialect.insert(timer).values(
        company_id=bindparam("company_id"),
        case_id=bindparam("case_id"),
        kind=bindparam("kind"),
        due_at=bindparam("due_at"),
        idempotency_key=bindparam("idempotency_key"),
        payload=bindparam("payload"),
        status=PENDING,
        attempts=0,
    )
    return stmt.on_conflict_do_update(
        index_elements=[timer.c.idempotency_key],
        set_={
            "due_at": stmt.excluded.due_at,
            "payload": stmt.excluded.payload,
            "status": PENDING,
            "lease_owner": None,
            "lease_until": None,
        },
        where=timer.c.status == PENDING,
    )


# the statements of schedule() and cancel_kinds(), run on every change of a case
_UPSERT = Prepared({"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)})
_CANCEL_KINDS: dict[tuple[str, ...], Prepared] = {}


def cancel_kinds(conn: Connection, case_id: int, kinds: tuple[str, ...]) -> int:
    """Cancel (delete) the case's pending timers of any of ``kinds`` (one statement).
    Returns how many."""
    stmt = _CANCEL_KINDS.get(kinds)
    if stmt is None:
        stmt = _CANCEL_KINDS[kinds] = Prepared(
            delete(timer).where(
                timer.c.case_id == bindparam("cid"),
                timer.c.status == PENDING,
                or_(*(timer.c.kind == k for k in kinds)),
            )
        )
    return stmt.execute(conn, {"cid": case_id})


_CANCEL_KEY = Prepared(
    delete(timer).where(timer.c.idempotency_key == bindparam("key"), timer.c.status == PENDING)
)


def cancel_keys(conn: Connection, keys: Iterable[str]) -> None:
    """Cancel (delete) each timer of ``keys`` that is pending (one batch of a prepared
    statement: the hot path's)."""
    _CANCEL_KEY.execute_many(conn, [{"key": key} for key in keys])


def cancel(
    conn: Connection,
    *,
    key: str | None = None,
    case_id: int | None = None,
    kind: str | None = None,
    where: Sequence[Any] = (),
) -> int:
    """Cancel (delete) pending timers by key, or by case (and kind), or those meeting the
    conditions ``where``. Returns how many."""
    if key is None and case_id is None and not where:
        raise ValueError("cancel needs a key, a case or conditions")
    cond = [timer.c.status == PENDING, *where]
    if key is not None:
        cond.append(timer.c.idempotency_key == key)
    if case_id is not None:
        cond.append(timer.c.case_id == case_id)
    if kind is not None:
        cond.append(timer.c.kind == kind)
    return conn.execute(delete(timer).where(and_(*cond))).rowcount or 0


def pending(conn: Connection, *, case_id: int | None = None) -> list[dict[str, Any]]:
    """Pending timers (of one case), earliest first: for explanations and tests."""
    q = select(timer).where(live(), timer.c.status == PENDING).order_by(timer.c.due_at, timer.c.id)
    if case_id is not None:
        q = q.where(timer.c.case_id == case_id)
    return [dict(r._mapping) for r in conn.execute(q)]
