"""Message templates: the customer's text, rendered when the action queues the message."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from core.clock import TestClock
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, load_catalog
from core.storage.db import Database
from tests.helpers import case_at_repair, service

T0 = dt.datetime(2026, 11, 20, 1, 0, tzinfo=dt.UTC)


def customer_message(svc, template: str) -> dict:
    rows = [r for r in svc.outbox("demo") if r["template"] == template]
    assert len(rows) == 1, rows
    return dict(rows[0]["payload"])


def test_the_pack_text_is_rendered_in_the_company_locale_and_time_zone(db: Database) -> None:
    svc = service(db, clock=TestClock(T0))
    case_at_repair(svc)  # dispatch: engineer li, visit 2026-11-23T10:00+08:00
    msg = customer_message(svc, "repair.engineer-assigned")
    assert msg["subject"] == f"【示例客服有限公司】报修单 {msg['case']} 已派工"
    assert f"您好,您的报修单 {msg['case']} 已安排维修工程师 li(电话 13800000001)。" in msg["body"]
    assert "约定上门时间:2026-11-23 10:00。" in msg["body"]  # local time, not the stored UTC
    svc.close()


def test_a_company_replaces_the_pack_text(db: Database, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    (config / "demo.yaml").write_text(
        text.replace("locale: zh-CN", "locale: en")
        + """
templates:
  repair.engineer-assigned:
    subject: "Your engineer for {{ case }}"
    body: "{{ fields.engineer | upper }} comes on {{ fields.visit_at | local('%d %b, %H:%M') }}."
""",
        encoding="utf-8",
    )
    svc = service(db, config=config, clock=TestClock(T0))
    case_at_repair(svc)
    msg = customer_message(svc, "repair.engineer-assigned")
    assert msg["subject"] == f"Your engineer for {msg['case']}"
    assert msg["body"] == "LI comes on 23 Nov, 10:00."
    # the other templates keep the pack's text, in the company's locale (en)
    svc.close()


def test_a_template_the_sandbox_refuses_does_not_stop_the_action(
    db: Database, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    (config / "demo.yaml").write_text(
        text
        + """
templates:
  repair.engineer-assigned:
    body: "{{ fields.__class__.__mro__ }}"
""",
        encoding="utf-8",
    )
    svc = service(db, config=config, clock=TestClock(T0))
    cid = case_at_repair(svc)
    assert svc.get_case("demo", cid).step == "repair"  # the action happened
    msg = customer_message(svc, "repair.engineer-assigned")
    assert "body" not in msg and "SecurityError" in msg["error"]
    svc.close()


def test_broken_templates_are_named_with_file_and_line(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules" / "repair-desk", rules / "repair-desk")
    pack = rules / "repair-desk" / "procedure.yaml"
    text = pack.read_text(encoding="utf-8")
    text = text.replace(
        "已安排维修工程师 {{ fields.engineer }}", "已安排维修工程师 {{ fields.enginer }}"
    )
    text = text.replace(
        'en: "Thank you for your patience: repair {{ case }} is closed. Contact us any time."',
        'en: "Thank you {% if %} {{ customer }}"',
    )
    text = text.replace(
        'subject: {zh-CN: "【{{ company }}】报修单 {{ case }} 未受理"',
        'subject: {zh-CN: "【{{ company_name }}】报修单 {{ case }} 未受理"',
    )
    pack.write_text(text, encoding="utf-8")
    cat = load_catalog(rules, tmp_path / "no-config", extensions=installed())
    errors = [d.format() for d in cat.diagnostics.errors]
    assert any(
        "K106 templates.repair.engineer-assigned.body.zh-CN: template repair.engineer-assigned: "
        "unknown field 'enginer' in fields.enginer" in e
        for e in errors
    ), errors
    assert any(
        "K140 templates.repair.closed.body.en: template repair.closed: template syntax:" in e
        for e in errors
    ), errors
    assert any(
        "K141 templates.repair.out-of-scope.subject.zh-CN: template repair.out-of-scope: unknown "
        "template variable 'company_name'" in e
        for e in errors
    ), errors
    import re

    assert len(errors) == 3 and all(
        re.match(re.escape(str(pack)) + r":\d+:\d+: K1", e) for e in errors
    ), errors
