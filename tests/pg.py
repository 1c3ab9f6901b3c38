"""One PostgreSQL test database per pytest session, shared by tests/ and rules/ scenarios.

The database is created on first use (``KEFU_TEST_PG_URL`` names the server, default the
local one, user postgres) and dropped when the session ends. Outside CI an unreachable
server skips the PostgreSQL half; with ``CI=true`` it fails the run. Tables are emptied
between tests with :func:`truncate`.
"""

from __future__ import annotations

import contextlib
import os

import pytest
from sqlalchemy import text

from core.storage.db import Database
from core.storage.migrate import upgrade
from core.storage.schema import metadata
from core.testing.scenarios import temporary_pg_database

PG_ADMIN_URL = os.environ.get(
    "KEFU_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

_URL = pytest.StashKey[str]()
_FAILED = pytest.StashKey[str]()


def unavailable(reason: str) -> None:
    """Skip (locally) or fail (in CI) the current test: PostgreSQL cannot be reached."""
    if IN_CI:
        pytest.fail(f"PostgreSQL is required in CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {reason}")


def session_url(config: pytest.Config) -> str:
    """The session's migrated PostgreSQL test database (created on first call)."""
    if _URL in config.stash:
        return config.stash[_URL]
    if _FAILED in config.stash:  # do not wait for a dead server once per test
        unavailable(config.stash[_FAILED])
    stack = contextlib.ExitStack()
    try:
        url = stack.enter_context(temporary_pg_database(PG_ADMIN_URL, prefix="kefu_test"))
    except Exception as exc:  # any connection problem
        stack.close()
        config.stash[_FAILED] = str(exc).splitlines()[0]
        unavailable(config.stash[_FAILED])
    config.add_cleanup(stack.close)
    db = Database(url)
    try:
        upgrade(db)
    finally:
        db.dispose()
    config.stash[_URL] = url
    return url


def truncate(db: Database) -> None:
    """Empty every table (identities restart), so each test starts from nothing."""
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


def fresh(config: pytest.Config) -> Database:
    """An empty, migrated PostgreSQL database for one test (dispose it afterwards)."""
    db = Database(session_url(config))
    truncate(db)
    return db
