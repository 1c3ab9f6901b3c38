"""Property-based run of schemathesis against the API's own OpenAPI document.

Every operation gets generated requests (valid and invalid) as a signed-in agent of the
demo company with a few real cases in the database. Checks: no 5xx, every response
matches its documented schema, status code and content type. The number of examples
run is printed (``-s``) and recorded in the issue note.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.auth import AuthSettings
from core.clock import TestClock
from core.runtime.users import ensure_user
from core.storage.db import Database
from core.storage.migrate import upgrade
from tests.helpers import OPEN_FIELDS, VERIFY, service

PASSWORD = "schemathesis pw"
EXAMPLES: dict[str, int] = {}


@pytest.fixture(scope="module")
def app_and_cookie(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    db = Database(f"sqlite:///{Path(tmp_path_factory.mktemp('st')) / 'kefu.db'}")
    upgrade(db)
    svc = service(db, clock=TestClock())
    with db.write() as conn:
        ensure_user(conn, "wang", "wang", svc.clock.now(), password=PASSWORD)
    wang = svc.actor("demo", "wang")
    for i in range(3):
        cid = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
        if i:
            svc.act("demo", cid, "verify", wang, VERIFY, 1)
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))
    with TestClient(app) as c:
        r = c.post("/api/v1/auth/login", json={"username": "wang", "password": PASSWORD})
        assert r.status_code == 200, r.text
        cookie = r.cookies.get("kefu_session")
        assert cookie
    yield app, cookie
    svc.close()
    total = sum(EXAMPLES.values())
    print(f"\nschemathesis: {total} examples over {len(EXAMPLES)} operations: {EXAMPLES}")


# the login/logout routes would sign the test's own session out or lock its user
SKIP = {"/api/v1/auth/logout", "/api/v1/auth/login"}


def exercise(operation: Any, cookie: str) -> None:
    """Run one operation's generated requests through every check."""
    key = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy())
    @settings(
        max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def run(case: Any) -> None:
        EXAMPLES[key] = EXAMPLES.get(key, 0) + 1
        case.call_and_validate(
            headers={"Cookie": f"kefu_session={cookie}"},
            checks=[
                not_a_server_error,
                response_schema_conformance,
                status_code_conformance,
                content_type_conformance,
            ],
        )

    run()


@pytest.mark.slow  # every route with generated requests
def test_the_api_never_fails_and_keeps_its_schema(app_and_cookie: tuple[Any, str]) -> None:
    # Drives each operation's hypothesis strategy directly: schemathesis' pytest
    # integration (``from_fixture``) does not run under pytest 9.
    app, cookie = app_and_cookie
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue
        try:
            exercise(operation, cookie)
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(EXAMPLES) >= 8, EXAMPLES  # every route was exercised
