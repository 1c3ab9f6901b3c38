"""Timers, outbox and deadlines: throughput against raw SQL doing the same writes.

    python bench/time_bench.py [--timers 2000] [--cases 100] [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

For SQLite (a file) and PostgreSQL (when reachable), in one run:

* **timers**: ``--timers`` due timers fired by :class:`core.runtime.worker.Worker` (claim with
  lease, handler and done-mark in one transaction each) vs raw SQL: claim the same batches with one
  UPDATE, then per timer one transaction with the handler's INSERT and the done UPDATE.
* **outbox**: as many messages delivered to a channel that does nothing vs raw SQL: claim,
  then one UPDATE per message.
* **deadlines**: the complaint-reply lifecycle (open, confirm, resolve, feedback: 4 actions,
  two SLAs and a step SLA recomputed and their timers rescheduled after each) vs the same pack
  with its SLAs removed — the price of deadlines per action.
Figures are only comparable within one run: machines, database settings and Python
builds (optimised or not: 1.1–1.5× apart) all move them.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402  # after the path set-up above
from sqlalchemy import Connection, insert, text  # noqa: E402  # after the path set-up above

from bench.databases import on_each_database  # noqa: E402  # after the path set-up above
from core.cases import timers  # noqa: E402  # after the path set-up above
from core.cases.service import CaseService  # noqa: E402  # after the path set-up above
from core.cases.timers import DueTimer  # noqa: E402  # after the path set-up above
from core.clock import TestClock  # noqa: E402  # after the path set-up above
from core.runtime.bootstrap import build_service, create_config_people  # noqa: E402  # after the path set-up above
from core.runtime.outbox import OutboxMessage  # noqa: E402  # after the path set-up above
from core.runtime.plugins import installed  # noqa: E402  # after the path set-up above
from core.runtime.worker import Worker  # noqa: E402  # after the path set-up above
from core.spec.catalog import Catalog, load_catalog  # noqa: E402  # after the path set-up above
from core.storage import schema as t  # noqa: E402  # after the path set-up above
from core.storage.db import Database  # noqa: E402  # after the path set-up above
from core.storage.migrate import upgrade  # noqa: E402  # after the path set-up above

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


@timers.handler("bench.effect")
def _effect(svc: CaseService, conn: Connection, due: DueTimer) -> None:
    conn.execute(insert(t.counter).values(company_id=due.company_id, scope=due.key[-64:], value=1))


class Null:
    name = "log"

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        pass


def _company(db: Database) -> int:
    with db.write() as conn:
        return conn.execute(
            insert(t.company).values(key="b", name="b", timezone="UTC", locale="en", created_at=T0)
        ).inserted_primary_key[0]


def bench_timers(url: str, n: int) -> tuple[float, float]:
    db = Database(url)
    upgrade(db)
    co = _company(db)
    with db.write() as conn:
        for i in range(n):
            timers.schedule(
                conn, company_id=co, case_id=None, kind="bench.effect", due_at=T0, key=f"b{i}"
            )
    svc = CaseService(db, Catalog(), clock=TestClock(T0 + dt.timedelta(seconds=1)))
    w = Worker(svc, {}, batch=100)
    start = time.perf_counter()
    fired, _ = w.run_once()
    service_rate = fired / (time.perf_counter() - start)
    assert fired == n, fired
    # raw: the same rows, fresh, then the same writes with the driver through SQLAlchemy Core text
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM counter"))
        conn.execute(
            text("UPDATE timer SET status = 'pending', lease_owner = NULL, lease_until = NULL")
        )
    start = time.perf_counter()
    with db.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM timer ORDER BY id"))]
        conn.commit()
        claim = "UPDATE timer SET status = 'claimed', lease_owner = 'raw', lease_until = :u "
        for b in range(0, n, 100):
            chunk = ids[b : b + 100]
            with conn.begin():
                conn.execute(
                    text(
                        claim + "WHERE id = ANY(:ids)"
                        if not db.is_sqlite
                        else claim + f"WHERE id IN ({','.join(map(str, chunk))})"
                    ),
                    {"u": T0, "ids": chunk} if not db.is_sqlite else {"u": T0},
                )
            for i in chunk:
                with conn.begin():
                    conn.execute(
                        text(
                            "UPDATE timer SET status = 'done', fired_at = :f WHERE id = :i "
                            "AND lease_owner = 'raw'"
                        ),
                        {"f": T0, "i": i},
                    )
                    conn.execute(
                        text("INSERT INTO counter (company_id, scope, value) VALUES (:c, :s, 1)"),
                        {"c": co, "s": f"b{i}"},
                    )
    raw_rate = n / (time.perf_counter() - start)
    db.dispose()
    return service_rate, raw_rate


def bench_outbox(url: str, n: int) -> tuple[float, float]:
    db = Database(url)
    upgrade(db)
    co = _company(db)
    with db.write() as conn:
        conn.execute(
            insert(t.outbox),
            [
                {
                    "company_id": co,
                    "case_id": None,
                    "journal_seq": None,
                    "channel": "log",
                    "recipient": "x",
                    "template": "t",
                    "payload": {},
                    "idempotency_key": f"m{i}",
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": T0,
                    "created_at": T0,
                }
                for i in range(n)
            ],
        )
    svc = CaseService(db, Catalog(), clock=TestClock(T0 + dt.timedelta(seconds=1)))
    w = Worker(svc, {"log": Null()}, batch=100)
    start = time.perf_counter()
    _, report = w.run_once()
    service_rate = report.sent / (time.perf_counter() - start)
    assert report.sent == n, report
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE outbox SET status = 'pending', sent_at = NULL, attempts = 0"))
    start = time.perf_counter()
    with db.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM outbox ORDER BY id"))]
        conn.commit()
        for b in range(0, n, 100):
            chunk = ids[b : b + 100]
            with conn.begin():
                conn.execute(
                    text(
                        f"UPDATE outbox SET lease_owner = 'raw', lease_until = :u "
                        f"WHERE id IN ({','.join(map(str, chunk))})"
                    ),
                    {"u": T0},
                )
            for i in chunk:
                with conn.begin():
                    conn.execute(
                        text(
                            "UPDATE outbox SET status = 'sent', sent_at = :s, attempts = 1, "
                            "lease_owner = NULL WHERE id = :i AND lease_owner = 'raw'"
                        ),
                        {"s": T0, "i": i},
                    )
    raw_rate = n / (time.perf_counter() - start)
    db.dispose()
    return service_rate, raw_rate


def _rules_without_slas(tmp: Path) -> Path:
    rules = tmp / f"rules-no-sla-{uuid.uuid4().hex[:6]}"
    shutil.copytree(ROOT / "rules", rules, ignore=shutil.ignore_patterns("scenarios", "*.py"))
    yaml = YAML()
    path = rules / "complaint-reply" / "procedure.yaml"
    doc = yaml.load(path.read_text(encoding="utf-8"))
    doc.pop("slas", None)
    doc["steps"]["feedback"].pop("sla", None)
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(copy.deepcopy(doc), fh)
    return rules


def bench_deadlines(url_a: str, url_b: str, cases: int, tmp: Path) -> tuple[float, float]:
    rates = []
    for url, rules in ((url_a, ROOT / "rules"), (url_b, _rules_without_slas(tmp))):
        db = Database(url)
        upgrade(db)
        svc = build_service(
            db,
            load_catalog(rules, extensions=installed()),
            evaluator="reference",
            clock=TestClock(T0),
            migrate=False,
        )
        create_config_people(svc, passwords=False)
        wang, qian = svc.actor("demo", "wang"), svc.actor("demo", "qian")
        start = time.perf_counter()
        for _ in range(cases):
            cid = svc.open_case(
                "demo",
                "complaint-reply",
                wang,
                {
                    "channel": "phone",
                    "customer_name": "张三",
                    "details": "漏酒",
                    "category": "return",
                },
            ).case.id
            svc.act("demo", cid, "confirm", wang, {"reply": "已登记"}, 1)
            svc.act("demo", cid, "resolve", qian, {"result": "已换货"}, 2)
            svc.act("demo", cid, "send_feedback", wang, {"customer_opinion": "满意"}, 3)
        rates.append(4 * cases / (time.perf_counter() - start))
        svc.close()
    return rates[0], rates[1]


def run(label: str, make_url: Callable[[], str], args: argparse.Namespace, tmp: Path) -> None:
    s, r = bench_timers(make_url(), args.timers)
    print(
        f"{label:<11} timers   worker {s:8.0f} fired/s      "
        f"raw SQL {r:8.0f}/s   ratio {r / s:5.1f}x"
    )
    s, r = bench_outbox(make_url(), args.timers)
    print(
        f"{label:<11} outbox   worker {s:8.0f} delivered/s  "
        f"raw SQL {r:8.0f}/s   ratio {r / s:5.1f}x"
    )
    with_sla, without = bench_deadlines(make_url(), make_url(), args.cases, tmp)
    print(
        f"{label:<11} deadlines complaint-reply {with_sla:6.0f} actions/s with SLAs, "
        f"{without:6.0f} without: deadlines cost {without / with_sla:4.2f}x "
        f"({1e3 / with_sla - 1e3 / without:5.2f} ms per action)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--timers", type=int, default=2000)
    ap.add_argument("--cases", type=int, default=100)
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = ap.parse_args()
    print(
        f"timers/outbox: {args.timers} each; deadlines: {args.cases} cases x 4 actions; "
        f"Python {sys.version.split()[0]}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
    on_each_database(args.pg, lambda label, new_url: run(label, new_url, args, tmp))


if __name__ == "__main__":
    main()
