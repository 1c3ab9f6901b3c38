"""Times in the API as docs/api.md promises them, on SQLite and PostgreSQL: case-list
filters take ISO 8601 dates and times in the company's zone, an unknown assignee is a 422
naming the parameter, deadlines show every instant with the company's UTC offset, and
journal facts show dates and instants as ISO 8601, not as numbers.

The demo company works in Asia/Shanghai (UTC+8).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.clock import TestClock
from core.runtime.users import ensure_user
from core.storage.db import Database
from tests.helpers import DISPATCH, FIXTURES, OPEN_FIELDS, VERIFY, service

PASSWORD = "correct horse 1"
SH = dt.timezone(dt.timedelta(hours=8))
COMPLAINT = {
    "channel": "phone",
    "customer_name": "张三",
    "phone": "13912345678",
    "details": "瓶盖漏酒",
    "category": "quality",
}


def client(svc: CaseService, user: str) -> TestClient[Any]:
    with svc.db.write() as conn:
        ensure_user(conn, user, user, svc.clock.now(), password=PASSWORD)
    app = create_app(
        svc, auth=AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=30))
    )
    c = TestClient(app)
    r = c.post(
        "/api/v1/auth/login", json={"username": user, "password": PASSWORD, "company": "demo"}
    )
    assert r.status_code == 200, r.text
    return c


def problem(r: Any, parameter: str) -> dict[str, Any]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = dict(r.json())
    assert parameter in body["errors"] and parameter in body["detail"], body
    return body


@pytest.fixture
def two_days(db: Database) -> Iterator[tuple[CaseService, TestClient[Any], int, int]]:
    """Case a opened Mon 2 Nov 09:00 in Shanghai, b on Tue 3 Nov 05:00 — still 2 Nov in UTC."""
    svc = service(
        db,
        config=FIXTURES / "config-two",
        clock=TestClock(dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)),
    )
    wang = svc.actor("demo", "wang")
    a = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
    svc.clock.advance(dt.timedelta(hours=20))
    b = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
    yield svc, client(svc, "wang"), a, b
    svc.close()


def test_case_list_takes_dates_and_minutes_in_the_company_zone(
    two_days: tuple[CaseService, TestClient[Any], int, int],
) -> None:
    _, c, a, b = two_days

    def ids(query: str, **params: str) -> list[int]:
        r = c.get(f"/api/v1/cases?{query}", params=params or None)
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert ids("created_from=2026-11-03") == [b]  # the day in Shanghai, not in UTC
    assert ids("created_to=2026-11-02") == [a]  # a date closes a range at the end of that day
    assert ids("created_from=2026-11-02&created_to=2026-11-02") == [a]
    assert ids("created_from=2026-11-02&created_to=2026-11-03") == [b, a]
    assert ids("created_from=2026-11-03T05:00") == [b]  # minutes, local time
    assert ids("created_from=2026-11-03T05:01") == []
    assert ids("created_to=2026-11-03T05:00") == [a]  # a time closes a range before it
    assert ids("created_from=2026-11-03 05:00") == [b]
    assert ids("created_from=2026-11-02T21:00:00Z") == [b]
    assert ids("", created_from="2026-11-03T05:00:00+08:00") == [b]  # "+" sent as %2B
    assert ids("created_from=2026-11-03T05:00:00+08:00") == [b]  # "+" read as a space
    assert ids("updated_from=2026-11-03") == [b] and ids("updated_to=2026-11-03") == [b, a]


def test_malformed_times_and_unknown_assignees_are_422_naming_the_parameter(
    two_days: tuple[CaseService, TestClient[Any], int, int],
) -> None:
    _, c, a, b = two_days
    body = problem(c.get("/api/v1/cases?created_from=yesterday"), "created_from")
    assert "2026-12-03" in body["errors"]["created_from"]  # an example of what is accepted
    problem(c.get("/api/v1/cases?created_to=2026-13-01"), "created_to")
    problem(c.get("/api/v1/cases?updated_from=2026-11"), "updated_from")
    body = problem(c.get("/api/v1/cases?assignee=nobody-known"), "assignee")
    assert "nobody-known" in body["detail"]
    assert (
        "did you mean role:agent"
        in problem(c.get("/api/v1/cases?assignee=role:agnet"), "assignee")["detail"]
    )
    problem(c.get("/api/v1/cases?assignee=department:nowhere"), "assignee")
    # people who are members, roles and departments of the company are fine
    for known in ("li", "person:wang", "role:engineer", "department:field"):
        assert c.get(f"/api/v1/cases?assignee={known}").status_code == 200, known
    assert c.get("/api/v1/cases?assignee=role:agent").json()["total"] == 2


def test_deadlines_show_every_instant_with_the_company_offset(db: Database) -> None:
    clock = TestClock(dt.datetime(2026, 11, 2, 9, 0, tzinfo=SH))
    svc = service(db, clock=clock)  # config/: the demo company with complaint-reply
    try:
        wang, zhao = svc.actor("demo", "wang"), svc.actor("demo", "zhao")
        cid = svc.open_case("demo", "complaint-reply", wang, COMPLAINT).case.id
        svc.act("demo", cid, "confirm", wang, {"reply": "已登记"}, 1)
        clock.set(dt.datetime(2026, 11, 3, 9, 0, tzinfo=SH))
        svc.act("demo", cid, "wait_customer", wang, {"waiting_for": "照片"}, 2)
        clock.set(dt.datetime(2026, 11, 4, 9, 0, tzinfo=SH))
        svc.act("demo", cid, "customer_replied", wang, {}, 3)
        svc.act("demo", cid, "declare_special", zhao, {"special_reason": "需送检"}, 4)
        r = client(svc, "wang").get(f"/api/v1/cases/{cid}/deadlines")
        assert r.status_code == 200, r.text
        times: list[str] = []
        for d in r.json():
            times += [d[k] for k in ("started_at", "due_at", "warn_at", "stopped_at") if d[k]]
            times += [p[k] for p in d["pauses"] for k in ("from", "to") if p[k]]
            if d["extension"]:
                times.append(d["extension"]["at"])
        handling = {d["id"]: d for d in r.json()}["handling"]
        assert handling["extension"] and handling["pauses"] and handling["started_at"]
        assert times and all(t.endswith("+08:00") for t in times), times
        assert handling["started_at"] == "2026-11-02T09:00:00+08:00"
        assert handling["pauses"] == [
            {"from": "2026-11-03T09:00:00+08:00", "to": "2026-11-04T09:00:00+08:00"}
        ]
    finally:
        svc.close()


def test_journal_facts_show_instants_as_iso_8601(db: Database) -> None:
    svc = service(db, config=FIXTURES / "config-two")
    try:
        wang = svc.actor("demo", "wang")
        fields = {**OPEN_FIELDS, "occurred_at": "2026-11-01T20:30:00+08:00"}
        cid = svc.open_case("demo", "repair-desk", wang, fields).case.id
        svc.act("demo", cid, "verify", wang, VERIFY, 1)
        svc.act("demo", cid, "dispatch", wang, DISPATCH, 2)
        journal = client(svc, "wang").get(f"/api/v1/cases/{cid}/journal").json()
        assigned = next(e for e in journal if e["kind"] == "assigned")
        assert assigned["facts"]["visit_at"] == "2026-11-23T10:00:00+08:00"
        assert assigned["facts"]["occurred_at"] == "2026-11-01T20:30:00+08:00"
        assert assigned["facts"]["engineer"] == "li" and assigned["facts"]["step"]
        # the journal itself keeps what the rule engine compared
        stored = next(e for e in svc.journal("demo", cid) if e["kind"] == "assigned")
        assert isinstance(stored["facts"]["visit_at"], int)
    finally:
        svc.close()
