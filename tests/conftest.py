"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

PostgreSQL comes from KEFU_TEST_PG_URL (default: the local server, user postgres). One
database per test session is created and dropped; tables are emptied between tests.
Outside CI an unreachable PostgreSQL skips its half; with CI=true it fails the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.storage.db import Database
from core.storage.migrate import upgrade
from tests import pg

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = pg.PG_ADMIN_URL
IN_CI = pg.IN_CI


@pytest.fixture(scope="session")
def pg_url(pytestconfig: pytest.Config) -> str:
    """The session's PostgreSQL test database (shared with the scenario items of rules/)."""
    return pg.session_url(pytestconfig)


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'kefu.db'}")
        upgrade(database)
    else:
        database = Database(request.getfixturevalue("pg_url"))
        pg.truncate(database)
    yield database
    database.dispose()


@pytest.fixture(params=["durable", "reference"])
def evaluator_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
