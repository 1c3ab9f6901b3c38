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
import datetime as dt
import json
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402  # after the path set-up above

from bench.databases import on_each_database  # noqa: E402  # after the path set-up above
from core.cases import search  # noqa: E402  # after the path set-up above
from core.clock import TestClock  # noqa: E402  # after the path set-up above
from core.runtime.bootstrap import build_service, create_config_people  # noqa: E402  # after the path set-up above
from core.runtime.plugins import installed  # noqa: E402  # after the path set-up above
from core.spec.catalog import load_catalog  # noqa: E402  # after the path set-up above
from core.storage import schema as t  # noqa: E402  # after the path set-up above
from core.storage.db import Database  # noqa: E402  # after the path set-up above
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


def run_service(db: Database, cases: int, engine: str) -> tuple[float, list[tuple[int, int, bool]]]:
    """Actions per second, and per transaction its writes.

    The writes: (journal rows, outbox rows, whether the assignees changed, whether the
    fields changed: the search document is rewritten).
    """
    svc = build_service(
        db, load_catalog(extensions=installed()), evaluator=engine, clock=TestClock()
    )
    create_config_people(svc, passwords=False)
    actors = {u: svc.actor("demo", u) for u in ("wang", "li", "zhao")}
    svc.evaluator  # noqa: B018  # starts the engine (a child process for durable) before timing
    shape: list[tuple[int, int, bool, bool]] = []
    n = 0
    start = time.perf_counter()
    for _ in range(cases):
        res = svc.open_case("demo", "repair-desk", actors["wang"], OPEN)
        cid, version = res.case.id, res.case.version
        shape.append((len(res.journal), 0, True, True))
        n += 1
        assignees, fields = res.case.assignees, res.case.fields
        for action, who, data in STEPS:
            res = svc.act("demo", cid, action, actors[who], data, version)
            version = res.case.version
            shape.append(
                (len(res.journal), 0, res.case.assignees != assignees, res.case.fields != fields)
            )
            assignees, fields = res.case.assignees, res.case.fields
            n += 1
    elapsed = time.perf_counter() - start
    # outbox rows per transaction, read back after timing
    with db.read() as conn:
        by_seq = {}
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
    shape = [
        (j, by_seq.get(first, 0), a, f) for (j, _, a, f), first in zip(shape, firsts, strict=True)
    ]
    svc.close()
    return n / elapsed, shape


#: the search documents kefu writes for a repair-desk case (PostgreSQL's hold triples too)
DOC = {
    "sqlite": search.document(1, "BX-202612-0001", OPEN),
    "postgresql": search.pg_document(1, "BX-202612-0001", OPEN),
}


def run_raw(url: str, shape: list[tuple[int, int, bool, bool]]) -> float:
    """The same writes per transaction with the bare driver: the floor."""
    payload = json.dumps({"fields": OPEN}, ensure_ascii=False)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    if url.startswith("sqlite"):
        import sqlite3

        conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        ph = "?"
        begin = "BEGIN IMMEDIATE"
    else:
        import psycopg

        conn = psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True)
        ph = "%s"
        begin = "BEGIN"
    cur = conn.cursor()
    cur.execute(
        f"INSERT INTO company (key, name, timezone, locale, created_at)"
        f" VALUES ({ph},{ph},{ph},{ph},{ph})",
        ("raw", "raw", "UTC", "en", now),
    )
    cid_company = cur.execute("SELECT id FROM company WHERE key='raw'").fetchone()[0]
    cur.execute(
        f"INSERT INTO journal_head (company_id, seq, hash) VALUES ({ph},0,'0')", (cid_company,)
    )
    cur.execute(
        f"INSERT INTO procedure_version"
        f" (company_id, procedure, version, digest, definition, params, created_at)"
        f" VALUES ({ph},'p',1,'d','{{}}','{{}}',{ph})",
        (cid_company, now),
    )
    pv = cur.execute("SELECT id FROM procedure_version WHERE digest='d'").fetchone()[0]
    start = time.perf_counter()
    case_id = None
    i = 0
    version = 0
    for journal_rows, outbox_rows, assignees_changed, fields_changed in shape:
        cur.execute(begin)
        if i % 7 == 0:
            cur.execute(
                f"INSERT INTO kefu_case (company_id, procedure_version_id, procedure, number,"
                f" status, step, fields, assignees, version, created_by, created_at, updated_at)"
                f" VALUES"
                f" ({ph},{ph},'p',{ph},'open','intake',{ph},'[]',1,'wang',{ph},{ph})",
                (cid_company, pv, f"N{i}", payload, now, now),
            )
            case_id = cur.execute("SELECT max(id) FROM kefu_case").fetchone()[0]
            version = 1
        else:
            cur.execute(
                f"SELECT * FROM kefu_case WHERE id={ph} AND company_id={ph}", (case_id, cid_company)
            ).fetchone()
            cur.execute(
                f"UPDATE kefu_case SET fields={ph}, step='x', version={ph}, updated_at={ph}"
                f" WHERE id={ph} AND version={ph}",
                (payload, version + 1, now, case_id, version),
            )
            version += 1
        if assignees_changed:
            cur.execute(f"DELETE FROM case_assignee WHERE case_id={ph}", (case_id,))
            cur.execute(
                f"INSERT INTO case_assignee (case_id, kind, ref, company_id, procedure, due_at)"
                f" VALUES ({ph},'role','agent',{ph},'repair-desk',{ph})",
                (case_id, cid_company, "9000-01-01 00:00:00"),
            )
        if fields_changed:  # the text-search document, rewritten with the fields
            if ph == "?":
                if i % 7:
                    cur.execute("DELETE FROM case_search WHERE rowid=?", (case_id,))
                cur.execute(
                    "INSERT INTO case_search (rowid, doc) VALUES (?, ?)", (case_id, DOC["sqlite"])
                )
            else:
                cur.execute(
                    "INSERT INTO case_search (case_id, doc) VALUES (%s, %s) ON CONFLICT (case_id)"
                    " DO UPDATE SET doc = excluded.doc",
                    (case_id, DOC["postgresql"]),
                )
        seq = cur.execute(
            f"SELECT seq FROM journal_head WHERE company_id={ph}"
            + (" FOR UPDATE" if ph == "%s" else ""),
            (cid_company,),
        ).fetchone()[0]
        for _ in range(journal_rows):
            seq += 1
            cur.execute(
                f"INSERT INTO journal"
                f" (company_id, seq, case_id, at, actor, kind, data, prev_hash, hash)"
                f" VALUES ({ph},{ph},{ph},{ph},'wang','action',{ph},{ph},{ph})",
                (cid_company, seq, case_id, now, payload, "0" * 64, uuid.uuid4().hex * 2),
            )
        cur.execute(
            f"UPDATE journal_head SET seq={ph}, hash={ph} WHERE company_id={ph}",
            (seq, "1" * 64, cid_company),
        )
        for k in range(outbox_rows):
            cur.execute(
                f"INSERT INTO outbox (company_id, case_id, channel, recipient, template, payload,"
                f" idempotency_key, status, attempts, created_at) VALUES"
                f" ({ph},{ph},'default','customer','t',{ph},{ph},'pending',0,{ph})",
                (cid_company, case_id, payload, f"raw:{seq}:{k}", now),
            )
        cur.execute("COMMIT")
        i += 1
    elapsed = time.perf_counter() - start
    conn.close()
    return len(shape) / elapsed


def bench_db(label: str, make_url: Callable[[], str], cases: int, repeats: int) -> None:
    for engine in ("durable", "reference"):
        svc_rates, raw_rates = [], []
        for _ in range(repeats):
            url = make_url()
            db = Database(url)
            upgrade(db)
            rate, shape = run_service(db, cases, engine)
            db.dispose()
            svc_rates.append(rate)
            raw_url = make_url()
            upgrade(Database(raw_url))
            raw_rates.append(run_raw(raw_url, shape))
        s, r = statistics.median(svc_rates), statistics.median(raw_rates)
        writes = sum(j + o for j, o, _, _ in shape) / len(shape)
        print(
            f"{label:<11} {engine:<10} service {s:8.0f} actions/s   raw SQL floor {r:8.0f} tx/s   "
            f"ratio {r / s:5.1f}x   ({len(shape)} tx, {writes:.1f} journal+outbox rows/tx)"
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
