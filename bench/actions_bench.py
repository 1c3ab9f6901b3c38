"""Actions per second through the case service vs. raw SQL doing the same writes.

    python bench/actions_bench.py [--cases 150] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For each database (SQLite file; PostgreSQL when reachable) it walks ``--cases`` repair-desk
cases through their whole lifecycle (open, verify, dispatch, complete, return and audit
of the warranty card, confirm, survey, close = 9 transactions each) with the case
service, then replays *the same writes* — the same number of journal rows, outbox rows,
assignee rows and search documents per transaction — with the raw DB-API driver in the
same run: the floor. It prints both
rates and their ratio.
Figures are only comparable within one run on one interpreter: the same code runs
1.1–1.5× faster on an optimised Python build than on one built without optimisations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event, select  # noqa: E402  # after the path set-up above

from bench.databases import on_each_database  # noqa: E402  # after the path set-up above
from core.clock import TestClock  # noqa: E402  # after the path set-up above
from core.runtime.bootstrap import build_service, create_config_people  # noqa: E402  # after the path set-up above
from core.runtime.plugins import installed  # noqa: E402  # after the path set-up above
from core.spec.catalog import load_catalog  # noqa: E402  # after the path set-up above
from core.storage import schema as t  # noqa: E402  # after the path set-up above
from core.storage.db import SQLITE_PRAGMAS, Database  # noqa: E402  # after the path set-up above
from core.storage.migrate import upgrade  # noqa: E402  # after the path set-up above

OPEN = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "symptom": "空调不制冷",
}
STEPS = [
    (
        "verify",
        "wang",
        {
            "contact_verified": True,
            "in_scope": True,
            "onsite_needed": True,
            "category": "electrical",
            "urgency": "medium",
            "warranty": "in_warranty",
        },
    ),
    (
        "dispatch",
        "wang",
        {"engineer": "li", "engineer_contact": "13800000001", "visit_at": "2026-11-23T10:00+08:00"},
    ),
    ("complete", "li", {"hours_spent": 2, "result": "更换电容", "resolved": True}),
    (
        "return_card",
        "li",
        {"card_number": "SB-1", "serial_number": "K-1", "warranty_service": "repair"},
    ),
    ("approve_card", "zhao", {}),
    ("confirm", "wang", {"customer_confirmed": True}),
    ("record_survey", "wang", {"survey_channel": "phone", "satisfaction": 5}),
    ("close", "wang", {"care_note": "满意"}),
]


class Recording:
    """Every statement the service sent to the database, in order, with the parameters
    the driver received, and where each transaction ended: what the floor replays."""

    COMMIT, ROLLBACK = "-- commit", "-- rollback"
    BEGIN = {"sqlite": ("BEGIN IMMEDIATE", "BEGIN DEFERRED"), "postgresql": (None, None)}

    def __init__(self, engine: Any) -> None:
        self.log: list[tuple[str, Any, bool]] = []
        self.timed = (0, 0)  # the part of the log the service was timed on
        event.listen(engine, "before_cursor_execute", self._statement)
        # kefu begins SQLite transactions on the driver's connection: say where
        begins = self.BEGIN[engine.dialect.name]
        event.listen(
            engine,
            "begin",
            lambda conn: (
                begins[0]
                and self.log.append(
                    (begins[1] if conn.info.get("read_only") else begins[0], (), False)
                )
            ),
        )
        event.listen(engine, "commit", lambda conn: self.log.append((self.COMMIT, None, False)))
        event.listen(engine, "rollback", lambda conn: self.log.append((self.ROLLBACK, None, False)))

    def _statement(self, conn: Any, cur: Any, sql: str, params: Any, ctx: Any, many: bool) -> None:
        self.log.append((sql, params, many))

    def transactions(self) -> int:
        lo, hi = self.timed
        return sum(1 for sql, _, _ in self.log[lo:hi] if sql == self.COMMIT)


def run_service(
    db: Database, cases: int, engine: str, *, record: bool = False
) -> tuple[float, list[tuple[int, int]], Recording | None]:
    """Actions per second, per transaction its journal and outbox rows, and (``record``)
    the statements it sent, for :func:`run_raw` — a recorded run is not a timed one: the
    recording's listener would slow the service down."""
    recording = Recording(db.engine) if record else None
    svc = build_service(
        db, load_catalog(extensions=installed()), evaluator=engine, clock=TestClock()
    )
    create_config_people(svc, passwords=False)
    actors = {u: svc.actor("demo", u) for u in ("wang", "li", "zhao")}
    svc.evaluator  # noqa: B018  # starts the engine (a child process for durable) before timing
    journal_rows: list[int] = []
    first = len(recording.log) if recording else 0
    start = time.perf_counter()
    for _ in range(cases):
        res = svc.open_case("demo", "repair-desk", actors["wang"], OPEN)
        cid, version = res.case.id, res.case.version
        journal_rows.append(len(res.journal))
        for action, who, data in STEPS:
            res = svc.act("demo", cid, action, actors[who], data, version)
            version = res.case.version
            journal_rows.append(len(res.journal))
    elapsed = time.perf_counter() - start
    if recording:
        recording.timed = (first, len(recording.log))
    # outbox rows per transaction, read back after timing
    with db.read() as conn:
        by_seq: dict[int, int] = {}
        for row in conn.execute(select(t.outbox.c.journal_seq)):
            by_seq[row.journal_seq] = by_seq.get(row.journal_seq, 0) + 1
        firsts = [
            r.seq
            for r in conn.execute(
                select(t.journal.c.seq)
                .where(t.journal.c.kind.in_(("opened", "action")))
                .order_by(t.journal.c.seq)
            )
        ]
    shape = [(j, by_seq.get(f, 0)) for j, f in zip(journal_rows, firsts, strict=True)]
    svc.close()
    return len(journal_rows) / elapsed, shape, recording


def run_raw(url: str, recording: Recording) -> float:
    """The floor: the service's own statements — every read and write of every
    transaction, with the same parameters — sent again through the bare DB-API driver to
    a fresh database, none of kefu's Python in between. What comes before the timed part
    (the company, its people and procedures) is replayed first, untimed."""
    if url.startswith("sqlite"):
        import sqlite3

        conn: Any = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        for pragma in SQLITE_PRAGMAS:  # as kefu's own connections
            conn.execute(pragma)
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"))
    cur = conn.cursor()
    lo, hi = recording.timed

    def replay(part: list[tuple[str, Any, bool]]) -> None:
        for sql, params, many in part:
            if sql == Recording.COMMIT:
                conn.commit()
            elif sql == Recording.ROLLBACK:
                conn.rollback()
            elif many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)

    replay(recording.log[:lo])
    conn.commit()
    start = time.perf_counter()
    replay(recording.log[lo:hi])
    elapsed = time.perf_counter() - start
    conn.close()
    return recording.transactions() / elapsed


def bench_db(label: str, make_url: Callable[[], str], cases: int, repeats: int) -> None:
    for engine in ("durable", "reference"):
        svc_rates, raw_rates = [], []
        for _ in range(repeats):
            url = make_url()
            db = Database(url)
            upgrade(db)
            rate, shape, _ = run_service(db, cases, engine)
            db.dispose()
            svc_rates.append(rate)
            # the same run again, recorded (the clock and inputs are the same: so are
            # the statements), then replayed bare on a third database
            db = Database(make_url())
            upgrade(db)
            _, _, recording = run_service(db, cases, engine, record=True)
            db.dispose()
            assert recording is not None
            raw_url = make_url()
            upgrade(Database(raw_url))
            raw_rates.append(run_raw(raw_url, recording))
        s, r = statistics.median(svc_rates), statistics.median(raw_rates)
        writes = sum(j + o for j, o in shape) / len(shape)
        assert recording is not None
        lo, hi = recording.timed
        statements = sum(
            1
            for sql, _, _ in recording.log[lo:hi]
            if sql not in (Recording.COMMIT, Recording.ROLLBACK) and not sql.startswith("BEGIN")
        ) / len(shape)
        print(
            f"{label:<11} {engine:<10} service {s:8.0f} actions/s   raw SQL floor {r:8.0f} tx/s   "
            f"service {100 * s / r:4.1f}% of the floor   ({len(shape)} tx, "
            f"{statements:.1f} statements and {writes:.1f} journal+outbox rows per tx)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--cases", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    print(
        f"repair-desk lifecycle, {args.cases} cases x {len(STEPS) + 1} transactions, "
        f"median of {args.repeats} runs, Python {sys.version.split()[0]}"
    )
    on_each_database(
        args.pg, lambda label, new_url: bench_db(label, new_url, args.cases, args.repeats)
    )


if __name__ == "__main__":
    main()
