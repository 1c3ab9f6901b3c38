"""Fixtures of the plugin tests (test_plugins.py, test_hooks.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.service import CaseService
from core.clock import TestClock
from core.runtime.plugins import installed
from core.runtime.users import ensure_user
from core.storage.db import Database
from tests.helpers import service
from tests.plugin_helpers import PASSWORD, Listener, write_config


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
