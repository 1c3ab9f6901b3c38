"""Message templates: the customer's text, queued with the action and rendered after its
commit, within time and size limits."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from core.clock import TestClock
from core.runtime.plugins import installed
from core.spec.catalog import ROOT, load_catalog
from core.spec.templates import QUEUED, render_queued
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import DISPATCH, OPEN_FIELDS, VERIFY, case_at_repair, service

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


def _company_template(tmp_path: Path, body: str) -> Path:
    config = tmp_path / "config"
    config.mkdir(parents=True, exist_ok=True)
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    (config / "demo.yaml").write_text(
        text + f"\ntemplates:\n  repair.engineer-assigned:\n    body: {json.dumps(body)}\n",
        encoding="utf-8",
    )
    return config


def test_templates_render_after_commit_within_limits(db: Database, tmp_path: Path) -> None:
    # a loop in a loop over a long field: seconds of work if nothing stopped it
    slow = "{% for a in fields.symptom %}{% for b in fields.symptom %}{% endfor %}{% endfor %}"
    svc = service(db, config=_company_template(tmp_path, slow), clock=TestClock(T0))
    wang = svc.actor("demo", "wang")
    cid = svc.open_case(
        "demo", "repair-desk", wang, {**OPEN_FIELDS, "symptom": "漏" * 2000}
    ).case.id
    svc.act("demo", cid, "verify", wang, VERIFY, 1)
    svc.act("demo", cid, "dispatch", wang, DISPATCH, 2)  # queues repair.engineer-assigned
    # the action's transaction stored the text and its variables, not a rendered message
    with db.read() as conn:
        [raw] = [
            r.payload
            for r in conn.execute(select(t.outbox)).all()
            if r.template == "repair.engineer-assigned"
        ]
    assert "body" not in raw and raw[QUEUED]["body"] == slow
    # rendered when read (and by the worker before delivery): stopped at the time limit
    msg = customer_message(svc, "repair.engineer-assigned")
    assert "TemplateLimit" in msg["error"] and "body" not in msg, msg
    svc.close()


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ("{{ ('x' * 50000000) | length }}", "'*' would make more than"),
        ("{{ 'x' * fields.engineer | length * 11000 }}", "'*' would make more than"),
        ("{% for i in range(fields.engineer | length * 999) %}{% endfor %}", "range()"),
        (
            "{% for i in range(900) %}{% for j in range(900) %}{{ i }}{% endfor %}{% endfor %}",
            "longer than 20000",
        ),
        ("{{ 9 ** (fields.engineer | length * 50) }}", "'**' with an exponent"),
    ],
)
def test_a_render_is_bounded_in_size(body: str, why: str) -> None:
    spec = {"name": "t", "body": body, "subject": None, "context": {"fields": {"engineer": "li"}}}
    out = render_queued(spec)
    assert "body" not in out and why in out["error"], out


def test_statically_visible_excesses_are_refused_at_validate_time(tmp_path: Path) -> None:
    cases = {
        "{{ ('x' * 50000000) | length }}": "the number 5e+07 is above the template limit",
        "{% for a in range(3) %}{% for b in range(3) %}{% for c in range(3) %}"
        "{% endfor %}{% endfor %}{% endfor %}": "loops nested 3 deep",
    }
    for body, why in cases.items():
        config = _company_template(tmp_path / str(len(why)), body)
        cat = load_catalog(ROOT / "rules", config, extensions=installed())
        errors = [d.format() for d in cat.diagnostics.errors]
        assert any("K142" in e and why in e for e in errors), errors
