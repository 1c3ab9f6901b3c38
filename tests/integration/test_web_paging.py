"""The pages' lists page by position (keyset), on SQLite and PostgreSQL: "Next" carries
where the page ended, so walking a list shows each case once, in order, even when cases
are opened meanwhile; "Previous" carries where the page started and comes back over
every page, however deep; "First page" comes back; a cursor edited by hand, or one of
another list, shows the list's first page instead of an error page."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

import pytest

from api.web.pages import PAGE_SIZE
from core.cases.service import CaseService
from tests.helpers import OPEN_FIELDS
from tests.web import clients

pytestmark = pytest.mark.service(logins=["wang"])


def open_cases(svc: CaseService, n: int) -> list[str]:
    """``n`` repair-desk cases, a minute apart (the newest last); their numbers."""
    wang = svc.actor("demo", "wang")
    numbers = []
    for _ in range(n):
        svc.clock.set(svc.clock.now() + dt.timedelta(minutes=1))  # type: ignore[attr-defined]
        numbers.append(svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number)
    return numbers


def shown(page: str) -> list[str]:
    """The case numbers of a list page, top to bottom."""
    return re.findall(r'<td><a href="/web/cases/\d+">([^<]+)</a></td>', page)


def link(page: str, rel: str) -> str | None:
    m = re.search(rf'<a href="([^"]+)" rel="{rel}">', page)
    return html.unescape(m.group(1)) if m else None


def pager(page: str) -> str:
    m = re.search(r'<nav class="pager"[^>]*>.*?<span>([^<]*)</span>', page, re.S)
    assert m, page
    return m.group(1).strip()


def walk(c: Any, url: str) -> list[list[str]]:
    """Every page of a list, following "Next" from ``url``."""
    pages: list[list[str]] = []
    next_url: str | None = url
    while next_url is not None:
        page = c.get(next_url)
        assert page.status_code == 200, page.text
        pages.append(shown(page.text))
        next_url = link(page.text, "next")
    return pages


@pytest.fixture
def web(svc: CaseService) -> Any:
    return clients(svc)


def test_walking_the_case_list_shows_each_case_once_newest_first(
    svc: CaseService, web: Any
) -> None:
    numbers = open_cases(svc, 2 * PAGE_SIZE + 3)
    c = web("wang")
    first = c.get("/web/cases").text
    assert shown(first) == numbers[::-1][:PAGE_SIZE]
    assert pager(first) == f"1–{PAGE_SIZE} / {len(numbers)}"
    assert link(first, "prev") is None and link(first, "first") is None
    # a case opened while the first page is read neither repeats a row nor skips one
    later = open_cases(svc, 1)
    second_url = link(first, "next")
    assert second_url is not None and "after=" in second_url
    second = c.get(second_url).text
    assert shown(second) == numbers[::-1][PAGE_SIZE : 2 * PAGE_SIZE]
    assert pager(second) == f"{PAGE_SIZE + 1}–{2 * PAGE_SIZE} / {len(numbers) + 1}"
    third_url = link(second, "next")
    assert third_url is not None
    third = c.get(third_url).text
    assert shown(third) == numbers[::-1][2 * PAGE_SIZE :]
    assert link(third, "next") is None  # the last page
    # back, page by page, and to the first page, which now shows the new case
    back_url = link(third, "prev")
    assert back_url is not None
    assert shown(c.get(back_url).text) == shown(second)
    start_url = link(third, "first")
    assert start_url is not None
    assert shown(c.get(start_url).text)[:2] == [later[0], numbers[-1]]
    # a list's filters ride along with its pages
    filtered = walk(c, "/web/cases?status=open&procedure=repair-desk")
    assert [n for p in filtered for n in p] == [*later, *numbers[::-1]]
    assert [len(p) for p in filtered] == [PAGE_SIZE, PAGE_SIZE, 4]


def test_the_inbox_pages_in_due_order_and_previous_reaches_back_to_the_first(
    svc: CaseService, web: Any
) -> None:
    numbers = open_cases(svc, 12 * PAGE_SIZE + 4)
    c = web("wang")
    pages = walk(c, "/web/inbox")
    # the same deadline for each, a minute apart: the oldest is due first
    assert [n for p in pages for n in p] == numbers
    assert len(pages) == 13
    # from the last page, "Previous" walks back over every page to the first, each
    # numbered as on the way there; the links stay short however deep the page
    page = c.get("/web/inbox").text
    figures = [pager(page)]
    while (nxt := link(page, "next")) is not None:
        page = c.get(nxt).text
        figures.append(pager(page))
    assert figures[-1] == f"{12 * PAGE_SIZE + 1}–{len(numbers)} / {len(numbers)}"
    assert link(page, "next") is None  # the list ends on a page of its own, not an empty one
    seen, back = [shown(page)], [pager(page)]
    while (prev := link(page, "prev")) is not None:
        assert len(prev) < 200, prev
        page = c.get(prev).text
        seen.append(shown(page))
        back.append(pager(page))
    assert seen == pages[::-1]
    assert back == figures[::-1]
    assert link(page, "first") is None  # back at the first page


def test_a_list_of_whole_pages_has_no_empty_page_after_it(svc: CaseService, web: Any) -> None:
    numbers = open_cases(svc, 2 * PAGE_SIZE)
    c = web("wang")
    pages = walk(c, "/web/cases")
    assert [len(p) for p in pages] == [PAGE_SIZE, PAGE_SIZE]
    assert [n for p in pages for n in p] == numbers[::-1]


def test_a_cursor_edited_by_hand_shows_the_first_page(svc: CaseService, web: Any) -> None:
    numbers = open_cases(svc, PAGE_SIZE + 2)
    c = web("wang")
    inbox_next = link(c.get("/web/inbox").text, "next")
    assert inbox_next is not None
    cursor = re.search(r"after=([^&]+)", inbox_next).group(1)  # type: ignore[union-attr]
    for url in (
        "/web/inbox?after=not-a-cursor",
        "/web/inbox?after=" + "A" * 5000,
        "/web/inbox?after=%ff%fe&from=-3",
        "/web/inbox?before=%ff%fe&from=99999999999",
        f"/web/inbox?tab=mine&after={cursor}",  # the inbox's cursor on a case list
        f"/web/inbox?tab=mine&before={cursor}",
        "/web/inbox?tab=overdue&after=x",
        "/web/inbox?tab=overdue&before=x",
        f"/web/inbox?after={cursor}&before={cursor}",  # both: a page is read from one
        "/web/inbox?before=" + "B" * 5000,
    ):
        page = c.get(url)
        assert page.status_code == 200, (url, page.text)
        assert "Traceback" not in page.text and "BBBBBBBBBB" not in page.text
    assert shown(c.get("/web/inbox?after=not-a-cursor").text) == numbers[:PAGE_SIZE]
    assert shown(c.get("/web/inbox?before=not-a-cursor").text) == numbers[:PAGE_SIZE]
    listed = c.get(f"/web/cases?after={cursor}")  # the inbox's cursor on the case list
    assert listed.status_code == 200
    assert "not a cursor of this list" in listed.text and shown(listed.text) == []
