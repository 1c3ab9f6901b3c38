"""Timers fire once through the worker core (claim → handler → done), on both databases."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Connection, func, insert, select

from core.cases import timers
from core.clock import TestClock
from core.runtime import worker
from core.storage import schema as t
from tests.helpers import service

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


@timers.handler("test.note")
def _note(svc, conn: Connection, due: timers.DueTimer) -> None:
    if due.payload.get("fail"):
        raise RuntimeError("handler failed on purpose")
    conn.execute(
        insert(t.counter).values(company_id=due.company_id, scope=due.key, value=due.attempts)
    )


def _note(conn: Connection, co: int, key: str, due_at: dt.datetime, **payload: object) -> None:
    """Schedule the test.note timer ``key`` of company ``co``."""
    timers.schedule(
        conn, company_id=co, case_id=None, kind="test.note", due_at=due_at, key=key, payload=payload
    )


def _count(db, scope: str) -> int:
    with db.read() as conn:
        return int(
            conn.execute(
                select(func.count()).select_from(t.counter).where(t.counter.c.scope == scope)
            ).scalar_one()
        )


def test_due_timer_fires_once_and_future_one_waits(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    co = svc.company("demo").id
    with db.write() as conn:
        _note(conn, co, "soon", T0 + dt.timedelta(hours=1))
        _note(conn, co, "later", T0 + dt.timedelta(days=1))
    worker.run_due(svc)  # (other companies' schedules in config/ may have timers too)
    assert _count(db, "soon") == 0
    clock.advance(dt.timedelta(hours=2))
    worker.run_due(svc)
    worker.run_due(svc)
    assert _count(db, "soon") == 1 and _count(db, "later") == 0
    with db.read() as conn:
        assert [p["idempotency_key"] for p in timers.pending(conn) if p["kind"] == "test.note"] == [
            "later"
        ]


def test_failing_handler_writes_nothing_and_is_retried(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    co = svc.company("demo").id
    with db.write() as conn:
        _note(conn, co, "bad", T0, fail=True)
    assert worker.run_due(svc) == 0
    with db.read() as conn:
        row = conn.execute(select(t.timer).where(t.timer.c.idempotency_key == "bad")).one()
    assert (row.status, row.attempts) == ("pending", 1) and row.due_at > T0
    with db.write() as conn:  # fixed: the next attempt succeeds, once
        _note(conn, co, "bad", T0)
    assert worker.run_due(svc) == 1 and _count(db, "bad") == 1


def test_expired_lease_is_reclaimed_by_another_worker(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    co = svc.company("demo").id
    with db.write() as conn:
        _note(conn, co, "orphan", T0)
    taken = worker.claim(svc, owner="dead-worker", now=T0)  # then it dies without firing
    assert [d.key for d in taken] == ["orphan"]
    assert worker.run_due(svc, owner="w2") == 0  # still leased
    clock.advance(worker.DEFAULT_LEASE + dt.timedelta(seconds=1))
    assert worker.run_due(svc, owner="w2") == 1
    assert (
        worker.fire(svc, taken[0], owner="dead-worker", now=clock.now()) is False
    )  # lease lost: no 2nd effect
    assert _count(db, "orphan") == 1


def test_a_cancelled_timer_is_gone_and_its_key_can_be_scheduled_again(db):
    """Cancelling deletes the pending timer (the table keeps no row per timer not
    needed): it never fires, scheduling its key again arms it anew, and a timer that
    fired stays fired whatever is scheduled under its key."""
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    co = svc.company("demo").id

    def keys(status: str) -> list[str]:
        with db.read() as conn:
            rows = conn.execute(
                select(t.timer.c.idempotency_key)
                .where(t.timer.c.kind == "test.note", t.timer.c.status == status)
                .order_by(t.timer.c.idempotency_key)
            )
            return list(rows.scalars())

    with db.write() as conn:
        for key in ("cancel-me", "keep-me"):
            _note(conn, co, key, T0)
    with db.write() as conn:
        assert timers.cancel(conn, key="cancel-me") == 1
        assert timers.cancel(conn, key="cancel-me") == 0
    with db.read() as conn:
        left = conn.execute(select(t.timer.c.idempotency_key)).scalars().all()
    assert "cancel-me" not in left and "keep-me" in left  # no row left behind
    clock.advance(dt.timedelta(hours=1))
    worker.run_due(svc)
    assert _count(db, "cancel-me") == 0 and _count(db, "keep-me") == 1
    # the cancelled key armed again fires; the fired one scheduled again does not
    with db.write() as conn:
        for key in ("cancel-me", "keep-me"):
            _note(conn, co, key, T0 + dt.timedelta(minutes=30))
    assert keys("pending") == ["cancel-me"] and keys("done") == ["keep-me"]
    worker.run_due(svc)
    assert _count(db, "cancel-me") == 1 and _count(db, "keep-me") == 1
