"""A hostile run of schemathesis on SQLite and PostgreSQL: zero server errors is the bar.

Every operation of the OpenAPI document gets negative requests (what the schema forbids)
and positive ones with a hostile value planted in the body, a query parameter or a path
parameter: NUL characters, datetimes at the ends of the calendar with offsets that push
them over, numbers of hundreds of digits, ``-0.0``, JSON nested far deeper than any form,
garbage dates. Each answer must be below 500 and, when refused, a problem document. The
number of requests per class is printed (``-s``).
"""

from __future__ import annotations

import copy
import datetime as dt
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis import GenerationMode

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from tests.helpers import FIXTURES, OPEN_FIELDS, PASSWORD, VERIFY

pytestmark = [
    pytest.mark.slow,
    pytest.mark.service(config=FIXTURES / "config-two", logins=["wang"]),
]


def nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


HOSTILE: dict[str, Any] = {
    "nul": "ab\x00cd",
    "nul-only": "\x00",
    "date-min-east": "0001-01-01T00:00+14:00",
    "date-max-west": "9999-12-31T23:59:59-12:00",
    "date-max": "9999-12-31",
    "garbage-date": "garbage",
    "huge-int": 10**400,
    "huge-negative": -(10**40),
    "big-float": 1e308,
    "negative-zero": -0.0,
    "huge-int-text": "9" * 401,
    "deep": nested(200),
    "long-text": "长" * 100_000,
}
FIELDS = [*OPEN_FIELDS, "occurred_at", "visit_at", "hours_spent", "satisfaction", "procedure"]
SENT: Counter[str] = Counter()


@pytest.fixture
def app_and_cookie(svc: CaseService) -> Iterator[tuple[Any, str]]:
    SENT.clear()
    wang = svc.actor("demo", "wang")
    for i in range(2):
        cid = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
        if i:
            svc.act("demo", cid, "verify", wang, VERIFY, 1)
    app = create_app(
        svc,
        auth=AuthSettings(
            cookie_secure=False, idle_timeout=dt.timedelta(days=9), failure_delay=dt.timedelta(0)
        ),
    )
    with TestClient(app) as c:
        r = c.post(
            "/api/v1/auth/login", json={"username": "wang", "password": PASSWORD, "company": "demo"}
        )
        assert r.status_code == 200, r.text
        cookie = r.cookies.get("kefu_session")
    yield app, str(cookie)
    print(f"\nhostile run: {sum(SENT.values())} requests: {dict(sorted(SENT.items()))}")


# a request each operation would accept, so the planted value gets past the first check
BODIES: dict[str, Any] = {
    "login": {"username": "ghost", "password": "x"},
    "openCase": {"procedure": "repair-desk", "fields": OPEN_FIELDS},
    "takeAction": {"expected_version": 1, "fields": VERIFY},
}
PATHS = {"case_id": 1, "action": "verify", "key": "repair-desk", "name": "satisfaction"}
EXTRA_QUERY = {"runReport": ["since", "until", "procedure"]}


def plant(case: Any, where: str, name: str, field: str) -> None:
    """Give ``case`` an acceptable request, then put the hostile value ``name`` into its
    body (a form field or a top-level key), one query parameter or one path parameter."""
    op = case.operation
    op_id = op.definition.raw.get("operationId", "")
    value = HOSTILE[name]
    case.path_parameters = {p.name: PATHS.get(p.name, 1) for p in op.path_parameters}
    if op_id in BODIES:
        case.body = copy.deepcopy(BODIES[op_id])
    query = [p.name for p in op.query] + EXTRA_QUERY.get(op_id, [])
    if where == "body" and isinstance(case.body, dict):
        if "fields" in case.body:
            case.body["fields"][field] = value
        else:
            case.body[sorted(case.body)[hash(field) % len(case.body)]] = value
    elif where == "query" and query:
        case.query = {query[hash(field) % len(query)]: str(value)[:5000]}
    elif where == "path" and case.path_parameters:
        names = sorted(case.path_parameters)
        case.path_parameters[names[hash(field) % len(names)]] = str(value)[:500]


def run_operation(operation: Any, cookie: str, failures: list[str]) -> None:
    key = f"{operation.method.upper()} {operation.path}"

    def check(case: Any, label: str) -> None:
        try:
            response = case.call(headers={"Cookie": f"kefu_session={cookie}"})
        except ValueError:  # a URL the HTTP client itself refuses to send
            SENT["unsendable"] += 1
            return
        SENT[label] += 1
        if response.status_code >= 500:
            failures.append(f"{key} [{label}] {response.status_code}: {response.text[:300]}")
        elif response.status_code >= 400:
            kind = response.headers.get("content-type")
            kind = kind[0] if isinstance(kind, list) else kind
            assert str(kind).startswith("application/problem+json"), (key, kind)

    @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def negative(case: Any) -> None:
        check(case, "negative")

    @given(
        case=operation.as_strategy(),
        where=st.sampled_from(["body", "query", "path"]),
        name=st.sampled_from(sorted(HOSTILE)),
        field=st.sampled_from(FIELDS),
    )
    @settings(
        max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def hostile(case: Any, where: str, name: str, field: str) -> None:
        plant(case, where, name, field)
        check(case, name)

    negative()
    hostile()


def test_no_server_error_on_hostile_input(app_and_cookie: tuple[Any, str]) -> None:
    app, cookie = app_and_cookie
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path == "/api/v1/auth/logout":
            continue  # it would end the run's own session
        run_operation(operation, cookie, failures)
    assert not failures, f"{len(failures)} server errors:\n" + "\n".join(failures[:30])
