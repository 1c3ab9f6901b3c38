"""Memory and time of exporting a large case list as XLSX and CSV.

    python bench/exports_bench.py [--cases 100000]

Loads ``--cases`` repair-desk cases into a fresh SQLite file (raw inserts, the fields of a
real case), then exports them through ``core.cases.exports`` as XLSX and as CSV, reading
every streamed chunk as a server would send it. Prints rows/s and the peak memory
Python allocated during each export (tracemalloc) next to the process's resident size:
the export pages through the index and writes XlsxWriter's rows to temporary files, so
the peak should not grow with the number of cases.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402  # after the path set-up above

from core.cases import exports  # noqa: E402
from core.cases.commit import Actor  # noqa: E402
from core.clock import TestClock  # noqa: E402
from core.runtime.bootstrap import build_service  # noqa: E402
from core.runtime.plugins import installed  # noqa: E402
from core.spec.catalog import load_catalog  # noqa: E402
from core.storage import schema as t  # noqa: E402
from core.storage.db import Database  # noqa: E402

FIELDS = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "address": "上海市浦东新区世纪大道 100 号",
    "symptom": "空调不制冷,室外机异响,已重启无效",
    "category": "electrical",
    "urgency": "medium",
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=100_000)
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp())
    db = Database(f"sqlite:///{folder / 'kefu.db'}")
    clock = TestClock(dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC))
    svc = build_service(db, load_catalog(extensions=installed()), clock=clock)
    svc.use_evaluator(svc.evaluator)
    rt = svc.company("demo")
    start = clock.now()
    t0 = time.perf_counter()
    with db.write() as conn:
        batch = []
        for i in range(args.cases):
            at = start + dt.timedelta(minutes=i)
            batch.append(
                {
                    "company_id": rt.id,
                    "procedure_version_id": rt.version_ids["repair-desk"],
                    "procedure": "repair-desk",
                    "number": f"BX-{i:07d}",
                    "status": "open",
                    "step": "verify",
                    "fields": FIELDS,
                    "assignees": ["role:agent"],
                    "version": 1,
                    "created_by": "wang",
                    "created_at": at,
                    "updated_at": at,
                }
            )
            if len(batch) == 5000:
                conn.execute(insert(t.case), batch)
                batch = []
        if batch:
            conn.execute(insert(t.case), batch)
    print(f"loaded {args.cases} cases in {time.perf_counter() - t0:.1f} s")
    db.optimize()
    # the supervisor (a role of the repair desk) reads every repair-desk case
    zhao = Actor("zhao", "demo", frozenset({"service", "management"}), frozenset())
    for fmt in ("xlsx", "csv"):
        t0 = time.perf_counter()
        size = sum(len(c) for c in exports.chunks(exports.cases(svc, zhao, "repair-desk"), fmt))
        took = time.perf_counter() - t0
        # again under tracemalloc (which slows it down): what Python held at its peak
        tracemalloc.start()
        for _ in exports.chunks(exports.cases(svc, zhao, "repair-desk"), fmt):
            pass
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(
            f"{fmt}: {args.cases} cases, {size / 1e6:.1f} MB in {took:.1f} s "
            f"({args.cases / took:,.0f} rows/s); Python's peak {peak / 1e6:.1f} MB; "
            f"the process's max RSS so far {rss_mb():.0f} MB"
        )
    svc.close()
    os.remove(folder / "kefu.db")


if __name__ == "__main__":
    main()
