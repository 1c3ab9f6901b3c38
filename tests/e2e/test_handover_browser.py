"""A property handover's joint inspection in a real Chromium against a real server
(客户服务办理业主收楼工作程序 第一步–第五步(1)): the agent opens the unit's case, sends the
notice and hands over the documents; the inspector records two defects, each with a photo,
which become two rectification cases; the contractor fixes both from his inbox; the
inspector re-inspects, passes both, and the unit goes to acceptance.

Each photo is chosen in the file input of its checklist row, as an inspector on site
would, and travels with the form.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Server
from tests.e2e.test_browser import sign_in

pytestmark = pytest.mark.slow  # a server process and a browser

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")  # the demo company's wall clock
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def act(page: Any, action: str) -> Any:
    """The form of ``action`` on the case page, its <details> opened."""
    page.locator(f"#action-{action}").evaluate("d => d.open = true")
    return page.locator(f"#action-{action} form")


def submit(page: Any, action: str) -> None:
    act(page, action).locator("button[type=submit]").click()
    assert page.get_by_role("status").inner_text() == "已完成。", page.content()[:3000]


def step(page: Any) -> str:
    return str(page.locator("#h-state .step").inner_text())


def test_inspection_with_two_defects_photos_and_a_reinspection(
    browser: Any, server: Server, artefacts: Path
) -> None:
    ctx = browser.new_context(locale="zh-CN")
    agent = ctx.new_page()
    sign_in(agent, server, "wang")
    agent.goto(server.base + "/web/new/property-handover")
    agent.get_by_label("房屋(楼盘/楼栋/房号)").fill("阳光花园3栋1201")
    agent.get_by_label("业主姓名").fill("张伟")
    agent.get_by_label("业主电话").fill("13911112222")
    agent.get_by_role("button", name="新建").click()
    agent.wait_for_url(re.compile(r"/web/cases/\d+"))
    case_url = agent.url.split("?")[0]
    assert step(agent) == "通知业主"

    # 第一步: the notice, by SMS
    when = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=7)).strftime("%Y-%m-%dT10:00")
    form = act(agent, "send_notice")
    form.get_by_label("房产竣工情况").fill("已竣工验收备案")
    form.get_by_label("收房时间").fill(when)
    form.get_by_label("收房地点").select_option("property_office")
    form.get_by_label("通知方式").select_option("sms")
    submit(agent, "send_notice")
    assert step(agent) == "待业主到场收楼"
    submit(agent, "owner_arrived")
    # 第三步: every document ticked, the forms filled in
    form = act(agent, "documents_done")
    for row, status in enumerate(["handed", "later", "handed", "handed", "not_applicable"]):
        form.locator(f'select[name="f.documents.{row}.status"]').select_option(status)
    form.get_by_label("已协助业主填写相关表格和文件").select_option("true")
    submit(agent, "documents_done")
    assert step(agent) == "联合验房"

    # 第四步: the inspector records two defects, each with its photo
    inspector_ctx = browser.new_context(locale="zh-CN")
    inspector = inspector_ctx.new_page()
    sign_in(inspector, server, "xu")
    inspector.goto(case_url)
    form = act(inspector, "record_check")
    rows = [
        ("living", "ceiling", "天花板裂缝约30cm", ("天花板裂缝.png", PNG), 10),
        ("bedroom", "window", "窗框渗水", ("窗框渗水.png", PNG + b"\0"), 12),
    ]
    for n, (room, part, text, upload, days) in enumerate(rows):
        form.locator(f'select[name="f.checklist.{n}.room"]').select_option(room)
        form.locator(f'select[name="f.checklist.{n}.part"]').select_option(part)
        form.locator(f'select[name="f.checklist.{n}.result"]').select_option("defect")
        form.locator(f'input[name="f.checklist.{n}.description"]').fill(text)
        form.locator(f'input[name="f.checklist.{n}.photos.file"]').set_input_files(
            files=[{"name": upload[0], "mimeType": "image/png", "buffer": upload[1]}]
        )
        due = (dt.datetime.now(SHANGHAI) + dt.timedelta(days=days)).strftime("%Y-%m-%dT18:00")
        form.locator(f'input[name="f.checklist.{n}.due_at"]').fill(due)
    submit(inspector, "record_check")
    checklist = inspector.locator("dd[data-field=checklist]").inner_text()
    assert "天花板裂缝.png" in checklist and "窗框渗水.png" in checklist
    submit(inspector, "inspection_done")
    assert step(inspector) == "整改中"
    linked = inspector.locator("section[aria-labelledby=h-linked] a")
    assert linked.count() == 2
    numbers = [linked.nth(i).inner_text() for i in range(2)]
    inspector.screenshot(path=str(artefacts / "handover-rectifying.png"), full_page=True)

    # the contractor finds both in his inbox, sees the photo, and fixes them
    contractor_ctx = browser.new_context(locale="zh-CN")
    contractor = contractor_ctx.new_page()
    sign_in(contractor, server, "li")
    for number, name in zip(numbers, ("天花板裂缝.png", "窗框渗水.png"), strict=True):
        contractor.goto(server.base + "/web/inbox")
        contractor.get_by_role("link", name=number).click()
        assert name in contractor.locator("dd[data-field=photos]").inner_text()
        act(contractor, "fixed").get_by_label("整改情况").fill("已修复")
        submit(contractor, "fixed")
        assert step(contractor) == "已整改"
    contractor.screenshot(path=str(artefacts / "handover-rectified.png"), full_page=True)

    # the re-inspection: both pass; the photos stay with their defects
    inspector.goto(case_url)
    assert step(inspector) == "复验"
    form = act(inspector, "record_check")
    for n in (0, 1):
        form.locator(f'select[name="f.checklist.{n}.status"]').select_option("passed")
    submit(inspector, "record_check")
    checklist = inspector.locator("dd[data-field=checklist]").inner_text()
    assert checklist.count("复验合格") == 2 and "天花板裂缝.png" in checklist
    submit(inspector, "reinspection_done")
    assert step(inspector) == "验收交房(签署交房证书)"
    inspector.screenshot(path=str(artefacts / "handover-acceptance.png"), full_page=True)
    for c in (ctx, inspector_ctx, contractor_ctx):
        c.close()
