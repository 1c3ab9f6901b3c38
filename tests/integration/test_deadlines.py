"""Deadlines through the service, the API and the CLI, on SQLite and PostgreSQL.

The complaint-reply pack (seed 003) runs in the demo company: a reply within 24 hours and
handling within 3 working days (7 in special circumstances), paused while waiting for the
customer. The scenarios in rules/complaint-reply test the procedure; these tests check what
staff and integrations see, and that an escalation acts exactly once.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from litestar.testing import TestClient
from sqlalchemy import select, update

from api.app import create_app
from api.auth import AuthSettings
from core.cases import timers
from core.cli import cli
from core.clock import TestClock
from core.runtime import worker
from core.runtime.users import set_password
from core.storage import schema as t
from tests.helpers import service

SH = zoneinfo.ZoneInfo("Asia/Shanghai")
OPEN = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "details": "瓶盖漏酒",
    "category": "quality",
}


def at(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


def _open(svc) -> int:
    return svc.open_case("demo", "complaint-reply", svc.actor("demo", "wang"), OPEN).case.id


def test_breach_escalates_once_even_if_the_timer_is_delivered_twice(db):
    clock = TestClock(at(2026, 11, 6, 16, 0))  # a Friday
    svc = service(db, clock=clock)
    cid = _open(svc)
    reply = {d.id: d for d in svc.deadlines("demo", cid)}["reply"]
    assert (reply.state, reply.due_at) == ("running", at(2026, 11, 7, 16, 0))
    assert svc.get_case("demo", cid).next_due_at == at(2026, 11, 7, 16, 0)
    clock.set(at(2026, 11, 7, 16, 0))
    claimed = worker.claim(svc, owner="w1", now=clock.now())
    breach = next(d for d in claimed if d.kind == "sla.breach")
    assert worker.fire(svc, breach, owner="w1", now=clock.now())
    # the same timer handed over again (a worker that lost its lease): no second effect
    assert not worker.fire(svc, breach, owner="w1", now=clock.now())
    with db.write() as conn:  # even if it were made pending again by hand
        conn.execute(update(t.timer).where(t.timer.c.id == breach.id).values(status="pending"))
    worker.run_due(svc)
    entries = [e for e in svc.journal("demo", cid) if e["kind"] == "sla_breached"]
    assert len(entries) == 1 and entries[0]["actor"] == "system"
    assert entries[0]["data"]["sla"] == "reply"
    late = [m for m in svc.outbox("demo", cid) if m["template"] == "complaint.reply-late"]
    assert len(late) == 1
    case = svc.get_case("demo", cid)
    # opened, then the breach (the warning timer is still leased to w1, which never fired it)
    assert case.fields["priority"] == "high" and case.version == 2


def test_a_pause_moves_the_due_time_and_cancels_the_breach_timer(db):
    clock = TestClock(at(2026, 11, 2, 9, 0))
    svc = service(db, clock=clock)
    cid = _open(svc)
    wang, qian = svc.actor("demo", "wang"), svc.actor("demo", "qian")
    svc.act("demo", cid, "confirm", wang, {"reply": "已登记"}, 1)
    clock.set(at(2026, 11, 3, 9, 0))
    svc.act("demo", cid, "wait_customer", qian, {"waiting_for": "照片"}, 2)
    with db.read() as conn:
        kinds = {p["kind"] for p in timers.pending(conn, case_id=cid)}
    assert "sla.breach" not in kinds  # nothing can breach while paused
    assert svc.get_case("demo", cid).next_due_at is None
    worker.run_until(svc, at(2026, 11, 5, 9, 0))  # (other companies' schedules may fire)
    escalated = [e for e in svc.journal("demo", cid) if e["kind"].startswith("sla_")]
    assert escalated == []
    clock.set(at(2026, 11, 5, 9, 0))
    svc.act("demo", cid, "customer_replied", wang, {}, 3)
    handling = {d.id: d for d in svc.deadlines("demo", cid)}["handling"]
    assert handling.due_at == at(2026, 11, 9, 9, 0)
    assert handling.pauses == [(at(2026, 11, 3, 9, 0), at(2026, 11, 5, 9, 0))]
    assert handling.counted == dt.timedelta(hours=8)  # Mon 09:00 → Tue 09:00 of working time


def _client(svc, user: str) -> TestClient[Any]:
    with svc.db.write() as conn:
        uid = conn.execute(
            select(t.app_user.c.id).where(t.app_user.c.username == user)
        ).scalar_one()
        set_password(conn, uid, "correct horse 1")
    app = create_app(
        svc, auth=AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=30))
    )
    c = TestClient(app)
    r = c.post("/api/v1/auth/login", json={"username": user, "password": "correct horse 1"})
    assert r.status_code == 200, r.text
    return c


def test_api_explains_deadlines_and_the_inbox_puts_the_nearest_first(db):
    clock = TestClock(at(2026, 9, 30, 10, 0))
    svc = service(db, clock=clock)
    wang = svc.actor("demo", "wang")
    national = _open(svc)
    # handling due 10 Oct (the make-up Saturday); a service complaint stays with the agents
    svc.act("demo", national, "confirm", wang, {"reply": "已登记", "category": "service"}, 1)
    clock.set(at(2026, 9, 30, 11, 0))
    fresh = _open(svc)  # reply due tomorrow 11:00: nearer
    c = _client(svc, "wang")
    r = c.get(f"/api/v1/cases/{national}/deadlines")
    assert r.status_code == 200, r.text
    got = {d["id"]: d for d in r.json()}
    h = got["handling"]
    assert (
        h["state"] == "running" and h["target"] == "3 workdays" and h["measure"] == "working time"
    )
    assert dt.datetime.fromisoformat(h["due_at"]) == at(2026, 10, 10, 10, 0)
    assert any("2026-10-01" in s and "National Day" in s for s in h["skipped_days"])
    assert any("2026-10-10" in s and "make-up" in s for s in h["counted_days"])
    assert got["reply"]["state"] == "met" and got["feedback"]["state"] == "pending"
    assert c.get(f"/api/v1/cases/{national}").json()["next_due_at"] is not None
    inbox = [x["id"] for x in c.get("/api/v1/inbox").json()["items"]]
    assert inbox.index(fresh) < inbox.index(national)
    assert c.get("/api/v1/cases/999999/deadlines").status_code == 404
    svc.close()


def test_cli_explains_a_case_in_words(db, tmp_path):
    from click.testing import CliRunner

    clock = TestClock(at(2026, 9, 30, 10, 0))
    svc = service(db, clock=clock)
    cid = _open(svc)
    svc.act("demo", cid, "confirm", svc.actor("demo", "wang"), {"reply": "已登记"}, 1)
    number = svc.get_case("demo", cid).number
    url = db.engine.url.render_as_string(hide_password=False)
    res = CliRunner().invoke(cli, ["deadlines", number, "--database", url])
    assert res.exit_code == 0, res.output
    assert "handling" in res.output and "target 3 workdays" in res.output
    assert "due 2026-10-10 10:00 Sat" in res.output
    assert "skipped 2026-10-01 Thu: National Day" in res.output
    assert "counted 2026-10-10 Sat: make-up working day" in res.output
    res = CliRunner().invoke(cli, ["deadlines", "NOPE-1", "--database", url])
    assert res.exit_code == 1 and "no case NOPE-1" in res.output
