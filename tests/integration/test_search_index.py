"""The text-search index follows what a transaction committed, however many times the
transaction changed a case (documents are written once per case, just before commit)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import text

from core.cases import queries, search
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


def test_digits_are_found_by_their_run_and_postgresql_reads_only_likely_rows(
    svc: CaseService,
) -> None:
    """Phone numbers share most of their digit pairs (00, 13, 39 …): a search for one must
    still find just its case, and on PostgreSQL, whose index cannot check order, the rows
    read again to check it must be a few, not every case holding the same pairs."""
    rt = svc.company("demo")
    proc = rt.procedures["repair-desk"]
    wang = svc.actor("demo", "wang")
    phone = "13912345678"
    # every pair of the phone number, but never three of its digits in a row
    decoy = "空调不制冷 " + " ".join(phone[i : i + 2] for i in range(len(phone) - 1))
    with svc.db.write() as conn:
        pipe = svc.pipeline(conn, rt)
        cases = [
            pipe.open(proc, wang, {**opening(f"客户{i}", decoy), "phone": f"139{i:08d}"})
            for i in range(300)
        ]
        cases.append(pipe.open(proc, wang, {**opening("张三", "空调不制冷"), "phone": phone}))
    texts = {c.case_id: f"{c.number} {' '.join(map(str, c.row['fields'].values()))}" for c in cases}

    def holding(*runs: str) -> list[int]:  # the oracle: plain substring search
        return sorted(cid for cid, body in texts.items() if all(r in body for r in runs))

    assert found(svc, phone) == holding(phone) == [cases[-1].case_id]
    assert found(svc, "5678") == holding("5678") == [cases[-1].case_id]  # 尾号
    assert found(svc, "0150") == holding("0150")
    assert len(holding("0150")) >= 2  # a phone, and the case numbered …0150
    assert found(svc, "00000150 不制冷") == holding("00000150", "不制冷")
    assert found(svc, "1500") == holding("1500") == []  # its pairs are there, not in a row
    if svc.db.is_sqlite:
        return  # FTS5 checks positions inside its index
    query = search.pg_query(rt.id, search.needle_runs(phone))
    with svc.db.read() as conn:
        conn.execute(text("SET LOCAL enable_seqscan = off"))  # 300 rows: the index as at scale
        plan = "\n".join(
            conn.execute(
                text(
                    "EXPLAIN (ANALYZE, FORMAT TEXT) SELECT case_id FROM case_search "
                    "WHERE terms @@ to_tsquery('simple', :q)"
                ),
                {"q": query},
            ).scalars()
        )
    assert "ix_case_search_doc" in plan, plan
    removed = re.search(r"Rows Removed by Index Recheck: (\d+)", plan)
    # by pairs alone all 300 decoys hold 13 39 91 12 … 78, and were read again
    assert removed is None or int(removed.group(1)) < 30, plan


def test_texts_rewritten_through_many_merges_are_found_by_their_last_text(
    svc: CaseService,
) -> None:
    """Forty cases opened and then rewritten, each change in a transaction of its own: on
    SQLite eighty segments, enough for the text index to merge them several times (it
    merges sixteen at a time); each case is found by its texts, the new one and the one
    still in its fields."""
    wang = svc.actor("demo", "wang")
    if svc.db.is_sqlite:
        with svc.db.read() as conn:
            merge = conn.execute(text("SELECT v FROM case_search_config WHERE k = 'automerge'"))
            assert merge.scalar_one() == 16
    ids = [
        svc.open_case(
            "demo", "repair-desk", wang, opening(f"客户{i:02d}", f"故障甲{i:02d}号")
        ).case.id
        for i in range(40)
    ]
    for i, cid in enumerate(ids):
        svc.act("demo", cid, "cancel", wang, {"cancel_reason": f"改期乙{i:02d}号"}, 1)
    for i, cid in enumerate(ids):
        assert found(svc, f"改期乙{i:02d}号") == [cid]
        assert found(svc, f"故障甲{i:02d}号") == [cid]  # the symptom is still a field
    assert found(svc, "改期乙") == sorted(ids)
