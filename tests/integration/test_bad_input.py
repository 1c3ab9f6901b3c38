"""Bad input of every kind gets a 4xx problem naming what and where: never a 500.

Each class below once ended in a 500 somewhere: JSON nested a thousand deep, datetimes at
the ends of the calendar shifted by their offset, NUL characters (PostgreSQL refuses them
in text and JSONB), numbers of hundreds of digits, a version sent as a string, garbage
report parameters. Every request runs on SQLite and PostgreSQL.
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
from core.spec.definitions import FieldDef
from core.spec.fields import FieldValueError, coerce
from tests.helpers import FIXTURES, OPEN_FIELDS, PASSWORD

pytestmark = pytest.mark.service(config=FIXTURES / "config-two", logins=["wang"])


@pytest.fixture
def wang(svc: CaseService) -> Iterator[TestClient[Any]]:
    app = create_app(svc, auth=AuthSettings(cookie_secure=False, idle_timeout=dt.timedelta(days=2)))
    c = TestClient(app)
    r = c.post(
        "/api/v1/auth/login", json={"username": "wang", "password": PASSWORD, "company": "demo"}
    )
    assert r.status_code == 200, r.text
    yield c


def refused(r: Any, status: int = 422) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    assert "Traceback" not in r.text
    return dict(r.json())


def open_with(c: TestClient[Any], **fields: Any) -> Any:
    return c.post(
        "/api/v1/cases", json={"procedure": "repair-desk", "fields": {**OPEN_FIELDS, **fields}}
    )


def test_deeply_nested_json_is_a_422(wang: TestClient[Any]) -> None:
    deep = "[" * 1000 + "]" * 1000
    body = '{"procedure": "repair-desk", "fields": {"symptom": ' + deep + "}}"
    r = wang.post("/api/v1/cases", content=body, headers={"content-type": "application/json"})
    assert "nest" in refused(r)["detail"]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00+08:00", "9999-12-31T23:59-08:00"])
def test_datetimes_at_the_ends_of_the_calendar(wang: TestClient[Any], moment: str) -> None:
    assert "occurred_at" in refused(open_with(wang, occurred_at=moment))["errors"]


@pytest.mark.parametrize(
    "query", ["updated_to=9999-12-31T23:59:59-12:00", "created_from=0001-01-01T00:00+14:00"]
)
def test_extreme_query_times(wang: TestClient[Any], query: str) -> None:
    name = query.partition("=")[0]
    assert name in refused(wang.get(f"/api/v1/cases?{query}"))["detail"]


def test_garbage_report_parameters(wang: TestClient[Any]) -> None:
    assert "since" in refused(wang.get("/api/v1/reports/satisfaction?since=garbage"))["detail"]


@pytest.mark.parametrize(
    "request_",
    [
        (
            "post",
            "/api/v1/cases",
            {"procedure": "repair-desk", "fields": {**OPEN_FIELDS, "customer_name": "张\x00三"}},
        ),
        ("post", "/api/v1/cases", {"procedure": "repair\x00desk", "fields": OPEN_FIELDS}),
        ("get", "/api/v1/cases?q=ab%00cd", None),
        ("get", "/api/v1/cases?step=a%00b", None),
        ("get", "/api/v1/cases?assignee=person:a%00b", None),
        ("get", "/api/v1/cases?procedure=a%00b", None),
        ("get", "/api/v1/reports/satisfaction?procedure=a%00b", None),
        ("post", "/api/v1/auth/login", {"username": "wang\x00", "password": "x"}),
    ],
)
def test_nul_characters(wang: TestClient[Any], request_: tuple[str, str, Any]) -> None:
    method, url, body = request_
    r = getattr(wang, method)(url, **({"json": body} if body is not None else {}))
    assert "NUL" in refused(r)["detail"]


def test_a_version_must_be_a_number_not_a_string(wang: TestClient[Any]) -> None:
    cid = open_with(wang).json()["case"]["id"]
    r = wang.post(
        f"/api/v1/cases/{cid}/actions/verify", json={"expected_version": "1", "fields": {}}
    )
    assert "expected_version" in refused(r)["detail"]


def test_a_phone_number_with_a_trailing_newline(wang: TestClient[Any]) -> None:
    assert "phone" in refused(open_with(wang, phone="13912345678\n"))["errors"]


def test_numbers_beyond_64_bits_and_integers_beyond_53(wang: TestClient[Any]) -> None:
    body = '{"procedure": "repair-desk", "fields": {"symptom": ' + "9" * 401 + "}}"
    r = wang.post("/api/v1/cases", content=body, headers={"content-type": "application/json"})
    assert "64 bits" in refused(r)["detail"]
    satisfaction = FieldDef.model_validate({"type": "integer", "label": {"zh-CN": "x"}})
    with pytest.raises(FieldValueError, match="between"):
        coerce(satisfaction, 2**60)
    assert coerce(satisfaction, 2**53 - 1) == 2**53 - 1


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/api/v1/cases/1/actions/verify", {"POST"}),
        ("PUT", "/api/v1/cases", {"GET", "POST"}),
        ("GET", "/api/v1/auth/login", {"POST"}),
        ("DELETE", "/api/v1/cases/1", {"GET"}),
    ],
)
def test_a_405_says_which_methods_the_path_takes(
    wang: TestClient[Any], method: str, path: str, allowed: set[str]
) -> None:
    r = wang.request(method, path)
    refused(r, 405)
    assert allowed <= {m.strip() for m in r.headers["allow"].split(",")}
