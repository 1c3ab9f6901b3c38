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
