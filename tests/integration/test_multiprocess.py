"""Several server and worker processes on one PostgreSQL: nothing lost, nothing doubled.

``kefu serve --workers 2`` and two ``kefu worker`` processes run against one PostgreSQL
database, as a production site would. Eight clients open and work 24 repair cases at once
over HTTP; then the workers deliver the outbox to a file channel. Every case must have
its number (no gap, no duplicate), its whole journal (the hash chain verifies), and every
queued message must be delivered exactly once — one line in the channel's file per
outbox row, no row left pending. SQLite refuses ``--workers`` with a clear message.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from core.storage import schema as t
from core.storage.db import Database
from core.testing.scenarios import temporary_pg_database
from tests import pg
from tests.helpers import demo_with_channels

ROOT = Path(__file__).resolve().parents[2]
KEFU = str(Path(sys.executable).with_name("kefu"))
CASES = 24
OPEN = {"channel": "phone", "customer_name": "张三", "phone": "13912345678", "symptom": "跳闸"}
VERIFY = {
    "contact_verified": True,
    "in_scope": True,
    "onsite_needed": True,
    "category": "electrical",
    "urgency": "high",  # tells the supervisor: a message per case
}
DISPATCH = {
    "engineer": "li",
    "engineer_contact": "13800000001",
    "visit_at": "2026-12-10T10:00+08:00",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read() if proc.stdout else ""
                pytest.fail(f"kefu serve did not start:\n{out}")
            time.sleep(0.2)


def work_one_case(base: str, token: str) -> str:
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as http:
        r = http.post("/cases", json={"procedure": "repair-desk", "fields": OPEN})
        assert r.status_code == 201, r.text
        case = r.json()["case"]
        for action, data in (("verify", VERIFY), ("dispatch", DISPATCH)):
            r = http.post(
                f"/cases/{case['id']}/actions/{action}",
                json={"fields": data, "expected_version": case["version"]},
            )
            assert r.status_code == 200, r.text
            case = r.json()["case"]
        return str(case["number"])


@pytest.mark.pg
def test_two_servers_and_two_workers_lose_and_double_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    pg.session_url(request.config)  # skips (or fails in CI) when PostgreSQL is down
    config = tmp_path / "config"
    config.mkdir()
    outbox = tmp_path / "outbox"
    (config / "demo.yaml").write_text(
        demo_with_channels(f"  default: {{use: file}}\n  file: {{directory: {outbox}}}\n"),
        encoding="utf-8",
    )
    with temporary_pg_database(pg.PG_ADMIN_URL, prefix="kefu_mp") as url:
        env = {**os.environ, "KEFU_DATABASE_URL": url, "KEFU_CONFIG_DIR": str(config)}

        def kefu(*args: str) -> subprocess.CompletedProcess[str]:
            done = subprocess.run(
                [KEFU, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
            )
            assert done.returncode == 0, done.stderr
            return done

        kefu("init", "--demo")
        token = kefu("token", "create", "wang", "--company", "demo", "--name", "mp").stdout.strip()
        port = free_port()
        procs: list[subprocess.Popen[str]] = []
        try:
            server = subprocess.Popen(
                [KEFU, "serve", "--workers", "2", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            procs.append(server)
            wait_for(port, server)
            base = f"http://127.0.0.1:{port}/api/v1"
            with ThreadPoolExecutor(8) as pool:
                numbers = list(pool.map(lambda _: work_one_case(base, token), range(CASES)))
            for _ in range(2):
                procs.append(
                    subprocess.Popen(
                        [KEFU, "worker", "--poll", "0.2"],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        text=True,
                    )
                )
            db = Database(url)
            try:
                deadline = time.monotonic() + 60
                while True:
                    with db.read() as conn:
                        pending = conn.execute(
                            select(func.count()).where(t.outbox.c.status != "sent")
                        ).scalar_one()
                        queued = conn.execute(
                            select(func.count()).select_from(t.outbox)
                        ).scalar_one()
                    if pending == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.3)
                assert pending == 0, f"{pending} of {queued} messages not delivered"
                with db.read() as conn:
                    case_count = conn.execute(select(func.count()).select_from(t.case)).scalar_one()
                    keys = [
                        r.idempotency_key for r in conn.execute(select(t.outbox.c.idempotency_key))
                    ]
            finally:
                db.dispose()
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        assert case_count == CASES
        seqs = sorted(int(n.rsplit("-", 1)[1]) for n in numbers)
        assert seqs == list(range(seqs[0], seqs[0] + CASES)), numbers  # no gap, no duplicate
        assert queued >= 2 * CASES  # the supervisor's and the customer's messages at least
        lines = [
            json.loads(line)
            for f in outbox.glob("*.jsonl")
            for line in f.read_text(encoding="utf-8").splitlines()
        ]
        delivered: dict[Any, int] = {}
        for rec in lines:
            key = rec["id"]
            delivered[key] = delivered.get(key, 0) + 1
        assert sorted(delivered) == sorted(keys), "a message was lost or one not queued was sent"
        assert set(delivered.values()) == {1}, "a message was delivered twice"
        verify = kefu("audit", "verify")
        assert "ok" in verify.stdout.lower() or verify.returncode == 0


@pytest.mark.slow  # starts a kefu process
def test_sqlite_refuses_several_server_processes(tmp_path: Path) -> None:
    env = {**os.environ, "KEFU_DATABASE_URL": f"sqlite:///{tmp_path / 'kefu.db'}"}
    done = subprocess.run(
        [KEFU, "serve", "--workers", "2", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "SQLite takes one writer at a time" in done.stderr
    assert "Traceback" not in done.stderr
