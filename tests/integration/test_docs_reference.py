"""What a newcomer looks up is there: README's command table names every ``kefu`` command,
and docs/api.md's error table every problem the API answers with (a too large body
included, tried against the app)."""

from __future__ import annotations

import re
from pathlib import Path

import click
from litestar.testing import TestClient

import api.plugin
from api.app import MAX_BODY, create_app
from api.auth import AuthSettings
from core.cli import cli
from core.errors import KefuError
from core.storage.db import Database
from core.storage.migrate import upgrade
from tests.helpers import FIXTURES, service

ROOT = Path(__file__).resolve().parents[2]


def section(doc: str, heading: str) -> str:
    text = (ROOT / doc).read_text(encoding="utf-8")
    return text.split(heading, 1)[1].split("\n## ", 1)[0]


def kefu_commands() -> list[str]:
    """Every command of ``kefu`` (the core's and the API plugin's), groups by subcommand."""
    group = click.Group("kefu", commands=dict(cli.commands))
    api.plugin.kefu_cli_commands(cli=group)
    found: list[str] = []

    def walk(cmd: click.Command, path: str) -> None:
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                walk(sub, f"{path} {name}")
        else:
            found.append(path)

    for name, cmd in group.commands.items():
        walk(cmd, f"kefu {name}")
    return sorted(found)


def test_the_readme_names_every_kefu_command() -> None:
    table = section("README.md", "## The `kefu` command")
    commands = kefu_commands()
    assert {"kefu user add", "kefu user password", "kefu token create"} <= set(commands)
    missing = [c for c in commands if f"`{c}" not in table]
    assert missing == [], f"README's command table lacks {missing}"


def documented_problems() -> set[tuple[int, str]]:
    table = section("docs/api.md", "## Errors")
    return {
        (int(status), code)
        for status, code in re.findall(
            r"^\|\s*(\d{3})\s*\|\s*`urn:kefu:problem:([a-z-]+)`", table, re.M
        )
    }


def subclasses(cls: type) -> list[type]:
    return [c for sub in cls.__subclasses__() for c in (sub, *subclasses(sub))]


def test_the_api_error_table_has_every_problem(tmp_path: Path) -> None:
    documented = documented_problems()
    # the errors of the case service and of signing in (the app imports every module)
    raised = {(c.status, c.code) for c in subclasses(KefuError)}
    assert (401, "not-authenticated") in raised and (423, "locked") in raised
    missing = raised - documented
    assert not missing, f"docs/api.md's error table lacks {sorted(missing)}"

    # answers the web layer gives before a route runs: a body over the limit
    db = Database(f"sqlite:///{tmp_path / 'kefu.db'}")
    upgrade(db)
    svc = service(db, config=FIXTURES / "config-two")
    try:
        c = TestClient(create_app(svc, auth=AuthSettings(cookie_secure=False)))
        big = b"[" + b"0," * (MAX_BODY // 2) + b"0]"
        r = c.post("/api/v1/auth/login", content=big, headers={"content-type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"].startswith(
            "application/problem+json"
        )
        status, code = r.json()["status"], r.json()["type"].rsplit(":", 1)[1]
        assert (status, code) in documented, f"docs/api.md's error table lacks {status} {code}"
        r = c.delete("/api/v1/auth/login")
        assert (r.status_code, r.json()["type"].rsplit(":", 1)[1]) in documented
    finally:
        svc.close()
        db.dispose()
