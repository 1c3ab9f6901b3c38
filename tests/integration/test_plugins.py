"""Plugins from the outside: the kefu-example package end to end through the API, broken
plugins named at start-up, company plugin settings, lifecycle events after commit."""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import create_app
from api.auth import AuthSettings
from core.cases.events import CaseEvent
from core.errors import Refused
from core.runtime.plugins import installed
from core.runtime.users import ensure_user
from core.spec.catalog import load_catalog
from core.storage.db import Database
from core.testing.scenarios import run_paths
from tests.helpers import FIXTURES, PASSWORD, case_at_repair, service
from tests.plugin_helpers import EXAMPLE_RULES, KEFU, Listener, fake_distribution, write_config


def test_the_example_plugin_works_through_the_api(example_client: Any) -> None:
    svc, login = example_client
    amy, vic = login("amy"), login("vic")
    # the open form describes the plugin's field type with its JSON schema
    procedure = amy.get("/api/v1/procedures/warranty-desk").json()
    serial = next(f for f in procedure["open_form"] if f["name"] == "serial")
    assert serial["type"] == "serial" and serial["input_schema"]["pattern"] == r"^SN-?\d{8}$"
    # the plugin's field type validates the form: a mistyped serial is a form error naming it
    r = amy.post(
        "/api/v1/cases",
        json={
            "procedure": "warranty-desk",
            "fields": {"serial": "SN12345675", "purchased_on": "2025-06-01"},
        },
    )
    assert r.status_code == 422 and "check digit is wrong" in r.json()["errors"]["serial"]
    # bought 17 months ago: within the company's 24 months (the plugin's settings), a VIP
    r = amy.post(
        "/api/v1/cases",
        json={
            "procedure": "warranty-desk",
            "fields": {"serial": "sn-1234 5674", "purchased_on": "2025-06-01", "vip": True},
        },
    )
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["number"] == "WD-2026-001"
    assert case["fields"]["serial"] == "SN12345674"  # normalised by the field type
    assert case["fields"]["warranty"] == "in"  # the plugin's effect type
    assert case["assignees"] == ["person:vic"]  # the plugin's dispatch strategy
    journal = vic.get(f"/api/v1/cases/{case['id']}/journal").json()
    checked = next(e for e in journal if e["kind"] == "warranty_checked")
    assert checked["data"] == {"until": "2027-06-01", "months": 24, "verdict": "in"}
    assigned = next(e for e in journal if e["kind"] == "assigned")
    assert assigned["data"]["dispatch"]["strategy"] == "vip"
    # vic closes it; the plugin heard the closing after commit and serves it on its own route
    r = vic.post(
        f"/api/v1/cases/{case['id']}/actions/done", json={"fields": {}, "expected_version": 1}
    )
    assert r.status_code == 200, r.text
    assert "WD-2026-001" in vic.get("/api/v1/example/closed").json()["closed"]
    # the plugin's route is in the OpenAPI document next to the built-in ones
    assert "/api/v1/example/closed" in amy.get("/schema/openapi.json").json()["paths"]


def test_the_shipped_pack_scenarios_pass_on_both_engines() -> None:

    lines: list[str] = []
    assert run_paths([EXAMPLE_RULES / "warranty-desk"], echo=lines.append) == 0, lines
    assert sum(line.startswith("PASS") for line in lines) >= 1


@pytest.mark.slow  # starts a kefu process
def test_kefu_plugins_lists_the_external_package() -> None:
    out = subprocess.run([KEFU, "plugins"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stdout.splitlines() if line.startswith("example"))
    assert "kefu-example 0.3.0" in line and "kefu_example.plugin" in line
    assert (
        "kefu_dispatch_strategies" in line
        and "kefu_field_types" in line
        and "kefu_effect_types" in line
    )


# -- broken plugins are named at start-up ---------------------------------------------------------


BROKEN = {
    "import": (
        "import_error_mod",
        """
        import kefu_no_such_dependency  # noqa: F401  # failing to import is the point
        """,
        [
            "plugin 'acme-sms' (package acme-sms-gateway 1.0)",
            "cannot load import_error_mod",
            "ModuleNotFoundError",
            "kefu_no_such_dependency",
        ],
    ),
    "misspelt hook": (
        "misspelt_mod",
        """
        from core import hookimpl

        @hookimpl
        def kefu_case_opend(event):
            pass
        """,
        ["plugin 'acme-sms' (package acme-sms-gateway 1.0)", "unknown hook 'kefu_case_opend'"],
    ),
    "duplicate name": (
        "duplicate_mod",
        """
        from core import hookimpl
        from plugins.dispatch import DISPATCH

        @hookimpl
        def kefu_effect_types():
            return [DISPATCH]
        """,
        [
            "effect type 'dispatch' is registered by both "
            "plugin 'acme-sms' (package acme-sms-gateway) and plugin 'dispatch' (package kefu)"
        ],
    ),
}


@pytest.mark.slow  # starts kefu processes
@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_plugin_stops_start_up_naming_it(kind: str, tmp_path: Path) -> None:
    module, source, expected = BROKEN[kind]
    fake_distribution(tmp_path, "acme-sms-gateway", "acme-sms", module, source)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    for args in (["plugins"], ["serve", "--port", "1"], ["worker", "--once"], ["validate"]):
        out = subprocess.run(
            [KEFU, *args], capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path
        )
        assert out.returncode == 3, (args, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        for part in expected:
            assert part in out.stderr, (args, out.stderr)


# -- company settings for plugins -----------------------------------------------------------


def test_company_plugin_settings_are_checked_at_load(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        textwrap.dedent("""\
        plugins:
          example: {settings: {warranty_month: 24}}
          exampel: {enabled: false}
          dispatch: {enabled: false}
        """),
    )
    cat = load_catalog(EXAMPLE_RULES, config, extensions=installed())
    errors = [d.format() for d in cat.diagnostics.errors]
    text = "\n".join(errors)
    assert (
        "K601 plugins.example.settings.warranty_month: plugin 'example' settings: Extra inputs"
        in text
    )
    assert (
        "K600 plugins.exampel: unknown plugin 'exampel'" in text
        and "did you mean 'example'?" in text
    )
    assert (
        "K602 plugins.dispatch: procedure 'warranty-desk' uses effect type 'dispatch' of plugin "
        "'dispatch', which this company disables"
    ) in text
    assert all(":" in e.split(" ")[0] for e in errors)  # file:line:col first


# -- lifecycle events -----------------------------------------------------------------------


def test_lifecycle_events_come_after_commit_and_survive_a_failing_plugin(
    db: Database, listeners: tuple[Listener, Listener], caplog: pytest.LogCaptureFixture
) -> None:
    good, broken = listeners
    svc = service(db)
    with caplog.at_level(logging.ERROR, logger="kefu.events"):
        cid = case_at_repair(svc)
    assert good.seen == [
        ("opened", "intake", None, None),
        ("step_entered", "intake", None, None),
        ("action_done", "dispatch", "intake", "verify"),
        ("step_entered", "dispatch", "intake", "verify"),
        ("action_done", "repair", "dispatch", "dispatch"),
        ("step_entered", "repair", "dispatch", "dispatch"),
    ]
    assert broken.seen == good.seen  # called for every event although it raised each time
    assert "plugin 'test-broken-listener' failed in kefu_case_opened" in caplog.text
    assert svc.get_case("demo", cid).version == 3  # nothing undone
    # a refused action emits nothing: it did not happen
    before = len(good.seen)
    li = svc.actor("demo", "li")

    with pytest.raises(Refused):
        svc.act("demo", cid, "complete", li, {"hours_spent": 0, "result": "x", "resolved": True}, 3)
    assert len(good.seen) == before
    svc.close()


def test_a_company_that_disables_a_plugin_does_not_feed_it_events(
    db: Database, tmp_path: Path, listeners: tuple[Listener, Listener]
) -> None:
    good, _ = listeners
    svc = service(db)
    svc.company("demo").definition.plugins["test-listener"] = type(
        "PS", (), {"enabled": False, "settings": {}}
    )()  # as `plugins: {test-listener: {enabled: false}}`
    case_at_repair(svc)
    assert good.seen == []
    svc.close()


def test_every_plugin_route_stays_in_the_callers_company(db: Database) -> None:
    """Each GET route a plugin adds, asked by a member of another company, shows nothing of
    the first company's cases (the route gets the request's ``actor`` from the core)."""
    svc = service(db, config=FIXTURES / "config-two")
    with db.write() as conn:
        for name in ("wang", "sun"):
            ensure_user(conn, name, name, svc.clock.now(), password=PASSWORD)
    try:
        cid = case_at_repair(svc)
        secret = svc.get_case("demo", cid).number
        event = CaseEvent(
            "closed", "demo", cid, secret, "repair-desk", "closed", "wang", svc.clock.now()
        )
        installed().pm.hook.kefu_case_closed(event=event)  # as the worker would after commit
        app = create_app(svc, auth=AuthSettings(cookie_secure=False))
        plugin_routes = [
            (path, method)
            for result in installed().pm.hook.kefu_api_routes()
            for handler in result or []
            for path in handler.paths
            for method in handler.http_methods
            if method == "GET"
        ]
        assert plugin_routes
        seen_by = {}
        for user, company in (("wang", "demo"), ("sun", "acme")):
            c = TestClient(app)
            r = c.post(
                "/api/v1/auth/login",
                json={"username": user, "password": PASSWORD, "company": company},
            )
            assert r.status_code == 200, r.text
            seen_by[user] = [
                c.get(path.replace("{case_id:int}", str(cid))).text for path, _ in plugin_routes
            ]
        assert any(secret in text for text in seen_by["wang"])  # the sweep can see it
        leaks = [
            p for (p, _), text in zip(plugin_routes, seen_by["sun"], strict=True) if secret in text
        ]
        assert not leaks, f"{secret} of demo shown to acme on {leaks}"
    finally:
        svc.close()
