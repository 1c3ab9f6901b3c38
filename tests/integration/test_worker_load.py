"""Several worker processes share 4,000 due timers on PostgreSQL: none missed, none doubled.

Each worker is a real OS process running :class:`core.runtime.worker.Worker` rounds against the
same database; the timers' handler writes one row per firing into ``load_effect`` (no
unique key, so a double firing would show as two rows). One test kills a worker with
SIGKILL while it holds leased timers: after its lease runs out the others take them over.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import signal
import time

import pytest
from sqlalchemy import Connection, text

from core.cases import timers
from core.cases.service import CaseService
from core.runtime.worker import Worker
from core.spec.catalog import Catalog
from core.storage.db import Database
from core.storage.schema import timer
from tests import pg
from tests.helpers import service

pytestmark = [pytest.mark.pg, pytest.mark.slow]
N = 4000
KIND = "test.load"


@timers.handler(KIND)
def _effect(svc: CaseService, conn: Connection, due: timers.DueTimer) -> None:
    conn.execute(
        text("INSERT INTO load_effect (timer_key, worker) VALUES (:k, :w)"),
        {"k": due.key, "w": due.payload.get("_worker", "")},
    )
    delay = float(os.environ.get("KEFU_TEST_HANDLER_DELAY", "0"))
    if delay:
        time.sleep(delay)


def _work(url: str, lease: float, batch: int, delay: float, started: mp.Event | None) -> None:
    """A worker process: rounds until no timer of the load is left pending or claimed."""
    os.environ["KEFU_TEST_HANDLER_DELAY"] = str(delay)
    db = Database(url)
    svc = CaseService(db, Catalog())
    w = Worker(svc, {}, batch=batch, lease=dt.timedelta(seconds=lease))
    if started is not None:
        started.set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        fired, _ = w.run_once()
        if fired == 0:
            with db.read() as conn:
                left = conn.execute(
                    text("SELECT count(*) FROM timer WHERE kind = :k AND status <> 'done'"),
                    {"k": KIND},
                ).scalar_one()
            if left == 0:
                break
            time.sleep(0.05)
    db.dispose()


@pytest.fixture
def loaded(pytestconfig: pytest.Config):
    db = pg.fresh(pytestconfig)
    svc = service(db)
    co = svc.company("demo").id
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS load_effect"))
        conn.execute(
            text("CREATE TABLE load_effect (timer_key text NOT NULL, worker text NOT NULL)")
        )
    due = svc.clock.now() - dt.timedelta(minutes=1)
    # what timers.schedule writes for a new key, as one multi-row INSERT (8,000 statements
    # one by one took seconds)
    rows = [
        {
            "company_id": co,
            "case_id": None,
            "kind": KIND,
            "due_at": due,
            "idempotency_key": f"load-{i}",
            "payload": {},
            "status": timers.PENDING,
            "attempts": 0,
        }
        for i in range(N)
    ]
    with db.write() as conn:
        conn.execute(timer.insert(), rows)
    yield db, pg.session_url(pytestconfig)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS load_effect"))
    svc.close()


def _outcome(db: Database) -> tuple[int, int, int, int]:
    """(timers done, distinct timers with an effect, timers with more than one effect, effects)."""
    with db.read() as conn:
        done = conn.execute(
            text("SELECT count(*) FROM timer WHERE kind = :k AND status = 'done'"), {"k": KIND}
        ).scalar_one()
        distinct = conn.execute(
            text("SELECT count(DISTINCT timer_key) FROM load_effect")
        ).scalar_one()
        doubled = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT timer_key FROM load_effect"
                " GROUP BY timer_key HAVING count(*) > 1) d"
            )
        ).scalar_one()
        effects = conn.execute(text("SELECT count(*) FROM load_effect")).scalar_one()
    return done, distinct, doubled, effects


def test_four_workers_fire_4000_timers_exactly_once(loaded):
    db, url = loaded
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_work, args=(url, 30.0, 50, 0.0, None)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(180)
        assert p.exitcode == 0
    assert _outcome(db) == (N, N, 0, N)


def test_a_worker_killed_mid_batch_loses_no_timer(loaded):
    db, url = loaded
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    # the victim claims 500 at a time and works slowly, so it dies holding a leased batch
    victim = ctx.Process(target=_work, args=(url, 3.0, 500, 0.01, started))
    victim.start()
    assert started.wait(60)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with db.read() as conn:
            held = conn.execute(
                text("SELECT count(*) FROM timer WHERE status = 'claimed'")
            ).scalar_one()
            fired = conn.execute(text("SELECT count(*) FROM load_effect")).scalar_one()
        if held and fired >= 20:
            break
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(10)
    assert victim.exitcode == -signal.SIGKILL
    with db.read() as conn:
        orphaned = conn.execute(
            text("SELECT count(*) FROM timer WHERE status = 'claimed'")
        ).scalar_one()
    assert orphaned > 0  # it really died holding leases
    others = [ctx.Process(target=_work, args=(url, 3.0, 50, 0.0, None)) for _ in range(3)]
    for p in others:
        p.start()
    for p in others:
        p.join(180)
        assert p.exitcode == 0
    done, distinct, doubled, effects = _outcome(db)
    assert (done, distinct, doubled, effects) == (N, N, 0, N)
