"""Shared fixtures: every storage test runs on SQLite and on PostgreSQL.

SQLite: the migrations run once per session into a template file, which each test gets
a copy of. PostgreSQL comes from KEFU_TEST_PG_URL (default: the local server, user
postgres): one database per test session (per pytest-xdist worker) is created, migrated
and dropped; tables are emptied between tests. Outside CI an unreachable PostgreSQL skips
its half; with CI=true it fails the run.

The journal's audit keyring and checkpoint file are per test process, in the temporary
directory (KEFU_AUDIT_KEYS, KEFU_AUDIT_CHECKPOINTS).

Passwords are hashed with argon2's cheapest parameters (KEFU_PASSWORD_HASH=fast, set
here before kefu is imported, inherited by the kefu processes tests start): every
fixture user costs a hash. tests/unit/test_password_hash.py checks that kefu without the
variable uses the strong defaults, and the tests that measure hashing ask for those
(the ``strong_passwords`` fixture of tests/integration/conftest.py).
"""

from __future__ import annotations

import os
import tempfile

# before kefu is imported: core/runtime/users.py reads it at import
os.environ.setdefault("KEFU_PASSWORD_HASH", "fast")
# the audit keyring and checkpoints of this test process (and the kefu processes it
# starts), never the checkout's var/: a test that checks checkpoints writes its own file
os.environ.setdefault(
    "KEFU_AUDIT_KEYS", os.path.join(tempfile.gettempdir(), f"kefu-test-audit-{os.getpid()}", "keys")
)
os.environ.setdefault(
    "KEFU_AUDIT_CHECKPOINTS",
    os.path.join(tempfile.gettempdir(), f"kefu-test-audit-{os.getpid()}", "checkpoints.jsonl"),
)

import shutil
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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty SQLite database migrated once per session, for ``db`` to copy."""
    path = tmp_path_factory.mktemp("template") / "kefu.db"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()  # the last connection closing checkpoints the WAL into the file
    # a copy is only whole if the file holds everything: no WAL beside it
    assert not path.with_name("kefu.db-wal").exists()
    return path


@pytest.fixture(params=["sqlite", pytest.param("pg", marks=pytest.mark.pg)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: SQLite file or PostgreSQL."""
    if request.param == "sqlite":
        # copied to a path of this test's own (no stale -wal/-shm beside it to replay)
        path = tmp_path / "kefu.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
    else:
        database = Database(request.getfixturevalue("pg_url"))
        pg.empty(database)
    yield database
    database.dispose()


@pytest.fixture(params=["durable", "reference"])
def evaluator_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)
