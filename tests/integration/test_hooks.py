"""One test per hook (tests/unit/test_hook_docs.py fails when a hook has none).

Each registers or exercises the hook the way a plugin author would: through the entry-point
group (built-ins and the kefu-example package) or a plugin object registered on a fresh
plugin manager.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core import hookimpl
from core.cases.reports import run_report
from core.runtime.plugins import (
    PluginError,
    build_registry,
    installed,
    plugin_manager,
)
from core.runtime.worker import Worker
from core.spec.catalog import load_catalog
from core.spec.definitions import FieldDef
from core.spec.effects import BUILTIN_EFFECTS
from core.spec.fields import FieldValueError, coerce
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import case_at_repair, demo_with_channels, service
from tests.plugin_helpers import EXAMPLE_RULES, KEFU, Listener, fake_distribution, write_config


def registry_with(*plugins: Any) -> Any:
    """A new registry: the installed plugins plus ``plugins`` (objects with @hookimpl methods)."""
    pm, infos = plugin_manager()
    for i, p in enumerate(plugins):
        pm.register(p, name=f"test-plugin-{i}")
    return build_registry(pm, infos)


class Named:
    def __init__(self, name: str) -> None:
        self.name = name


def test_hook_effect_types(tmp_path: Path) -> None:
    reg = installed()
    assert reg.plugin_of("effect type", "dispatch") == "dispatch"
    assert reg.plugin_of("effect type", "check_warranty") == "example"
    # a pack using the example plugin's effect loads; its arguments are checked with file:line
    cat = load_catalog(EXAMPLE_RULES, write_config(tmp_path), extensions=installed())
    assert not cat.diagnostics.errors, [d.format() for d in cat.diagnostics]
    assert "check_warranty" in cat.effects

    class Clash:
        @hookimpl
        def kefu_effect_types(self) -> list[Any]:

            return [BUILTIN_EFFECTS[0]]  # "set" is built in

    with pytest.raises(
        PluginError, match="plugin 'test-plugin-0': effect type 'set' is built into kefu"
    ):
        registry_with(Clash())


def test_hook_field_types() -> None:
    reg = installed()
    assert reg.plugin_of("field type", "survey") == "surveys"
    assert reg.plugin_of("field type", "serial") == "example"

    serial = FieldDef.model_validate(
        {"type": "serial", "label": "S"}, context=reg.validation_context()
    )
    assert coerce(serial, "sn 1234-5674") == "SN12345674"
    with pytest.raises(FieldValueError, match="check digit"):
        coerce(serial, "SN12345670")
    with pytest.raises(ValueError, match="unknown field type 'serail'.*did you mean 'serial'"):
        FieldDef.model_validate({"type": "serail", "label": "S"}, context=reg.validation_context())

    class Twice:
        @hookimpl
        def kefu_field_types(self) -> list[Any]:
            return [Named("survey")]

    with pytest.raises(
        PluginError,
        match="field type 'survey' is registered by both plugin 'surveys' \\(package kefu\\) and "
        "plugin 'test-plugin-0'",
    ):
        registry_with(Twice())


def test_hook_dispatch_strategies() -> None:
    reg = installed()
    owners = {name: reg.plugin_of("dispatch strategy", name) for name in reg.strategies}
    assert owners == {
        "skill": "dispatch",
        "region": "dispatch",
        "workload": "dispatch",
        "round_robin": "dispatch",
        "nearest": "dispatch",
        "vip": "example",
    }


def test_hook_pack_dirs(tmp_path: Path) -> None:

    shipped = installed().pack_dirs()
    assert EXAMPLE_RULES / "warranty-desk" in shipped
    empty = tmp_path / "rules"
    empty.mkdir()
    cat = load_catalog(empty, write_config(tmp_path), extensions=installed())
    assert not cat.diagnostics.errors, [d.format() for d in cat.diagnostics]
    assert "warranty-desk" in cat.packs and "warranty-desk" in cat.companies["acme"].procedures
    # a pack of the same key in rules/ wins: a company adapts a shipped pack
    local = empty / "warranty-desk"
    local.mkdir()
    text = (EXAMPLE_RULES / "warranty-desk" / "procedure.yaml").read_text(encoding="utf-8")
    (local / "procedure.yaml").write_text(
        text.replace("title: {zh-CN: 保修服务台", "title: {zh-CN: 本地保修台"), encoding="utf-8"
    )
    assert (
        load_catalog(empty, write_config(tmp_path), extensions=installed())
        .packs["warranty-desk"]
        .pack.title.zh_CN
        == "本地保修台"
    )


def test_hook_case_number_schemes(db: Database) -> None:
    assert installed().plugin_of("case-number scheme", "pattern") == "numbering"
    svc = service(db)
    number = svc.get_case("demo", case_at_repair(svc)).number
    assert number.startswith("BX-") and number.endswith(
        "-0001"
    )  # config/demo.yaml: BX-{yyyy}{mm}-{seq:04}
    svc.close()

    class Yearly:
        @hookimpl
        def kefu_case_number_schemes(self) -> list[Any]:
            return [Named("pattern")]

    with pytest.raises(PluginError, match="case-number scheme 'pattern' is registered by both"):
        registry_with(Yearly())


def test_hook_reports(example_client: Any) -> None:
    svc, login = example_client
    assert installed().plugin_of("report", "satisfaction") == "surveys"
    amy = login("amy")
    listed = amy.get("/api/v1/reports").json()
    assert {
        "name": "satisfaction",
        "title": "Satisfaction by topic (survey fields)",
        "plugin": "surveys",
        "procedure": None,  # a plugin's report, not one a pack declares
    } in listed
    r = amy.get("/api/v1/reports/satisfaction")
    assert (
        r.status_code == 200
        and r.json()["rows"] == []
        and r.json()["notes"] == ["no survey answers yet"]
    )
    assert amy.get("/api/v1/reports/nope").status_code == 404


@pytest.mark.slow  # starts a kefu process
def test_hook_reports_on_answers(db: Database) -> None:

    svc = service(db)
    fang = svc.actor("demo", "wang")  # holds `service` through the service department
    for scores in (
        {"installation": 5, "operation": 4, "implementation": 5, "after_sales": 2, "training": 4},
        {"installation": 3, "operation": 2, "implementation": 4, "after_sales": 3, "training": 4},
    ):
        case = svc.open_case(
            "demo",
            "project-callbacks",
            fang,
            {"project": "P", "customer_name": "C", "delivered_on": "2026-01-15"},
        ).case
        svc.act("demo", case.id, "close_file", fang, {"end_reason": "x"}, 1)
        from sqlalchemy import update

        with (
            db.write() as conn
        ):  # a survey answered at a callback, stored as the field type stores it
            conn.execute(
                update(t.case)
                .where(t.case.c.id == case.id)
                .values(fields={**case.fields, "satisfaction": {"scores": scores, "average": 0}})
            )
    result = run_report(svc, "demo", "satisfaction", {"procedure": "project-callbacks"})
    rows = {r[2]: r[3:] for r in result.rows}
    assert rows["after_sales"] == [2, 2.5] and rows["installation"] == [2, 4.0]
    out = subprocess.run(
        [KEFU, "report", "satisfaction", "--company", "demo", "--database", svc.db.url, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert '"after_sales", 2, 2.5' in out.stdout
    svc.close()


@pytest.mark.slow  # starts kefu processes
def test_hook_cli_commands(tmp_path: Path) -> None:
    fake_distribution(
        tmp_path,
        "kefu-hello",
        "hello",
        "hello_mod",
        """
        import click
        from core import hookimpl

        @click.command()
        def hello():
            '''Say hello.'''
            click.echo("hello from a plugin")

        @hookimpl
        def kefu_cli_commands(cli):
            cli.add_command(hello)
        """,
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([KEFU, "hello"], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and out.stdout == "hello from a plugin\n", out.stderr
    helptext = subprocess.run(
        [KEFU, "--help"], capture_output=True, text=True, timeout=60, env=env
    ).stdout
    assert "hello" in helptext and "serve" in helptext  # serve comes from the built-in api plugin


def test_hook_api_routes(example_client: Any) -> None:
    _, login = example_client
    amy = login("amy")
    r = amy.get("/api/v1/example/closed")
    assert r.status_code == 200 and isinstance(r.json()["closed"], list)
    from litestar.testing import TestClient

    anonymous = TestClient(amy.app)
    assert (
        anonymous.get("/api/v1/example/closed").status_code == 401
    )  # behind the same authentication


class Pigeon:
    """A notification channel as a plugin ships one: a name and ``deliver``."""

    name = "pigeon"

    def __init__(self) -> None:
        self.got: list[tuple[Any, dict[str, Any]]] = []

    def deliver(self, message: Any, settings: dict[str, Any]) -> None:
        self.got.append((message, settings))


class PigeonPlugin:
    def __init__(self) -> None:
        self.channel = Pigeon()

    @hookimpl
    def kefu_notification_channels(self) -> list[Any]:
        return [self.channel]


def test_hook_notification_channels(db: Database, tmp_path: Path) -> None:
    plugin = PigeonPlugin()
    reg = registry_with(plugin)  # the registry kefu builds at start-up, with this plugin
    assert {"log", "file", "email", "webhook", "pigeon"} <= set(reg.channels)
    config = tmp_path / "config"
    config.mkdir()
    (config / "demo.yaml").write_text(
        demo_with_channels("  default: {use: pigeon}\n  pigeon: {loft: roof}\n"),
        encoding="utf-8",
    )
    svc = service(db, config=config, extensions=reg)
    case_at_repair(svc)  # the dispatch queues the customer's message
    # a worker round as `kefu worker` runs it: the registry's channels, by name
    _, report = Worker(svc, reg.channels).run_once()
    assert report.sent == len(plugin.channel.got) > 0 and report.retried == report.failed == 0
    message, settings = plugin.channel.got[0]
    assert (message.company, message.recipient) == ("demo", "customer")
    assert settings == {"loft": "roof"}  # the company's settings for the channel
    with db.read() as conn:
        assert set(conn.execute(select(t.outbox.c.status)).scalars()) == {"sent"}
    svc.close()

    class Dup:
        @hookimpl
        def kefu_notification_channels(self) -> list[Any]:
            return [Named("email")]

    with pytest.raises(PluginError, match="channel 'email' is registered by both plugin"):
        registry_with(Dup())


def test_hook_case_opened(db: Database, listeners: tuple[Listener, Listener]) -> None:
    good, _ = listeners
    svc = service(db)
    svc.open_case(
        "demo",
        "repair-desk",
        svc.actor("demo", "wang"),
        {"channel": "phone", "customer_name": "张三", "phone": "13912345678", "symptom": "x"},
    )
    assert [s for s in good.seen if s[0] == "opened"] == [("opened", "intake", None, None)]
    svc.close()


def test_hook_step_entered(db: Database, listeners: tuple[Listener, Listener]) -> None:
    good, _ = listeners
    svc = service(db)
    case_at_repair(svc)
    assert [s[1] for s in good.seen if s[0] == "step_entered"] == ["intake", "dispatch", "repair"]
    svc.close()


def test_hook_action_done(db: Database, listeners: tuple[Listener, Listener]) -> None:
    good, _ = listeners
    svc = service(db)
    case_at_repair(svc)
    assert [s[3] for s in good.seen if s[0] == "action_done"] == ["verify", "dispatch"]
    svc.close()


def test_hook_case_closed(db: Database, listeners: tuple[Listener, Listener]) -> None:
    good, _ = listeners
    svc = service(db)
    wang = svc.actor("demo", "wang")
    case = svc.open_case(
        "demo",
        "repair-desk",
        wang,
        {"channel": "phone", "customer_name": "张三", "phone": "13912345678", "symptom": "x"},
    ).case
    svc.act("demo", case.id, "cancel", wang, {"cancel_reason": "duplicate"}, 1)
    assert good.seen[-2:] == [
        ("step_entered", "cancelled", "intake", "cancel"),
        ("closed", "cancelled", "intake", "cancel"),
    ]
    svc.close()


def test_registry_reports_a_hook_that_raises() -> None:
    class Broken:
        @hookimpl
        def kefu_reports(self) -> list[Any]:
            raise RuntimeError("no database yet")

    with pytest.raises(
        PluginError, match="plugin 'test-plugin-0': kefu_reports failed: RuntimeError: no database"
    ):
        registry_with(Broken())
