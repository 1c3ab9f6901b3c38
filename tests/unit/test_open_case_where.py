"""``open_case`` with ``for_each`` and ``where:``: one linked case per item the condition
holds for (收楼 第四步(3): only the defects still open go back to rectification), and the
mistakes a ``where:`` can hold, reported at load time."""

from __future__ import annotations

from pathlib import Path

from core.runtime.plugins import installed
from core.spec.loading import effect_registry, load_pack
from core.spec.procedures import compile_procedure

PACK = """\
kefu: 1
procedure: mini
title: 迷你
parameters:
  budget: {{type: number, default: 500}}
roles:
  inspector: {{label: 验房}}
fields:
  defects:
    type: list
    label: 问题
    of:
      room: {{type: text, label: 房间}}
      status: {{type: choice, label: 状态, choices: [open, passed, failed]}}
      cost: {{type: money, label: 费用}}
      quote: {{type: money, label: 报价}}
      due_on: {{type: date, label: 期限}}
open: {{role: inspector}}
start: inspect
steps:
  inspect:
    label: 验房
    role: inspector
    actions:
      done: {{label: 完成, to: closed}}
  closed: {{label: 结束, final: true}}
rules:
  - id: rectify
    when: action == "done"
    then:
      - open_case:
          procedure: other
          copy: {{room: item.room}}
{extra}
"""


def load(tmp_path: Path, extra: str) -> tuple[object, list[str]]:
    pack = tmp_path / "mini"
    pack.mkdir(exist_ok=True)
    (pack / "procedure.yaml").write_text(PACK.format(extra=extra), encoding="utf-8")
    lp, diags = load_pack(pack, extensions=installed())
    return lp, [f"{d.code} {d.message}" for d in diags]


def test_where_picks_the_items_it_holds_for(tmp_path: Path) -> None:
    lp, diags = load(
        tmp_path,
        "          for_each: defects\n"
        '          where: not status == "passed" and (cost > param.budget or cost > quote)\n',
    )
    assert diags == []
    proc = compile_procedure(
        lp.pack,
        {"budget": 1000},
        company="c",
        effects=effect_registry(installed()),  # type: ignore[attr-defined]
    )
    items = [
        {"id": 1, "room": "厨房", "status": "passed", "cost": 2000},  # passed: left out
        {"id": 2, "room": "客厅", "cost": 1500},  # no status is "not passed"
        {"id": 3, "room": "卧室", "status": "failed", "cost": 600},  # within the budget
        {"id": 4, "room": "阳台", "status": "open", "cost": 600, "quote": 400},  # over its quote
        {"id": 5, "room": "卫生间", "status": "open"},  # no cost: no comparison holds
    ]
    assert proc.items_where("defects", lp.pack.rules[0].then[0]["open_case"]["where"], items) == [  # type: ignore[attr-defined]
        False,
        True,
        False,
        True,
        False,
    ]


def test_where_mistakes_are_located_diagnostics(tmp_path: Path) -> None:
    _, diags = load(tmp_path, '          where: status == "open"\n')
    assert diags[-1] == (
        "K110 rules[0].then[0].open_case.where: picks items of the for_each list: give for_each"
    )
    _, diags = load(tmp_path, "          for_each: defects\n          where: colour == 1\n")
    assert [d[:4] for d in diags] == ["K202"] and "colour" in diags[0]
    _, diags = load(tmp_path, '          for_each: defects\n          where: status == "closed"\n')
    assert [d[:4] for d in diags] == ["K207"]
    _, diags = load(tmp_path, "          for_each: defects\n          where: due_on < today\n")
    assert [d[:4] for d in diags] == ["K110"] and "today" in diags[0]
