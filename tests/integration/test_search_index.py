"""The text-search index follows what a transaction committed, however many times the
transaction changed a case (documents are written once per case, just before commit)."""

from __future__ import annotations

from typing import Any

import pytest

from core.cases import queries
from core.cases.service import CaseService


def opening(name: str, symptom: str) -> dict[str, Any]:
    return {"channel": "phone", "customer_name": name, "phone": "13912345678", "symptom": symptom}


def found(svc: CaseService, q: str) -> list[int]:
    wang = svc.actor("demo", "wang")
    return sorted(v.id for v in queries.list_cases(svc, wang, queries.CaseFilter(q=q)).items)


def test_cases_changed_twice_in_one_transaction_are_found_by_their_last_text(
    svc: CaseService,
) -> None:
    rt = svc.company("demo")
    proc = rt.procedures["repair-desk"]
    wang = svc.actor("demo", "wang")
    with svc.db.write() as conn:
        pipe = svc.pipeline(conn, rt)
        a = pipe.open(proc, wang, opening("张三", "空调不制冷")).case_id
        b = pipe.open(proc, wang, opening("李四", "热水器漏水")).case_id
        pipe.act(a, "cancel", wang, {"cancel_reason": "客户重复报修"}, 1)  # a again, after b
    assert found(svc, "不制冷") == [a]
    assert found(svc, "重复报修") == [a]  # the text of the second change
    assert found(svc, "漏水") == [b]
    # an existing case rewritten in a later transaction: its old text stays findable only
    # where the fields still hold it
    svc.act("demo", b, "cancel", wang, {"cancel_reason": "已电话解决"}, 1)
    assert found(svc, "电话解决") == [b]
    assert found(svc, "漏水") == [b]


def test_a_rolled_back_transaction_leaves_nothing_to_find(svc: CaseService) -> None:
    rt = svc.company("demo")
    proc = rt.procedures["repair-desk"]
    wang = svc.actor("demo", "wang")
    with pytest.raises(RuntimeError), svc.db.write() as conn:
        svc.pipeline(conn, rt).open(proc, wang, opening("王五", "门锁损坏"))
        raise RuntimeError("the caller gives up")
    assert found(svc, "门锁损坏") == []
    # the next transaction on the same pooled connection indexes only its own cases
    c = svc.open_case("demo", "repair-desk", wang, opening("赵六", "配电箱跳闸")).case.id
    assert found(svc, "门锁损坏") == []
    assert found(svc, "跳闸") == [c]
