"""``POST /cases/{id}/actions/verify`` over HTTP: kefu's API vs. a bare endpoint.

    python bench/http_bench.py [--seconds 10] [--connections 4]

Both servers run under uvicorn in a child process, on SQLite files prepared the same
way, and are driven in turn by the same bounded client: ``--connections`` keep-alive
connections (one thread each) posting the verify form of a repair-desk case for
``--seconds``, each request on another case that waits at intake.

- **kefu**: ``kefu serve`` (no embedded worker, no access log) with an API token — the
  whole stack: authentication, validation, the commit pipeline, the response.
- **bare**: a Litestar endpoint (bench/bare_app.py) that reads the case row and does the
  same writes as kefu's verify with the sqlite3 module — the case row, the inbox rows,
  the search document, the journal rows and the journal head, in one transaction.

It prints requests per second of both and their ratio. Run it on a quiet machine;
figures compare only within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.scale_bench import VERIFY, opening  # noqa: E402  # after the path set-up above
from core.clock import TestClock  # noqa: E402  # after the path set-up above
from core.runtime import users  # noqa: E402  # after the path set-up above
from core.runtime.bootstrap import build_service, create_config_people  # noqa: E402  # after the path set-up above
from core.runtime.plugins import installed  # noqa: E402  # after the path set-up above
from core.spec.catalog import load_catalog  # noqa: E402  # after the path set-up above
from core.storage.db import Database  # noqa: E402  # after the path set-up above

START = dt.datetime(2026, 12, 1, 1, 0, tzinfo=dt.UTC)


def prepare(path: Path, cases: int) -> tuple[str, list[int], dict[str, Any]]:
    """A kefu database with ``cases`` cases at intake and an API token for wang; returns
    the token, the case ids and what one verify writes (its shape, for the bare server)."""
    svc = build_service(
        Database(f"sqlite:///{path}"),
        load_catalog(extensions=installed()),
        clock=TestClock(START),
    )
    create_config_people(svc, passwords=False)
    rt = svc.company("demo")
    wang = svc.actor("demo", "wang")
    ids: list[int] = []
    while len(ids) < cases:
        with svc.db.write() as conn:
            pipe = svc.pipeline(conn, rt)
            for i in range(len(ids), min(len(ids) + 1000, cases)):
                ids.append(pipe.open(rt.procedures["repair-desk"], wang, opening(i)).case_id)
    with svc.db.write() as conn:
        uid = users.ensure_user(conn, "wang", "wang", START, password=None)
        _, token = users.create_token(conn, uid, rt.id, "bench", START)
    # one verify through the service: what the bare endpoint must write per request
    res = svc.act("demo", ids.pop(), "verify", wang, VERIFY, 1)
    shape = {
        "journal_rows": len(res.journal),
        "assignees": list(res.case.assignees),  # "kind:ref"
        "step": res.case.step,
        "fields": res.case.fields,
    }
    svc.close()
    return token, ids, shape


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server(cmd: list[str], port: int, env: dict[str, str]) -> Iterator[None]:
    proc = subprocess.Popen(
        cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/health")
                c.getresponse().read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise SystemExit(f"server did not start: {' '.join(cmd)}\n{err}") from None
                time.sleep(0.2)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


def drive(port: int, path: str, token: str, ids: list[int], seconds: float, conns: int) -> float:
    """Requests per second that answered 200 (any other answer stops the run)."""
    body = json.dumps({"expected_version": 1, "fields": VERIFY}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    queue = iter(ids)
    lock = threading.Lock()
    done = [0]
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < stop and not errors:
            with lock:
                cid = next(queue, None)
            if cid is None:
                errors.append("ran out of cases: prepare more (--cases)")
                return
            c.request("POST", path.format(cid), body, headers)
            r = c.getresponse()
            data = r.read()
            if r.status != 200:
                errors.append(f"{r.status}: {data[:300]!r}")
                return
            with lock:
                done[0] += 1

    t0 = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if errors:
        raise SystemExit(f"{path}: {errors[0]}")
    return done[0] / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--cases", type=int, default=40000, help="cases prepared (each used once)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="kefu-http-"))
    kefu_db, bare_db = tmp / "kefu.db", tmp / "bare.db"
    token, ids, shape = prepare(kefu_db, args.cases)
    with sqlite3.connect(kefu_db) as src, sqlite3.connect(bare_db) as dst:
        src.backup(dst)  # the same cases, waiting at intake, for the bare server
    bare_ids = list(ids)
    python = sys.executable
    results = {}
    port = free_port()
    with server(
        [python, "-m", "core.cli", "serve", "--port", str(port), "--no-worker"],
        port,
        {"KEFU_DATABASE_URL": f"sqlite:///{kefu_db}"},
    ):
        results["kefu"] = drive(
            port, "/api/v1/cases/{}/actions/verify", token, ids, args.seconds, args.connections
        )
    port = free_port()
    with server(
        [python, "-m", "uvicorn", "bench.bare_app:app", "--port", str(port), "--no-access-log"],
        port,
        {"KEFU_BARE_DB": str(bare_db), "KEFU_BARE_SHAPE": json.dumps(shape, ensure_ascii=False)},
    ):
        results["bare"] = drive(
            port, "/bare/cases/{}/verify", token, bare_ids, args.seconds, args.connections
        )
    print(
        f"verify over HTTP, SQLite, {args.connections} connections, {args.seconds:.0f} s each, "
        f"Python {sys.version.split()[0]}"
    )
    print(f"kefu serve             {results['kefu']:8.0f} req/s")
    print(f"bare Litestar + sqlite3 {results['bare']:7.0f} req/s")
    print(f"kefu / bare            {results['kefu'] / results['bare']:8.0%}")


if __name__ == "__main__":
    main()
