"""``GET /api/v1/me`` shows the roles a person holds, not only those given to them directly:
per procedure, each role with where it comes from. On SQLite and PostgreSQL.

tests/fixtures/config-two: in demo, agents are the service department, engineers the field
department, and the config names zhao as supervisor; wang is in service (demo) and desk
(acme, where desk holds every role).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.runtime.users import ensure_user, set_membership
from core.storage.db import Database
from tests.helpers import FIXTURES, service

PASSWORD = "correct horse 1"


@pytest.fixture
def me(db: Database) -> Iterator[Any]:
    """``me(user, company)``: the user's ``GET /api/v1/me`` answer."""
    svc: CaseService = service(db, config=FIXTURES / "config-two")
    with db.write() as conn:
        now = svc.clock.now()
        for name in ("wang", "zhao"):
            ensure_user(conn, name, name, now, password=PASSWORD)
        # a role given directly (kefu user add --role), next to a department's
        zhou = ensure_user(conn, "zhou", "周杰", now, password=PASSWORD)
        set_membership(conn, zhou, svc.company("demo").id, ["field"], ["supervisor"])
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))

    def get(user: str, company: str = "demo") -> dict[str, Any]:
        c = TestClient(app)
        r = c.post(
            "/api/v1/auth/login",
            json={"username": user, "password": PASSWORD, "company": company},
        )
        assert r.status_code == 200, r.text
        r = c.get("/api/v1/me")
        assert r.status_code == 200, r.text
        return dict(r.json())

    yield get
    svc.close()


def roles_in(body: dict[str, Any], procedure: str) -> dict[str, list[dict[str, Any]]]:
    [proc] = [p for p in body["procedures"] if p["procedure"] == procedure]
    return {r["role"]: r["via"] for r in proc["roles"]}


def test_an_agent_through_a_department_sees_the_role_and_why(me: Any) -> None:
    wang = me("wang")
    assert wang["departments"] == ["service"] and wang["direct_roles"] == []
    assert wang["roles"] == ["agent"]  # was [] although wang works every agent step
    assert roles_in(wang, "repair-desk") == {"agent": [{"kind": "department", "name": "service"}]}
    [agent] = wang["procedures"][0]["roles"]
    assert agent["label"]["en"] == "Service agent"


def test_a_person_named_in_the_config_and_a_direct_role(me: Any) -> None:
    zhao = me("zhao")
    assert zhao["roles"] == ["agent", "service_admin", "supervisor"]
    assert roles_in(zhao, "repair-desk") == {
        "agent": [{"kind": "department", "name": "service"}],
        "service_admin": [{"kind": "person", "name": "zhao"}],
        "supervisor": [{"kind": "person", "name": "zhao"}],
    }
    zhou = me("zhou")
    assert zhou["direct_roles"] == ["supervisor"] and zhou["roles"] == ["engineer", "supervisor"]
    assert roles_in(zhou, "repair-desk") == {
        "engineer": [{"kind": "department", "name": "field"}],
        "supervisor": [{"kind": "direct", "name": None}],
    }


def test_roles_are_those_of_the_company_the_request_acts_in(me: Any) -> None:
    acme = me("wang", "acme")
    assert acme["company"] == "acme" and acme["departments"] == ["desk"]
    assert acme["roles"] == ["agent", "engineer", "supervisor"]
    assert all(
        via == [{"kind": "department", "name": "desk"}]
        for via in roles_in(acme, "repair-desk").values()
    )
