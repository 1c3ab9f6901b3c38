"""The repair desk's printed records (rules/repair-desk, seed 002 W9–W11): the dispatch
order the engineer takes along, the warranty card with the administrator's audit
signature, and the callback record with every attempt — on SQLite and PostgreSQL."""

from __future__ import annotations

import io

from pypdf import PdfReader

from core.cases import records
from core.cases.service import CaseService
from tests.helpers import case_at_repair, hand_in_card


def pdf_text(pdf: bytes) -> str:
    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(pdf)).pages)


def repaired_and_called_back(svc: CaseService) -> int:
    """A repair under warranty: card handed in and entered, one unanswered callback, then
    the customer reached and surveyed."""
    wang, li = svc.actor("demo", "wang"), svc.actor("demo", "li")
    cid = case_at_repair(svc)
    done = {"parts_replaced": "启动电容", "hours_spent": 1.5, "result": "制冷", "resolved": True}
    svc.act("demo", cid, "complete", li, done, 3)
    v = hand_in_card(svc, cid, 4)
    svc.act("demo", cid, "no_answer", wang, {"callback_note": "10:05 拨打无人接听"}, v)
    confirmed = {"customer_confirmed": True, "callback_note": "客户说空调已正常"}
    svc.act("demo", cid, "confirm", wang, confirmed, v + 1)
    survey = {"survey_channel": "phone", "satisfaction": 4, "service_score": 5}
    svc.act("demo", cid, "record_survey", wang, survey, v + 2)
    return cid


def test_the_warranty_card_prints_with_the_audit_signature(svc: CaseService) -> None:
    cid = repaired_and_called_back(svc)
    doc, html = records.render_html(svc, "demo", cid, "warranty_card")
    assert [(s["signer"], s["status"]) for s in doc.signatures if s["signer"]] == [
        ("赵敏 (客服主管) (zhao)", "有效")
    ]
    text = pdf_text(records.render_pdf(html))
    assert "三包卡" in text and "SB-0001" in text and "KFR35-0001" in text
    assert "包修" in text and "启动电容" in text  # the guarantee given (a choice's label), the part
    assert "服务管理员审核三包卡" in text


def test_the_callback_record_keeps_every_attempt(svc: CaseService) -> None:
    cid = repaired_and_called_back(svc)
    doc, html = records.render_html(svc, "demo", cid, "callback_record")
    text = pdf_text(records.render_pdf(html))
    assert "回访记录" in text and "客户说空调已正常" in text
    # the unanswered call is in the printed history, when and by whom (建档保存); the
    # note of each attempt stays in the journal, the field holds the latest
    attempts = [e for e in doc.journal if e["what"] == "回访未接通(记录)"]
    assert [e["actor"] for e in attempts] == ["王芳 (客服)"]
    assert "处理记录" in text and "回访未接通(记录)" in text
    noted = [e for e in svc.journal("demo", cid) if e["action"] == "no_answer"]
    assert noted[0]["data"]["fields"] == {"callback_note": "10:05 拨打无人接听"}


def test_the_dispatch_order_is_a_work_order_without_the_history(svc: CaseService) -> None:
    cid = repaired_and_called_back(svc)
    doc, html = records.render_html(svc, "demo", cid, "repair_order")
    assert doc.journal == []
    text = pdf_text(records.render_pdf(html))
    assert "派工单" in text and "BX-JL-01" in text  # the demo company's form number
    assert "三包期内(免费)" in text and "空调不制冷" in text
    assert "处理记录" not in text
