"""``open_case: copy`` of a list field into a list field: the linked case gets the items
as its own — numbered from 1, with the item fields its list has — on SQLite and
PostgreSQL. (服务管理程序 seed 001 §6 售前/售中 5): the parts a service case asks for become
the items of the spare-part notice.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.cases.queries import linked_cases
from core.runtime.plugins import installed
from core.spec.loading import load_pack
from tests.helpers import service

REQUEST = """\
kefu: 1
procedure: parts-request
title: 备件申请
roles: {staff: {label: 客服}}
fields:
  parts:
    type: list
    label: 备件
    of:
      part: {type: text, label: 零件}
      qty: {type: integer, label: 数量}
      note: {type: text, label: 内部备注}
open: {role: staff, ask: [parts]}
start: ask
steps:
  ask:
    label: 申请
    role: staff
    actions:
      send: {label: 发出, ask: [parts], require: [parts]}
  done: {label: 完成, final: true}
rules:
  - id: notice
    when: action == "send"
    then:
      - open_case: {procedure: parts-notice, link: notice, copy: {lines: parts}}
"""

NOTICE = """\
kefu: 1
procedure: parts-notice
title: 补发通知
roles: {staff: {label: 客服}}
fields:
  lines:
    type: list
    label: 补发明细
    require: [part]
    of:
      part: {type: text, label: 零件}
      qty: {type: integer, label: 数量}
open: {role: staff, ask: [lines]}
start: open
steps:
  open:
    label: 待发
    role: staff
    actions:
      sent: {label: 已发, to: done}
  done: {label: 完成, final: true}
"""

COMPANY = """\
kefu: 1
company: lists
name: 列表测试
people:
  li: {name: 李, roles: [staff]}
procedures:
  parts-request: {}
  parts-notice: {}
"""


def test_a_copied_list_becomes_the_linked_cases_own_items(db: Any, tmp_path: Path) -> None:
    rules, config = tmp_path / "rules", tmp_path / "config"
    for key, text in (("parts-request", REQUEST), ("parts-notice", NOTICE)):
        (rules / key).mkdir(parents=True)
        (rules / key / "procedure.yaml").write_text(text, encoding="utf-8")
        assert load_pack(rules / key, extensions=installed())[1].errors == []
    config.mkdir()
    (config / "lists.yaml").write_text(COMPANY, encoding="utf-8")
    svc = service(db, rules=rules, config=config)
    try:
        li = svc.actor("lists", "li")
        cid = svc.open_case("lists", "parts-request", li, {}).case.id
        first = [{"part": "阀", "qty": 1}, {"part": "管", "qty": 2, "note": "加急"}]
        svc.act("lists", cid, "send", li, {"parts": first}, 1)
        # the request keeps item 2, drops item 1 and adds item 3: ids 2 and 3
        second = [{"id": 2, "part": "管", "qty": 4}, {"part": "垫片", "qty": 10, "note": "自提"}]
        svc.act("lists", cid, "send", li, {"parts": second}, 2)
        assert [p["id"] for p in svc.get_case("lists", cid).fields["parts"]] == [2, 3]
        notices = [
            svc.get_case("lists", link["id"])
            for link in linked_cases(svc, "lists", cid)
            if link["direction"] == "to"
        ]
        assert [n.fields["lines"] for n in notices] == [
            [{"id": 1, "part": "阀", "qty": 1}, {"id": 2, "part": "管", "qty": 2}],
            [{"id": 1, "part": "管", "qty": 4}, {"id": 2, "part": "垫片", "qty": 10}],
        ]
    finally:
        svc.close()
