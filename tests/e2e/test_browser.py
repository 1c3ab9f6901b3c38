"""The staff pages and the customer portal in a real Chromium against a real server.

A customer reports a repair on a phone-sized screen and tracks it; an agent signs in,
finds it, acts with a validation error and then successfully, and reads the journal; the
engineer quotes and records the visit on a 390×844 viewport; the customer accepts the
quote, confirms the fix and answers the survey through the links the outbox holds; the
same case changed in two tabs shows the 409 page with the typed value kept; hostile input
is inert in the DOM; and everything works with JavaScript off.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import AXE, PASSWORD, Server
from tests.helpers import PNG
from tests.requires import missing

pytestmark = pytest.mark.slow  # a server process and a browser

PHONE = {"width": 390, "height": 844}
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=1</script>'
HOSTILE_FILE = '<img src=x onerror="window.__xss=1">.png'


def sign_in(page: Any, server: Server, user: str) -> None:
    page.goto(server.base + "/web/login")
    page.get_by_label(re.compile("用户名|Username")).fill(user)
    page.get_by_label(re.compile("密码|Password")).fill(PASSWORD)
    with page.expect_request(lambda r: r.method == "POST") as posted:
        page.get_by_role("button", name=re.compile("登录|Sign in")).click()
    # the pages' Referrer-Policy lets the browser name this origin (not "null"), so a
    # same-site check of the server accepts the form
    assert posted.value.headers.get("origin") == server.base
    page.wait_for_url(re.compile(r"/web/inbox"))


def in_english(context: Any, server: Server) -> None:
    context.add_cookies([{"name": "kefu_lang", "value": "en", "url": server.base}])


def outbox_link(server: Server, number: str) -> str:
    """The link of the message the outbox holds for the customer (as a mail would carry)."""
    with sqlite3.connect(server.db) as conn:
        rows = conn.execute(
            "SELECT o.payload FROM outbox o JOIN kefu_case c ON c.id = o.case_id "
            "WHERE c.number = ? AND o.template = 'portal.link'",
            (number,),
        ).fetchall()
    assert rows, f"no portal link for {number}"
    return str(json.loads(rows[-1][0])["link"])


def submit(
    page: Any, action: str, button: str, fill: dict[str, str], select: dict[str, str] | None = None
) -> None:
    """Open an action's form on the case page, fill it in, submit it: it went through."""
    page.locator(f"#action-{action} summary").click()
    form = page.locator(f"#action-{action} form")
    for label, value in fill.items():
        form.get_by_label(label).fill(value)
    for label, value in (select or {}).items():
        form.get_by_label(label).select_option(value)
    form.get_by_role("button", name=button).click()
    assert page.get_by_role("status").inner_text() == "Done."


def test_customer_reports_staff_act_customer_confirms(
    browser: Any, server: Server, artefacts: Path
) -> None:
    # the customer, on a phone, in English
    customer = browser.new_context(viewport=PHONE)
    in_english(customer, server)
    page = customer.new_page()
    page.goto(server.base + "/portal/demo/new/repair-desk")
    page.screenshot(path=str(artefacts / "portal-intake-en.png"), full_page=True)
    page.get_by_label("Customer name").fill("Li Si")
    page.get_by_label("Phone").fill("139 1234 5678")
    page.get_by_label("Email").fill("lisi@example.com")
    # a photo of the fault, chosen as on a phone; a file the field does not take first
    photos = page.get_by_label("Photos of the fault")
    photos.set_input_files([{"name": "notes.png", "mimeType": "image/png", "buffer": b"text"}])
    page.get_by_role("button", name="Submit").click()
    assert "does not take text/plain" in page.locator("#f-fault_photos-error").inner_text()
    photos = page.get_by_label("Photos of the fault")
    photos.set_input_files([{"name": "unit.png", "mimeType": "image/png", "buffer": PNG}])
    page.get_by_role("button", name="Submit").click()
    assert page.locator("#f-symptom-error").inner_text() == "required"  # beside the field
    assert page.get_by_label("Customer name").input_value() == "Li Si"  # kept
    # the photo went up with the refused form: it is kept, not asked for again
    assert page.get_by_role("checkbox", name=re.compile("unit.png")).is_checked()
    page.get_by_label("Symptom").fill("The air conditioner blows warm air")
    page.get_by_role("button", name="Submit").click()
    number = page.locator("#tracking-number").inner_text()
    assert number.startswith("BX-")
    page.goto(server.base + "/portal/demo/status")
    page.get_by_label("Tracking number").fill(number)
    page.get_by_label(re.compile("Contact")).fill("13912345678")
    page.get_by_role("button", name="Search").click()
    assert page.locator("#current-step").inner_text() == "Intake and verification"
    page.screenshot(path=str(artefacts / "portal-status-en.png"), full_page=True)

    # the agent finds it in the inbox (zh-CN: the company's language)
    staff = browser.new_context(locale="zh-CN")
    agent = staff.new_page()
    sign_in(agent, server, "wang")
    agent.screenshot(path=str(artefacts / "inbox-zh-CN.png"), full_page=True)
    agent.get_by_role("link", name=number).click()
    # a validation error first: the answer stands beside the field
    agent.locator("#action-verify summary").click()
    form = agent.locator("#action-verify form")
    form.get_by_label("问题性质").select_option("electrical")
    form.get_by_role("button", name="核实并分类").click()
    assert agent.locator("#f-in_scope-error").inner_text() == "required"
    assert agent.locator("#action-verify form").get_by_label("问题性质").input_value() == (
        "electrical"
    )
    form = agent.locator("#action-verify form")
    form.get_by_label("联系信息已核实").select_option("true")
    form.get_by_label("属于售后范畴").select_option("true")
    form.get_by_label("需要上门维修").select_option("true")
    form.get_by_label("紧急程度").select_option("medium")
    form.get_by_label("三包状态").select_option("out_of_warranty")  # a paid repair
    form.get_by_role("button", name="核实并分类").click()
    assert agent.get_by_role("status").inner_text() == "已完成。"
    form = agent.locator("#action-dispatch form")
    form.get_by_label("维修工程师").fill("li")
    form.get_by_label("工程师联系方式").fill("13800000001")
    form.get_by_label("约定上门时间").fill("2026-12-10T10:00")
    form.get_by_role("button", name="派工并约定时间").click()
    # the customer's photo, downloadable by staff
    with agent.expect_download() as got:
        agent.locator("#attachments").get_by_role("link", name="unit.png").click()
    assert Path(got.value.path()).read_bytes() == PNG
    timeline = agent.locator("ol.timeline li")
    assert timeline.count() >= 4
    assert "dispatch" in agent.locator("ol.timeline").inner_text()
    agent.screenshot(path=str(artefacts / "case-zh-CN.png"), full_page=True)

    # the engineer on site, on a phone
    engineer_ctx = browser.new_context(viewport=PHONE)
    in_english(engineer_ctx, server)
    engineer = engineer_ctx.new_page()
    sign_in(engineer, server, "li")
    engineer.get_by_role("link", name=number).click()
    # out of warranty: the cost first (A 三.1); the customer accepts it through the link
    submit(
        engineer,
        "diagnose",
        "Diagnose; state time and cost",
        {
            "Diagnosis and plan": "Refrigerant leak at the valve",
            "Estimated hours": "1.5",
            "Quoted cost (CNY)": "280",
        },
    )
    page.goto(outbox_link(server, number))
    page.get_by_role("button", name="Customer accepts the quote").click()
    assert page.locator("#portal-message").inner_text() == "Thank you."
    engineer.reload()
    submit(
        engineer,
        "complete",
        "Report the result",
        {"Hours spent": "1.5", "Result": "Refilled the refrigerant"},
        {"Problem solved": "true"},
    )
    width = engineer.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"the case page scrolls sideways on a phone ({width}px)"
    engineer.screenshot(path=str(artefacts / "case-phone-en.png"), full_page=True)

    # the customer confirms through the link the outbox holds
    link = outbox_link(server, number)
    page.goto(link)
    assert page.url == server.base + "/portal/demo/case"  # the token left the address bar
    page.get_by_label("Customer confirms the fix").select_option("true")
    page.get_by_role("button", name="Customer confirms").click()
    assert page.locator("#portal-message").inner_text() == "Thank you."
    page.goto(link)
    assert "expired or was used" in page.locator("#portal-message").inner_text()
    # then the survey, through the next link
    survey = outbox_link(server, number)
    assert survey != link
    page.goto(survey)
    page.get_by_label("Satisfaction (1-5)").fill("5")
    page.get_by_label("Customer's comments").fill("Quick and tidy")
    page.get_by_role("button", name="Customer answers the survey").click()
    assert page.locator("#portal-message").inner_text() == "Thank you."

    agent.reload()
    assert (
        "客户确认" in agent.locator("ol.timeline").inner_text()
        or "confirm" in agent.locator("ol.timeline").inner_text()
    )
    journal = agent.locator("ol.timeline").inner_text()
    assert "portal" in journal and "answer_survey" in journal  # the customer's actions
    assert "Quick and tidy" in agent.locator("dd[data-field=survey_comment]").inner_text()
    for ctx in (customer, staff, engineer_ctx):
        ctx.close()


def test_two_tabs_the_second_gets_409_and_keeps_its_typing(browser: Any, server: Server) -> None:
    ctx = browser.new_context(locale="zh-CN")
    in_english(ctx, server)
    first = ctx.new_page()
    sign_in(first, server, "wang")
    first.goto(server.base + "/web/new/repair-desk")
    first.get_by_label("Channel").select_option("phone")
    first.get_by_label("Customer name").fill("Two Tabs")
    first.get_by_label("Phone").fill("13700000000")
    first.get_by_label("Symptom").fill("Noise")
    first.get_by_role("button", name="Open").click()
    url = first.url
    second = ctx.new_page()
    second.goto(url)
    second.locator("#action-cancel summary").click()
    second.locator("#action-cancel form").get_by_label("Why it was cancelled").fill(
        "typed in tab two"
    )
    first.locator("#action-cancel summary").click()
    first.locator("#action-cancel form").get_by_label("Why it was cancelled").fill("duplicate")
    first.locator("#action-cancel form").get_by_role("button").click()
    assert first.get_by_role("status").inner_text() == "Done."
    second.locator("#action-cancel form").get_by_role("button").click()
    conflict = second.locator("#conflict")
    assert "changed while you were editing" in conflict.inner_text()
    assert "cancel" in conflict.inner_text()  # what changed
    assert "typed in tab two" in conflict.inner_text()  # what they typed, kept
    ctx.close()


def test_hostile_customer_input_is_inert_on_staff_pages(browser: Any, server: Server) -> None:
    ctx = browser.new_context(locale="zh-CN")
    page = ctx.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server.base + "/portal/demo/new/repair-desk")
    for label in ("客户姓名", "地址", "产品/设备"):
        page.get_by_label(label).fill(HOSTILE)
    page.get_by_label("联系电话").fill("13600000000")
    page.get_by_label("故障现象").fill(HOSTILE)
    page.get_by_label("故障照片").set_input_files(
        [{"name": HOSTILE_FILE, "mimeType": "image/png", "buffer": PNG}]
    )
    page.get_by_role("button").last.click()
    number = page.locator("#tracking-number").inner_text()
    sign_in(page, server, "wang")
    for url in ("/web/inbox", f"/web/cases?q={number}"):
        page.goto(server.base + url)
        assert page.evaluate("window.__xss") is None
    page.get_by_role("link", name=number).click()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img, main script").count() == 0
    shown = page.locator("dd[data-field=customer_name]").inner_text()
    assert shown == HOSTILE  # shown as text, exactly
    # the file's name, as the customer's browser sent it, is text too: in the field, the
    # list of attachments and the journal
    assert page.locator("dd[data-field=fault_photos] a").inner_text() == HOSTILE_FILE
    assert page.locator("#attachments a").inner_text() == HOSTILE_FILE
    for url in ("/web/board", "/web/reports/satisfaction", "/web/cases?procedure=repair-desk"):
        page.goto(server.base + url)
        assert page.evaluate("window.__xss") is None
    assert dialogs == []
    ctx.close()


def test_the_pages_work_without_javascript(browser: Any, server: Server) -> None:
    ctx = browser.new_context(java_script_enabled=False)
    in_english(ctx, server)
    page = ctx.new_page()
    sign_in(page, server, "zhao")
    page.goto(server.base + "/web/new/repair-desk")
    page.get_by_label("Channel").select_option("email")
    page.get_by_label("Customer name").fill("No Script")
    page.get_by_label("Phone").fill("13500000000")
    page.get_by_label("Symptom").fill("Dripping")
    page.get_by_role("button", name="Open").click()
    assert page.get_by_role("status").inner_text() == "Done."
    page.goto(server.base + "/web/cases?q=No+Script")
    assert page.locator("table.cases tbody tr").count() == 1
    page.goto(server.base + "/web/procedures/repair-desk")
    assert page.locator(".diagram img").count() == 1
    ctx.close()


def serious_violations(page: Any) -> list[Any]:
    """axe-core's serious and critical findings on the page as it is now (the context must
    bypass the page's CSP: axe is the test's own script, injected)."""
    if not AXE.exists():
        missing(f"no {AXE}: `make setup` installs axe-core with npm")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_case_page_has_no_serious_accessibility_violations(
    browser: Any, server: Server
) -> None:
    if not AXE.exists():
        missing(f"no {AXE}: `make setup` installs axe-core with npm")
    # the page's CSP forbids injected scripts, which is the point; axe is the test's own
    ctx = browser.new_context(bypass_csp=True, locale="zh-CN")
    page = ctx.new_page()
    sign_in(page, server, "wang")
    page.goto(server.base + "/web/new/repair-desk")
    page.get_by_label("报修方式").select_option("phone")
    page.get_by_label("客户姓名").fill("无障碍")
    page.get_by_label("联系电话").fill("13400000000")
    page.get_by_label("故障现象").fill("检查")
    page.get_by_role("button", name="新建").click()
    page.locator("#action-verify summary").click()
    page.get_by_role("button", name="核实并分类").click()  # with the field messages shown
    assert serious_violations(page) == []
    ctx.close()


def wait_for_step(page: Any, label: str, seconds: float = 30) -> None:
    """Reload until the case page shows the step ``label`` (a timer fired by the server's
    own worker)."""
    deadline = time.monotonic() + seconds
    while label not in page.locator("#h-state .step").inner_text():
        assert time.monotonic() < deadline, f"the case did not reach '{label}'"
        time.sleep(0.5)
        page.reload()


def time_passes(server: Server, number: str, timer: str) -> None:
    """Months pass for the case's pending pack timer ``timer``: it falls due now, and the
    server's worker fires it as it would after that time (nothing else is changed)."""
    with sqlite3.connect(server.db) as conn:
        done = conn.execute(
            "UPDATE timer SET due_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '-1 minute') "
            "WHERE status = 'pending' AND kind = 'pack.timer' AND idempotency_key LIKE ? "
            "AND case_id = (SELECT id FROM kefu_case WHERE number = ?)",
            (f"%:{timer}:%", number),
        ).rowcount
    assert done == 1, f"no pending timer {timer} on {number}"


def act(page: Any, action: str, values: dict[str, str], button: str) -> None:
    """Open an action's form on the case page, fill it (selects by value) and submit it."""
    if page.locator(f"#action-{action}").get_attribute("open") is None:  # the only one is open
        page.locator(f"#action-{action} summary").click()
    form = page.locator(f"#action-{action} form")
    for label, value in values.items():
        field = form.get_by_label(re.compile("^" + re.escape(label)))  # "*" when required
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
    form.get_by_role("button", name=button).click()
    assert page.get_by_role("status").inner_text() in ("Done.", "已完成。"), page.content()[:3000]


def test_a_qp_complaint_through_the_quality_managers_signature_to_closure(
    browser: Any, server: Server, artefacts: Path
) -> None:
    """QP/XX-A-2021 §5.1.3: sales take the complaint and pass it on, the responsible
    department fills the closed-loop tracking form, the quality manager signs it, sales
    answer the customer and call back; three months later the complainant closes it through
    the one-time link the outbox holds (谁投诉谁关闭)."""
    contexts = {
        user: browser.new_context(locale=("en" if user == "qian" else "zh-CN"))
        for user in ("wang", "li", "qian")
    }
    pages = {}
    for user, ctx in contexts.items():
        if user == "qian":
            in_english(ctx, server)
        pages[user] = ctx.new_page()
        sign_in(pages[user], server, user)
    wang, li, qian = pages["wang"], pages["li"], pages["qian"]
    wang.goto(server.base + "/web/new/qp-complaint")
    wang.get_by_label("顾客名称").fill("华东汽配")
    wang.get_by_label("联系人及电话").fill("张工 13900001111")
    wang.get_by_label("投诉内容").select_option("quality")
    wang.get_by_label("紧急程度").select_option("high")
    wang.get_by_label("投诉描述").fill("批次产品尺寸超差")
    wang.get_by_role("button", name="新建").click()
    number = wang.locator("h1").inner_text().split()[0]
    assert number.startswith("KS-")
    url = wang.url.split("?")[0]
    act(wang, "organise", {"责任部门": "生产部"}, "组织相关部门处理")

    li.goto(url)
    act(
        li,
        "submit_form",
        {"原因分析": "模具磨损", "纠正措施": "更换模具并全检", "完成日期": "2026-12-20"},
        "提交跟踪单",
    )

    # the quality manager reads what signing means before signing
    qian.goto(url)
    qian.locator("#action-approve summary").click()
    signing = qian.locator("#sign-approve")
    assert "Quality manager's signature" in signing.inner_text()
    assert "Cause, Corrective action, Completion date" in signing.inner_text()
    assert "You sign as Quality manager" in signing.inner_text()
    assert "not signed" in qian.locator("#signatures").inner_text()
    axe_page = browser.new_context(bypass_csp=True, locale="en")
    axe_page.add_cookies(contexts["qian"].cookies())
    checker = axe_page.new_page()
    checker.goto(url)
    checker.locator("#action-approve summary").click()
    assert serious_violations(checker) == []  # the signing form and the signatures
    axe_page.close()
    act(
        qian,
        "approve",
        {"Quality manager's review": "Agreed", "Tracker (quality)": "qian"},
        "✍ Sign and name the tracker",
    )
    signatures = qian.locator("#signatures").inner_text()
    assert "✔ signed" in signatures and "钱坤 (质量部) (qian) · Quality manager" in signatures
    qian.screenshot(path=str(artefacts / "case-signed-en.png"), full_page=True)
    # the tracking form, printed from the case page, carries the signature
    qian.locator("#records").get_by_role("link", name="print (HTML)").click()
    assert "客户投诉闭环跟踪单" in qian.content() and "qian" in qian.content()

    # the tracker the manager named confirms the action was carried out
    qian.goto(url)
    act(
        qian,
        "implemented",
        {"Implementation checked by the tracker": "New die in use; every lot inspected"},
        "Carried out",
    )

    wang.goto(url)
    act(wang, "explained", {"向顾客的解释说明": "已更换模具,后续批次全检"}, "已答复顾客")
    act(wang, "callback", {"回访记录": "一个月回访:客户确认尺寸合格"}, "记录回访")
    time_passes(server, number, "survey_due")
    wait_for_step(wang, "调查原投诉顾客")
    act(
        wang,
        "invite_complainant",
        {"联系人电子邮箱": "zhang@huadong.example.com"},
        "发送确认链接给原投诉顾客",
    )
    # 谁投诉谁关闭: the complainant, with no account, answers through the mailed link
    complainant_ctx = browser.new_context(locale="zh-CN")
    complainant = complainant_ctx.new_page()
    complainant.goto(outbox_link(server, number))
    assert complainant.url == server.base + "/portal/demo/case"  # the token left the bar
    complainant.get_by_label("原投诉顾客确认问题已解决").select_option("true")
    complainant.get_by_label("调查意见").fill("尺寸问题已解决,满意")
    complainant.get_by_role("button", name="确认问题是否已解决").click()
    assert complainant.locator("#portal-message").inner_text() == "谢谢。"
    complainant_ctx.close()

    wang.reload()
    assert "已闭环关闭" in wang.locator("#h-state").inner_text()
    journal = wang.locator("ol.timeline").inner_text()
    for step in (
        "organise",
        "submit_form",
        "approve",
        "signed",
        "implemented",
        "explained",
        "invite_complainant",
        "complainant_closes",
    ):
        assert step in journal, step
    assert "尺寸问题已解决,满意" in wang.locator("dd[data-field=survey_comment]").inner_text()
    wang.screenshot(path=str(artefacts / "case-closed-zh-CN.png"), full_page=True)
    for ctx in contexts.values():
        ctx.close()


MAIN_PAGES = [
    ("inbox", "/web/inbox"),
    ("cases", "/web/cases?procedure=repair-desk"),
    ("new-case", "/web/new/repair-desk"),
    ("case", None),  # the case the test opens, with a photo and its records
    ("procedure", "/web/procedures/repair-desk"),
    ("board", "/web/board"),
    ("reports", "/web/reports/complaints-monthly"),
    ("not-found", "/web/cases/999999"),
    ("portal-home", "/portal/demo"),
    ("portal-intake", "/portal/demo/new/repair-desk"),
    ("portal-status", "/portal/demo/status"),
]


@pytest.mark.parametrize("lang", ["zh-CN", "en"])
def test_the_main_pages_in_both_languages(
    browser: Any, server: Server, artefacts: Path, lang: str
) -> None:
    """Every main page drawn in the language chosen, saved as a screenshot (the test's
    artefacts), with no serious accessibility violation — the new widgets included: the
    file input, the attachments list, the records, the report's chart."""
    ctx = browser.new_context(bypass_csp=True, locale=lang)  # axe is injected
    ctx.add_cookies([{"name": "kefu_lang", "value": lang, "url": server.base}])
    page = ctx.new_page()
    page.goto(server.base + "/portal/demo/new/repair-desk")
    page.locator("#f-customer_name").fill("截图 Screenshot")
    page.locator("#f-phone").fill("13300000000")
    page.locator("#f-symptom").fill("漏水 Leaking")
    page.locator("#f-fault_photos").set_input_files(
        [{"name": "leak.png", "mimeType": "image/png", "buffer": PNG}]
    )
    page.locator("form button[type=submit]").click()
    number = page.locator("#tracking-number").inner_text()
    sign_in(page, server, "zhao")
    page.goto(server.base + f"/web/cases?q={number}")
    page.get_by_role("link", name=number).click()
    case_url = page.url
    words = {"zh-CN": "附件", "en": "Attachments"}[lang]
    for name, url in MAIN_PAGES:
        page.goto(case_url if url is None else server.base + url)
        assert page.locator("html").get_attribute("lang") == lang, name
        if name == "case":
            assert words in page.locator("#h-attachments").inner_text()
            assert page.locator("#records a").count() >= 2
        if name == "reports":
            chart = page.locator("#report-chart img")
            assert chart.get_attribute("alt") and chart.evaluate("i => i.naturalWidth") > 0
        page.screenshot(path=str(artefacts / f"{name}-{lang}.png"), full_page=True)
        assert serious_violations(page) == [], name
    # on a phone, the forms and the case page fit the screen
    page.set_viewport_size(PHONE)
    for url in (
        case_url,
        server.base + "/portal/demo/new/repair-desk",
        server.base + "/web/reports/complaints-monthly",
    ):
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"] + 1, f"{url} scrolls sideways on a phone ({width}px)"
    page.goto(case_url)
    page.screenshot(path=str(artefacts / f"case-phone-{lang}.png"), full_page=True)
    ctx.close()
