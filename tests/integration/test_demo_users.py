"""``kefu init --demo`` run again and again (every ``make run``): the demo logins printed the
first time keep working; ``kefu user password`` sets a new one. On SQLite and PostgreSQL.

Two companies (tests/fixtures/config-two): "wang" is named in both, the others in one.
"""

from __future__ import annotations

import re
from typing import Any

import click
import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from api.auth_cli import register
from core.cases.service import CaseService
from core.cli import cli
from core.storage.db import Database
from tests.helpers import FIXTURES, service

LOGIN = re.compile(r"^  (\w+)\s+(\S+)   ([\w, ]+)$", re.M)
pytestmark = pytest.mark.service(config=FIXTURES / "config-two")


@pytest.fixture
def kefu(db: Database) -> Any:
    """``kefu(*args, input=None)``: the kefu command (with the user commands) on ``db``,
    reading config/ from tests/fixtures/config-two."""
    group = click.Group("kefu", commands=dict(cli.commands))
    register(group)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        return runner.invoke(
            group,
            [*args, "--database", db.url],
            input=input,
            env={"KEFU_CONFIG_DIR": str(FIXTURES / "config-two")},
            catch_exceptions=False,
        )

    return run


def signs_in(svc: CaseService, user: str, password: str, company: str = "demo") -> bool:
    app = create_app(svc, auth=AuthSettings(cookie_secure=False))
    r = TestClient(app).post(
        "/api/v1/auth/login", json={"username": user, "password": password, "company": company}
    )
    assert r.status_code in (200, 401), r.text
    return r.status_code == 200


def test_demo_logins_are_created_once_and_keep_working(kefu: Any, db: Database) -> None:
    first = kefu("init", "--demo")
    assert first.exit_code == 0, first.output
    printed = {
        user: (password, companies) for user, password, companies in LOGIN.findall(first.output)
    }
    assert sorted(printed) == ["chen", "li", "sun", "wang", "zhao"], first.output
    # a member of two companies gets one password, printed once, that works in both
    assert first.output.count("  wang ") == 1
    assert printed["wang"][1] == "acme, demo" and printed["li"][1] == "demo"

    again = kefu("init", "--demo")
    assert again.exit_code == 0, again.output
    assert not LOGIN.findall(again.output), again.output  # no password printed again
    assert "already exist" in again.output and "chen, li, sun, wang, zhao" in again.output
    assert "kefu user password NAME" in again.output

    svc = service(db, config=FIXTURES / "config-two")
    try:
        # yesterday's logins still work after today's `make run`
        wang = printed["wang"][0]
        assert signs_in(svc, "wang", wang, "demo") and signs_in(svc, "wang", wang, "acme")
        assert signs_in(svc, "li", printed["li"][0])
    finally:
        svc.close()


def test_user_password_sets_a_new_one(kefu: Any, svc: CaseService) -> None:
    first = kefu("init", "--demo")
    old = dict((u, p) for u, p, _ in LOGIN.findall(first.output))["li"]

    r = kefu("user", "password", "li")
    assert r.exit_code == 0, r.output
    new = r.output.split("password: ")[1].strip()
    assert new and new != old
    assert not signs_in(svc, "li", old) and signs_in(svc, "li", new)

    r = kefu("user", "password", "li", "--password", "chosen one 7")
    assert r.exit_code == 0 and "password:" not in r.output
    assert signs_in(svc, "li", "chosen one 7")

    r = kefu("user", "password", "li", "--password-stdin", input="from a pipe 8\n")
    assert r.exit_code == 0 and "password:" not in r.output, r.output
    assert signs_in(svc, "li", "from a pipe 8") and not signs_in(svc, "li", "chosen one 7")

    r = kefu("user", "password", "ghost")
    assert r.exit_code == 1 and "unknown user 'ghost'" in r.output
    r = kefu("user", "password", "li", "--password", "")
    assert r.exit_code == 2 and "must not be empty" in r.output
    r = kefu("user", "password", "li", "--password", "x", "--password-stdin", input="y\n")
    assert r.exit_code == 2 and "not both" in r.output
