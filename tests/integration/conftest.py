"""Fixtures of the integration tests: the case service ``svc``, strong password hashing, and
those of the plugin tests (test_plugins.py, test_hooks.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.clock import TestClock
from core.runtime import users
from core.runtime.plugins import installed
from core.runtime.users import ensure_user
from core.storage.db import Database
from tests.helpers import PASSWORD, service
from tests.plugin_helpers import Listener, write_config


@pytest.fixture
def svc(request: pytest.FixtureRequest, db: Database) -> Iterator[CaseService]:
    """The case service on ``db`` (tests.helpers.service), closed after the test.

    A module picks what it runs with a marker, e.g.
    ``pytestmark = pytest.mark.service(config=FIXTURES / "config-two", logins=["wang"])``:
    ``rules`` and ``config`` folders (default: the checkout's), and ``logins``, people of
    the configs who get the password ``tests.helpers.PASSWORD``.
    """
    marker = request.node.get_closest_marker("service")
    options = dict(marker.kwargs) if marker is not None else {}
    logins = options.pop("logins", ())
    s = service(db, **options)
    with db.write() as conn:
        for name in logins:
            ensure_user(conn, name, name, s.clock.now(), password=PASSWORD)
    yield s
    s.close()


@pytest.fixture
def strong_passwords(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2 with the production parameters for one test (the suite hashes with the
    cheapest ones, KEFU_PASSWORD_HASH=fast): for a test that measures what hashing costs."""
    monkeypatch.setattr(users, "_hasher", PasswordHasher())
    users._dummy_hash.cache_clear()  # made again, strong
    yield
    users._dummy_hash.cache_clear()


@pytest.fixture
def example_client(db: Database, tmp_path: Path) -> Iterator[tuple[CaseService, Any]]:
    config = write_config(tmp_path, "plugins:\n  example: {settings: {warranty_months: 24}}\n")
    no_local_packs = tmp_path / "rules"
    no_local_packs.mkdir()
    # the warranty-desk pack comes from the plugin package itself (kefu_pack_dirs)
    svc = service(
        db,
        rules=no_local_packs,
        config=config,
        clock=TestClock(dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.UTC)),
    )
    with db.write() as conn:
        for name in ("amy", "ben", "vic"):
            ensure_user(conn, name, name, svc.clock.now(), password=PASSWORD)
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))

    def login(user: str) -> TestClient[Any]:
        c = TestClient(app)
        assert (
            c.post("/api/v1/auth/login", json={"username": user, "password": PASSWORD}).status_code
            == 200
        )
        return c

    yield svc, login
    svc.close()


@pytest.fixture
def listeners() -> Iterator[tuple[Listener, Listener]]:
    pm = installed().pm
    broken, good = Listener(fail=True), Listener()
    pm.register(broken, name="test-broken-listener")
    pm.register(good, name="test-listener")
    yield good, broken
    pm.unregister(name="test-listener")
    pm.unregister(name="test-broken-listener")
