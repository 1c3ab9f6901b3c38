"""Broken SLAs, timers and schedules are reported at their line with a code, all at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.runtime.plugins import installed
from core.spec.loading import load_company, load_pack

PACK = """\
kefu: 1
procedure: mini
title: 迷你
roles:
  agent: {label: 客服}
fields:
  note: {type: text, label: 备注}
  received: {type: date, label: 收到日期}
  reason: {type: text, label: 原因}
open: {role: [agent]}
start: work
steps:
  work:
    label: 处理
    role: agent
    sla: {target: 2 work hours}
    actions:
      done: {label: 完成, to: closed}
      extend: {label: 延期, ask: [note]}
  closed:
    label: 结束
    final: true
    sla: {target: 1h}
slas:
  work:
    label: 重名
    target: 3 workdays
  reply:
    label: 答复
    start: {field: note}
    stop: {action: answr}
    target:
      - {when: "note == 'x'", target: 24h}
      - {when: "nope > 1", target: 48h}
    pause: {steps: [wrk]}
    extension: {action: extend, target: 7 workdays, reason: reason}
  promised:
    label: 承诺
    target: {field: note, max: 3 workdays, if_empty: max}
    warning: 3 weeks ago
timers:
  later:
    after: 3 months
    from: {step: nowhere}
    then: [{move: closed}]
schedules:
  monthly:
    label: 月度
    every: month
    on: 40
    open: {fields: {nothing: 1}}
"""


def located(tmp_path: Path, key: str, text: str) -> tuple[set[tuple[int, str]], str, list[Any]]:
    """The pack ``text`` loaded from a folder ``key``: its (line, code) pairs, the report
    as printed, and the diagnostics."""
    d = tmp_path / key
    d.mkdir()
    (d / "procedure.yaml").write_text(text, encoding="utf-8")
    _, diags = load_pack(d, extensions=installed())
    return {(x.line, x.code) for x in diags}, "\n".join(x.format() for x in diags), list(diags)


def test_every_time_problem_is_located(tmp_path: Path) -> None:
    got, text, diags = located(tmp_path, "mini", PACK)
    assert (23, "K130") in got, text  # an SLA on a final step
    assert (25, "K131") in got, text  # SLA id 'work' is also the step's own SLA
    assert (30, "K128") in got, text  # start field 'note' is text, not a moment
    assert (31, "K127") in got, text  # unknown action 'answr'
    assert (34, "K202") in got, text  # unknown field in a target-table condition
    assert (34, "K129") in got, text  # the last row has a condition (warning)
    assert (35, "K127") in got, text  # pause on unknown step 'wrk'
    assert (36, "K131") in got, text  # action 'extend' does not require 'reason'
    assert (39, "K128") in got, text  # promised field is text
    assert any(line == 40 and "ago" in x.message for x in diags for line in [x.line]), text
    assert (44, "K127") in got, text  # unknown step 'nowhere'
    assert (50, "K450") in got, text  # on: 40
    assert (51, "K451") in got, text  # unknown field under open
    assert "did you mean 'answer'" not in text and "did you mean" in text


def test_a_company_override_of_an_unknown_schedule_is_located(tmp_path: Path) -> None:
    rules = Path(__file__).resolve().parents[2] / "rules"
    lp, diags = load_pack(rules / "complaint-statistics", extensions=installed())
    assert lp is not None and not diags.errors
    company = tmp_path / "co.yaml"
    company.write_text(
        "kefu: 1\ncompany: co\nname: 公司\n"
        "roles:\n  sales: {people: [a]}\npeople:\n  a: {name: A}\n"
        "procedures:\n  complaint-statistics:\n    schedules:\n      montly: {enabled: false}\n"
        "      monthly: {on: mon}\n",
        encoding="utf-8",
    )
    _, diags = load_company(company, {lp.key: lp}, extensions=installed())
    got = {(x.line, x.code) for x in diags}
    text = "\n".join(x.format() for x in diags)
    assert (11, "K452") in got and "did you mean 'monthly'" in text, text
    assert (12, "K450") in got, text


GATED = """\
kefu: 1
procedure: gated
title: 催办
roles:
  agent: {label: 客服}
fields:
  due_on: {type: date, label: 完成期限}
open: {role: [agent]}
start: work
steps:
  work:
    label: 处理
    role: agent
    actions:
      done: {label: 完成, to: closed}
  closed: {label: 结束, final: true}
schedules:
  chase:
    label: 每周催办
    from: {step: work}
    every: week
    while: {steps: [wrok], while: "due_on < todya"}
    when: "due_date < today"
    then: [{notify: {to: "role:agent", template: chase}}]
  company_wide:
    label: 每月
    every: month
    on: 1
    when: "due_on < today"
    open: {fields: {}}
"""


def test_a_schedules_while_and_when_are_checked_like_a_timers(tmp_path: Path) -> None:
    got, text, diags = located(tmp_path, "gated", GATED)
    assert (22, "K127") in got, text  # while: an unknown step 'wrok'
    assert (22, "K202") in got, text  # while: an unknown name 'todya' in the condition
    assert (23, "K202") in got, text  # when: an unknown field 'due_date'
    # a company schedule has no case to test
    assert any(x.line == 26 and "per-case schedules" in x.message for x in diags), text
