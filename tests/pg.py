"""One PostgreSQL test database per pytest session, shared by tests/ and rules/ scenarios.

The database is created on first use (``KEFU_TEST_PG_URL`` names the server, default the
local one, user postgres) and dropped when the session ends. Outside CI an unreachable
server skips the PostgreSQL half; with ``CI=true`` it fails the run. Tables are emptied
between tests with :func:`empty`. Under pytest-xdist each worker process is a session of
its own, so each gets its own database.
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
        worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, … under pytest-xdist
        prefix = f"kefu_test_{worker}" if worker else "kefu_test"
        url = stack.enter_context(temporary_pg_database(PG_ADMIN_URL, prefix=prefix))
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


_EMPTY_SQL: dict[str, str] = {}


def empty(db: Database) -> None:
    """Empty every table and restart the id sequences, so each test starts from nothing.

    DELETE in dependency order rather than TRUNCATE: with the few rows a test leaves it
    takes a fifth of the time (TRUNCATE gives each of the tables new files).
    """
    with db.engine.begin() as conn:
        if db.url not in _EMPTY_SQL:
            sequences = conn.execute(
                text(
                    "SELECT sequence_name FROM information_schema.sequences"
                    " WHERE sequence_schema = current_schema()"
                )
            ).scalars()
            _EMPTY_SQL[db.url] = "; ".join(
                [f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables)]
                + [f'ALTER SEQUENCE "{name}" RESTART' for name in sorted(sequences)]
            )
        conn.exec_driver_sql(_EMPTY_SQL[db.url])


def fresh(config: pytest.Config) -> Database:
    """An empty, migrated PostgreSQL database for one test (dispose it afterwards)."""
    db = Database(session_url(config))
    empty(db)
    return db
