"""Keyset pagination: each page's ``next`` starts the following page where it ended, in
the case list (newest first), "my cases", a text search and the inbox (nearest deadline
first) — the whole list once, even while cases are opened between two pages."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable

import pytest

from core.cases import queries
from core.cases.queries import CaseFilter, CasePage
from core.cases.service import CaseService
from core.errors import InvalidInput
from tests.helpers import OPEN_FIELDS, VERIFY


def opened(svc: CaseService, count: int) -> list[int]:
    """``count`` repair cases opened at times out of id order, every third verified (so
    it waits at dispatch, with a deadline); two symptoms to search for."""
    wang = svc.actor("demo", "wang")
    start = svc.clock.now()
    ids = []
    for i in range(count):
        svc.clock.set(start + dt.timedelta(minutes=(i * 7) % count))
        symptom = "卫生间水管漏水" if i % 2 else "空调不制冷"
        case = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS | {"symptom": symptom}).case
        if i % 3 == 0:
            svc.act("demo", case.id, "verify", wang, VERIFY, case.version)
        ids.append(case.id)
    svc.clock.set(start + dt.timedelta(hours=1))
    return ids


def walk(read: Callable[[str | None], CasePage]) -> list[int]:
    """Every page from the first, each from the ``next`` of the one before."""
    seen: list[int] = []
    after = None
    for _ in range(50):
        page = read(after)
        assert len(page.items) <= page.limit
        seen += [v.id for v in page.items]
        if page.next is None:
            return seen
        after = page.next
    raise AssertionError("the pages did not end")


@pytest.mark.parametrize(
    "flt",
    [CaseFilter(), CaseFilter(mine=True), CaseFilter(q="漏水"), CaseFilter(step="intake")],
    ids=["all", "mine", "search", "at a step"],
)
def test_pages_from_next_hold_the_whole_list_once(svc: CaseService, flt: CaseFilter) -> None:
    opened(svc, 14)
    wang = svc.actor("demo", "wang")
    whole = queries.list_cases(svc, wang, CaseFilter(**{**flt.__dict__, "limit": 200}))
    assert whole.next is None and len(whole.items) >= 5
    paged = walk(
        lambda after: queries.list_cases(
            svc, wang, CaseFilter(**{**flt.__dict__, "limit": 4, "after": after})
        )
    )
    assert paged == [v.id for v in whole.items]


def test_inbox_pages_from_next_hold_the_whole_inbox_once(svc: CaseService) -> None:
    opened(svc, 14)
    wang = svc.actor("demo", "wang")
    whole = queries.inbox(svc, wang, limit=200)
    assert len(whole.items) >= 10
    # nearest deadline first, equal deadlines by id: pages must break those ties alike
    keys = [(v.next_due_at, v.id) for v in whole.items]
    assert None not in {d for d, _ in keys} and keys == sorted(keys)
    assert len({d for d, _ in keys}) < len(keys)
    assert walk(lambda after: queries.inbox(svc, wang, limit=3, after=after)) == [
        v.id for v in whole.items
    ]


def test_a_case_opened_between_two_pages_neither_repeats_nor_shifts_them(
    svc: CaseService,
) -> None:
    opened(svc, 10)
    wang = svc.actor("demo", "wang")
    before = [v.id for v in queries.list_cases(svc, wang, CaseFilter(limit=200)).items]
    first = queries.list_cases(svc, wang, CaseFilter(limit=4))
    svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)  # the newest: before page 1
    second = queries.list_cases(svc, wang, CaseFilter(limit=4, after=first.next))
    assert [v.id for v in first.items + second.items] == before[:8]
    by_offset = queries.list_cases(svc, wang, CaseFilter(limit=4, offset=4))
    assert by_offset.items[0].id == before[3]  # what an offset does instead: repeats one


def test_a_cursor_of_another_list_or_a_made_up_one_is_refused(svc: CaseService) -> None:
    opened(svc, 6)
    wang = svc.actor("demo", "wang")
    inbox_next = queries.inbox(svc, wang, limit=2).next
    list_next = queries.list_cases(svc, wang, CaseFilter(limit=2)).next
    assert inbox_next and list_next
    forged = base64.urlsafe_b64encode(
        json.dumps(["cases", "2026-01-01T00:00:00+00:00", 10**30]).encode()
    )
    for bad in (inbox_next, "not-a-cursor", "", list_next[:-3], "W10", "客户", forged.decode()):
        with pytest.raises(InvalidInput) as err:
            queries.list_cases(svc, wang, CaseFilter(after=bad))
        assert err.value.details["errors"] == {"after": "not a cursor of this list"}
    with pytest.raises(InvalidInput):
        queries.inbox(svc, wang, after=list_next)


def pages_forward(read: Callable[..., CasePage]) -> list[CasePage]:
    pages = [read(after=None)]
    while pages[-1].next is not None:
        pages.append(read(after=pages[-1].next))
    return pages


def pages_back(read: Callable[..., CasePage], last: CasePage) -> list[CasePage]:
    """From ``last`` back to the first page, each from the ``previous`` of the one after."""
    pages = [last]
    while pages[-1].previous is not None:
        pages.append(read(before=pages[-1].previous))
        assert len(pages) < 50, "the pages back did not end"
    return pages[::-1]


@pytest.mark.parametrize(
    "flt",
    [CaseFilter(), CaseFilter(mine=True), CaseFilter(q="漏水"), CaseFilter(step="intake")],
    ids=["all", "mine", "search", "at a step"],
)
def test_previous_walks_back_over_the_same_pages_to_the_first(
    svc: CaseService, flt: CaseFilter
) -> None:
    opened(svc, 15)
    wang = svc.actor("demo", "wang")

    def read(**cursor: str | None) -> CasePage:
        return queries.list_cases(svc, wang, CaseFilter(**{**flt.__dict__, "limit": 3, **cursor}))

    forward = pages_forward(read)
    assert len(forward) >= 3 and forward[0].previous is None
    # each page counts the whole list (a search's used to count what was left of it)
    assert {p.total for p in forward} == {forward[0].total}
    back = pages_back(read, forward[-1])
    assert [[v.id for v in p.items] for p in back] == [[v.id for v in p.items] for p in forward]
    # every page read backwards leads on to the page after it, and counts the whole list
    for page, after in zip(back, back[1:], strict=False):
        assert read(after=page.next).items == after.items
        assert page.total == forward[0].total


def test_the_inbox_walks_back_too(svc: CaseService) -> None:
    opened(svc, 14)
    wang = svc.actor("demo", "wang")

    def read(**cursor: str | None) -> CasePage:
        return queries.inbox(svc, wang, limit=3, **cursor)

    forward = pages_forward(read)
    assert len(forward) >= 4
    back = pages_back(read, forward[-1])
    assert [[v.id for v in p.items] for p in back] == [[v.id for v in p.items] for p in forward]


def test_a_case_opened_meanwhile_shifts_no_page_back_and_the_first_page_is_full(
    svc: CaseService,
) -> None:
    """Back from the second page comes the first page as it was shown; the case opened
    meanwhile leads the page before that, which is the list's first page, full."""
    opened(svc, 8)
    wang = svc.actor("demo", "wang")
    first = queries.list_cases(svc, wang, CaseFilter(limit=4))
    second = queries.list_cases(svc, wang, CaseFilter(limit=4, after=first.next))
    newest = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.id
    back = queries.list_cases(svc, wang, CaseFilter(limit=4, before=second.previous))
    assert [v.id for v in back.items] == [v.id for v in first.items]
    assert back.next is not None and back.previous is not None
    start = queries.list_cases(svc, wang, CaseFilter(limit=4, before=back.previous))
    assert [v.id for v in start.items] == [newest] + [v.id for v in first.items[:3]]
    assert start.previous is None


def test_before_is_refused_with_after_an_offset_or_a_made_up_cursor(svc: CaseService) -> None:
    opened(svc, 6)
    wang = svc.actor("demo", "wang")
    page = queries.list_cases(svc, wang, CaseFilter(limit=2))
    second = queries.list_cases(svc, wang, CaseFilter(limit=2, after=page.next))
    assert second.previous is not None
    for flt, field in (
        (CaseFilter(after=page.next, before=second.previous), "before"),
        (CaseFilter(offset=2, before=second.previous), "offset"),
        (CaseFilter(before="not-a-cursor"), "before"),
    ):
        with pytest.raises(InvalidInput) as err:
            queries.list_cases(svc, wang, flt)
        assert field in err.value.details["errors"]
    with pytest.raises(InvalidInput) as err:
        queries.inbox(svc, wang, before=second.previous)  # a case list's cursor
    assert err.value.details["errors"] == {"before": "not a cursor of this list"}


@pytest.mark.parametrize("few", [True, False], ids=["read by id", "read from the text index"])
def test_a_search_lists_its_matches_newest_first_either_way_it_reads(
    svc: CaseService, monkeypatch: pytest.MonkeyPatch, few: bool
) -> None:
    """A search with few matches reads them by id; one with many reads the text index in
    id order (``SEARCH_BY_ID`` is where one becomes the other): the same pages, forwards
    and back, newest first in the order the cases were opened."""
    ids = opened(svc, 15)
    if not few:
        monkeypatch.setattr(queries, "SEARCH_BY_ID", 2)
    wang = svc.actor("demo", "wang")
    leaking = sorted((ids[i] for i in range(15) if i % 2), reverse=True)  # 卫生间水管漏水

    def read(**cursor: str | None) -> CasePage:
        return queries.list_cases(svc, wang, CaseFilter(q="漏水", limit=3, **cursor))

    forward = pages_forward(read)
    assert [v.id for p in forward for v in p.items] == leaking
    assert {(p.total, p.total_exact) for p in forward} == {(len(leaking), True)}
    back = pages_back(read, forward[-1])
    assert [[v.id for v in p.items] for p in back] == [[v.id for v in p.items] for p in forward]
    at_intake = queries.list_cases(svc, wang, CaseFilter(q="漏水", step="intake", limit=50))
    assert 0 < len(at_intake.items) < len(leaking)
    assert [v.id for v in at_intake.items] == [
        i for i in leaking if svc.get_case("demo", i).step == "intake"
    ]
