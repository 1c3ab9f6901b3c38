"""The REST API as staff and integrations use it, on SQLite and PostgreSQL.

Two companies (demo and acme, tests/fixtures/config-two); "wang" belongs to both, "sun"
only to acme, "nobody" is a demo member without any role. Every route is tried as a user
of the other company (404, never revealing the case) and as a user without the role (403).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.runtime.users import ensure_user, set_membership
from tests.helpers import CARD, DISPATCH, FIXTURES, OPEN_FIELDS, PASSWORD, VERIFY

Client = Callable[..., TestClient[Any]]
pytestmark = pytest.mark.service(
    config=FIXTURES / "config-two", logins=["wang", "li", "chen", "zhao", "sun"]
)


@pytest.fixture
def client(svc: CaseService) -> Iterator[Client]:
    with svc.db.write() as conn:
        uid = ensure_user(conn, "nobody", "No Roles", svc.clock.now(), password=PASSWORD)
        set_membership(conn, uid, svc.company("demo").id, [], [])
    # a long idle timeout: some tests move the clock by hours (expiry is test_auth's job)
    app = create_app(svc, auth=AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=2)))

    def make(user: str | None = None, company: str | None = None) -> TestClient[Any]:
        # one client per person (each keeps its own cookie); the app's lifespan is not
        # needed, and several clients entering it on one app hang on exit
        c = TestClient(app)
        if user is not None:
            body = {"username": user, "password": PASSWORD}
            if company:
                body["company"] = company
            r = c.post("/api/v1/auth/login", json=body)
            assert r.status_code == 200, r.text
        return c

    yield make


def problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["status"] == status and body["type"] == f"urn:kefu:problem:{code}", body
    assert "Traceback" not in r.text
    return dict(body)


def open_case(c: TestClient[Any], **fields: Any) -> dict[str, Any]:
    r = c.post(
        "/api/v1/cases", json={"procedure": "repair-desk", "fields": {**OPEN_FIELDS, **fields}}
    )
    assert r.status_code == 201, r.text
    return dict(r.json()["case"])


def act(
    c: TestClient[Any], case: dict[str, Any], action: str, fields: dict[str, Any]
) -> dict[str, Any]:
    r = c.post(
        f"/api/v1/cases/{case['id']}/actions/{action}",
        json={"fields": fields, "expected_version": case["version"]},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


# -- the whole walk ----------------------------------------------------------------------


def test_walk_a_repair_case_to_its_end_and_read_the_journal(client: Client) -> None:
    wang, li = client("wang", "demo"), client("li")
    procs = wang.get("/api/v1/procedures").json()
    assert [p["key"] for p in procs] == ["repair-desk"]
    open_form = {f["name"]: f for f in procs[0]["open_form"]}
    assert open_form["channel"]["required"] and open_form["channel"]["label"]["zh-CN"] == "报修方式"
    assert {c["value"] for c in open_form["channel"]["choices"]} >= {"phone", "web"}
    assert not open_form["email"]["required"]

    case = open_case(wang)
    assert case["number"].startswith("BX-") and case["step"] == "intake" and case["version"] == 1
    actions = wang.get(f"/api/v1/cases/{case['id']}/actions").json()
    assert {a["name"] for a in actions} == {"verify", "cancel"}
    verify_form = {
        f["name"]: f["required"] for f in next(a for a in actions if a["name"] == "verify")["form"]
    }
    assert verify_form["in_scope"] and not verify_form["equipment_verified"]

    case = act(wang, case, "verify", VERIFY)["case"]
    out = act(wang, case, "dispatch", DISPATCH)
    case = out["case"]
    assert out["fired"] == ["engineer-assigned"] and case["assignees"] == ["person:li"]
    assert [c["id"] for c in li.get("/api/v1/inbox").json()["items"]] == [case["id"]]
    case = act(
        li, case, "complete", {"hours_spent": 1.5, "result": "更换压缩机电容", "resolved": True}
    )["case"]
    # under warranty: the card goes back to the office and is entered before the callback
    assert case["step"] == "card" and case["assignees"] == ["person:li"]
    case = act(li, case, "return_card", CARD)["case"]
    case = act(client("zhao"), case, "approve_card", {"card_audit_note": "已录入"})["case"]
    assert case["step"] == "confirm"
    case = act(wang, case, "confirm", {"customer_confirmed": True})["case"]
    case = act(wang, case, "record_survey", {"survey_channel": "phone", "satisfaction": 5})["case"]
    out = act(wang, case, "close", {"care_note": "客户满意"})
    assert out["case"]["status"] == "closed" and out["case"]["step"] == "closed"
    assert out["fired"] == ["thank-customer"]
    assert wang.get(f"/api/v1/cases/{case['id']}/actions").json() == []

    journal = li.get(f"/api/v1/cases/{case['id']}/journal").json()
    kinds = [(e["kind"], e["action"], e["actor"]) for e in journal]
    assert kinds[0] == ("opened", None, "wang")
    assert ("action", "complete", "li") in kinds and kinds[-1][0] == "closed"
    assigned = next(e for e in journal if e["kind"] == "assigned")
    assert assigned["rule_id"] == "engineer-assigned" and assigned["facts"]["engineer"] == "li"
    assert [e["seq"] for e in journal] == sorted(e["seq"] for e in journal)


# -- errors as problem details -----------------------------------------------------------


def test_form_errors_unknown_keys_and_malformed_bodies_are_422_naming_the_field(
    client: Client,
) -> None:
    wang = client("wang", "demo")
    body = problem(
        wang.post("/api/v1/cases", json={"procedure": "repair-desk", "fields": {"channel": "fax"}}),
        422,
        "invalid-input",
    )
    assert {"channel", "customer_name", "phone", "symptom"} <= set(body["errors"])
    body = problem(
        wang.post("/api/v1/cases", json={"procedure": "repair-desk", "feilds": {}}),
        422,
        "malformed-request",
    )
    assert "feilds" in body["detail"]
    problem(
        wang.post(
            "/api/v1/cases", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "malformed-request",
    )
    case = open_case(wang)
    body = problem(
        wang.post(
            f"/api/v1/cases/{case['id']}/actions/verify",
            json={"fields": {"in_scope": "maybe"}, "expected_version": 1},
        ),
        422,
        "invalid-input",
    )
    assert "in_scope" in body["errors"] and "urgency" in body["errors"]
    body = problem(
        wang.post(f"/api/v1/cases/{case['id']}/actions/verify", json={"fields": {}}),
        422,
        "malformed-request",
    )
    assert "expected_version" in body["detail"]
    problem(wang.get("/api/v1/cases?limit=0"), 422, "malformed-request")
    problem(wang.get("/api/v1/cases?status=half-open"), 422, "malformed-request")
    assert wang.get(f"/api/v1/cases/{case['id']}").json()["version"] == 1  # nothing written


def test_stale_version_is_409_with_the_current_version(client: Client) -> None:
    wang = client("wang", "demo")
    case = open_case(wang)
    act(wang, case, "verify", VERIFY)
    body = problem(
        wang.post(
            f"/api/v1/cases/{case['id']}/actions/cancel",
            json={"fields": {"cancel_reason": "x"}, "expected_version": 1},
        ),
        409,
        "stale-version",
    )
    assert body["current_version"] == 2
    # the action of a step the case has left is a conflict too, not a silent no-op
    problem(
        wang.post(
            f"/api/v1/cases/{case['id']}/actions/verify",
            json={"fields": VERIFY, "expected_version": 2},
        ),
        409,
        "action-unavailable",
    )


def test_a_rule_refusal_is_422_with_its_message_and_rule_id(client: Client) -> None:
    wang = client("wang", "demo")
    case = open_case(wang)
    body = problem(
        wang.post(
            f"/api/v1/cases/{case['id']}/actions/verify",
            json={"fields": {**VERIFY, "in_scope": False}, "expected_version": 1},
        ),
        422,
        "refused-by-rule",
    )
    assert body["rule"] == "out-of-scope-needs-reason" and "不受理原因" in body["detail"]
    assert wang.get(f"/api/v1/cases/{case['id']}/journal").json()[-1]["kind"] == "opened"


def test_unknown_routes_and_cases_are_404_problems(client: Client) -> None:
    wang = client("wang", "demo")
    problem(wang.get("/api/v1/cases/999999"), 404, "not-found")
    problem(wang.get("/api/v1/nothing-here"), 404, "not-found")
    problem(wang.get("/api/v1/procedures/complaints"), 404, "not-found")
    problem(
        wang.post("/api/v1/cases", json={"procedure": "complaints", "fields": {}}), 404, "not-found"
    )


# -- the cross-company and no-role matrix ------------------------------------------------


def _routes(case_id: int) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/api/v1/cases/{case_id}", None),
        ("GET", f"/api/v1/cases/{case_id}/actions", None),
        ("GET", f"/api/v1/cases/{case_id}/journal", None),
        (
            "POST",
            f"/api/v1/cases/{case_id}/actions/verify",
            {"fields": VERIFY, "expected_version": 1},
        ),
    ]


def test_another_companys_case_is_not_found_on_every_route(client: Client) -> None:
    case = open_case(client("wang", "demo"))
    sun = client("sun")
    wang_at_acme = client("wang", "acme")
    for who in (sun, wang_at_acme):
        for method, path, body in _routes(case["id"]):
            problem(who.request(method, path, json=body), 404, "not-found")
        listed = who.get("/api/v1/cases").json()
        assert listed["total"] == 0 and listed["items"] == []
        assert who.get(f"/api/v1/cases?q={case['number']}").json()["total"] == 0
        assert who.get("/api/v1/inbox").json()["items"] == []
    # the acme copy of repair-desk is acme's own: its cases get acme numbers
    acme_case = open_case(sun)
    assert acme_case["number"].startswith("AC") and acme_case["id"] != case["id"]
    assert [c["id"] for c in client("wang", "demo").get("/api/v1/cases").json()["items"]] == [
        case["id"]
    ]


def test_a_member_without_the_role_is_forbidden_on_every_route(client: Client) -> None:
    case = open_case(client("wang", "demo"))
    nobody, li = client("nobody"), client("li")
    for method, path, body in _routes(case["id"]):
        problem(nobody.request(method, path, json=body), 403, "not-allowed")
    assert nobody.get("/api/v1/procedures").json() == []
    problem(nobody.get("/api/v1/procedures/repair-desk"), 403, "not-allowed")
    problem(nobody.get("/api/v1/cases?procedure=repair-desk"), 403, "not-allowed")
    assert nobody.get("/api/v1/cases").json()["total"] == 0
    assert nobody.get("/api/v1/inbox").json()["total"] == 0
    problem(
        nobody.post("/api/v1/cases", json={"procedure": "repair-desk", "fields": OPEN_FIELDS}),
        403,
        "not-allowed",
    )
    # an engineer reads the case but may not verify it or open cases
    assert li.get(f"/api/v1/cases/{case['id']}").status_code == 200
    assert li.get(f"/api/v1/cases/{case['id']}/actions").json() == []
    body = problem(
        li.post(
            f"/api/v1/cases/{case['id']}/actions/verify",
            json={"fields": VERIFY, "expected_version": 1},
        ),
        403,
        "not-allowed",
    )
    assert body["roles"] == ["agent"]
    problem(
        li.post("/api/v1/cases", json={"procedure": "repair-desk", "fields": OPEN_FIELDS}),
        403,
        "not-allowed",
    )


def test_every_route_needs_credentials(client: Client) -> None:
    anon = client()
    for method, path, body in [
        ("GET", "/api/v1/procedures", None),
        ("GET", "/api/v1/procedures/repair-desk", None),
        ("GET", "/api/v1/cases", None),
        ("POST", "/api/v1/cases", {"procedure": "x"}),
        ("GET", "/api/v1/inbox", None),
        *_routes(1),
    ]:
        problem(anon.request(method, path, json=body), 401, "not-authenticated")
    assert anon.get("/health").json() == {"status": "ok"}


# -- lists, filters, inbox -----------------------------------------------------------------


def test_list_filters_and_pagination(client: Client, svc: CaseService) -> None:
    wang = client("wang", "demo")
    a = open_case(wang, customer_name="张三")
    b = open_case(wang, customer_name="李四", symptom="热水器漏水")
    svc.clock.advance(__import__("datetime").timedelta(hours=2))
    c = open_case(wang, customer_name="王五")
    act(wang, b, "verify", VERIFY)
    act(wang, c, "cancel", {"cancel_reason": "客户撤回"})

    def ids(query: str) -> list[int]:
        r = wang.get(f"/api/v1/cases?{query}")
        assert r.status_code == 200, r.text
        return [x["id"] for x in r.json()["items"]]

    assert ids("") == [c["id"], b["id"], a["id"]]  # newest first
    assert ids("status=closed") == [c["id"]]
    assert ids("step=dispatch") == [b["id"]]
    assert ids("q=漏水") == [b["id"]]
    assert ids("q=张三") == [a["id"]]
    assert ids(f"q={a['number'].lower()}") == [a["id"]]
    assert ids("q=水器漏") == [b["id"]]  # any part of a word, Chinese included
    assert ids("q=漏电") == []  # the pairs must follow each other: 漏 and 电 apart is no match
    assert ids("q=李四 热水") == [b["id"]]  # several words: all of them
    problem(wang.get("/api/v1/cases?q=漏"), 422, "invalid-input")  # one character: too short
    assert ids("procedure=repair-desk&status=open") == [b["id"], a["id"]]
    assert ids("assignee=role:agent&status=open") == [b["id"], a["id"]]
    created_c = c["created_at"].replace("+00:00", "Z")
    assert ids(f"created_from={created_c}") == [c["id"]]
    assert ids(f"created_to={created_c}") == [b["id"], a["id"]]
    page = wang.get("/api/v1/cases?limit=2&offset=2").json()
    assert page["total"] == 3 and [x["id"] for x in page["items"]] == [a["id"]]
    # keyset: the next page starts after the first one's `next`, and the last has none
    first = wang.get("/api/v1/cases?limit=2").json()
    assert [x["id"] for x in first["items"]] == [c["id"], b["id"]] and first["next"]
    rest = wang.get("/api/v1/cases", params={"limit": 2, "after": first["next"]}).json()
    assert [x["id"] for x in rest["items"]] == [a["id"]] and rest["next"] is None
    assert rest["total"] == 3  # the whole list's count, not what is left
    # and back: the page before the second ends at its `previous`; the first has none
    assert first["previous"] is None and rest["previous"]
    back = wang.get("/api/v1/cases", params={"limit": 2, "before": rest["previous"]}).json()
    assert [x["id"] for x in back["items"]] == [c["id"], b["id"]] and back["previous"] is None
    bad = problem(wang.get("/api/v1/cases?after=made-up"), 422, "invalid-input")
    assert "after" in bad["errors"] and "after" in bad["detail"]
    bad = problem(wang.get("/api/v1/cases?before=made-up"), 422, "invalid-input")
    assert "before" in bad["errors"] and "previous" in bad["detail"]
    both = {"after": first["next"], "before": rest["previous"]}
    bad = problem(wang.get("/api/v1/cases", params=both), 422, "invalid-input")
    assert "before" in bad["errors"]
    problem(wang.get("/api/v1/inbox", params={"before": rest["previous"]}), 422, "invalid-input")
    inbox_next = wang.get("/api/v1/inbox?limit=1").json()["next"]
    assert inbox_next
    problem(wang.get("/api/v1/cases", params={"after": inbox_next}), 422, "invalid-input")
    assert ids("mine=true&status=open") == [b["id"], a["id"]]


def test_inbox_holds_cases_waiting_on_me_or_my_roles_oldest_first(
    client: Client, svc: CaseService
) -> None:
    import datetime as dt

    wang, li, chen, zhao = client("wang", "demo"), client("li"), client("chen"), client("zhao")
    first = open_case(wang)
    svc.clock.advance(dt.timedelta(minutes=5))
    second = open_case(wang)
    assert [x["id"] for x in wang.get("/api/v1/inbox").json()["items"]] == [
        first["id"],
        second["id"],
    ]
    assert li.get("/api/v1/inbox").json()["total"] == 0
    v = act(wang, first, "verify", VERIFY)["case"]
    act(wang, v, "dispatch", {**DISPATCH, "engineer": "chen"})
    assert [x["id"] for x in chen.get("/api/v1/inbox").json()["items"]] == [first["id"]]
    assert li.get("/api/v1/inbox").json()["total"] == 0
    assert [x["id"] for x in wang.get("/api/v1/inbox").json()["items"]] == [second["id"]]
    assert (
        zhao.get("/api/v1/inbox").json()["total"] == 1
    )  # zhao is in the service department (agents)


def test_openapi_schema_lists_every_route_with_an_operation_id(client: Client) -> None:
    anon = client()
    spec = anon.get("/schema/openapi.json").json()
    ops = {
        op["operationId"]
        for path in spec["paths"].values()
        for op in path.values()
        if "operationId" in op
    }
    assert {
        "listProcedures",
        "getProcedure",
        "openCase",
        "listCases",
        "getCase",
        "listCaseActions",
        "takeAction",
        "getCaseJournal",
        "getInbox",
    } <= ops
    assert anon.get("/schema").status_code == 200
