"""Every list, inbox and lookup query is served by an index, on SQLite and PostgreSQL.

The queries are not written out here: each user-facing read (the inbox of an engineer and
of an agent, "my cases", the case list by status and by default order, one case, its
journal and deadlines) and a dispatching action run for real while every statement they
send is recorded; then each recorded SELECT is explained by the database it ran on. A plan
that reads a whole table of cases, assignees or journal entries fails the test, naming
the query — the cost of such a query grows with the company's history.

PostgreSQL is asked with sequential scans discouraged (``enable_seqscan = off``): on a
small test table it would rightly prefer one, so the question is whether an index *can*
serve the query.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, text

from core.cases import queries
from core.cases.reports import run_report
from core.cases.service import CaseService
from core.runtime.worker import claim
from core.storage.db import Database
from tests.helpers import DISPATCH, OPEN_FIELDS, VERIFY

MONTH = (dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
BIG_TABLES = ("kefu_case", "case_assignee", "journal", "timer", "outbox")
SEQ_SCAN = re.compile(r"Seq Scan on (" + "|".join(BIG_TABLES) + r")\b")


@contextmanager
def recorded(svc: CaseService) -> Iterator[list[tuple[str, Any]]]:
    out: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE")) and not many:
            out.append((statement, params))

    event.listen(svc.db.engine, "before_cursor_execute", listen)
    try:
        yield out
    finally:
        event.remove(svc.db.engine, "before_cursor_execute", listen)


def period_unindexed(statement: str, plan: list[str]) -> list[str]:
    """A period filter (``kefu_case.updated_at >= …``) the plan does not seek by: the
    query then reads every case of the company and filters them."""
    out = []
    for column in ("created_at", "updated_at"):
        if re.search(rf"kefu_case\.{column} (>=|<)", statement) and not any(
            column in line for line in plan
        ):
            out.append(f"a period on {column} read through no index on it: {' | '.join(plan)}")
    return out


#: a read of cases given by their ids (``kefu_case.id IN (…)``)
BY_IDS = re.compile(r"kefu_case\.id IN \((?!SELECT)")


def ids_unkeyed(statement: str, plan: list[str], key: str) -> list[str]:
    """Cases given by id read other than by primary key (``key``: how the plan names
    it): through the company's index, say, they cost a walk of its whole history."""
    if BY_IDS.search(statement) and not any(key in line for line in plan):
        return [f"cases given by id read without their primary key: {' | '.join(plan)}"]
    return []


def full_scans(svc: CaseService, statement: str, params: Any) -> list[str]:
    """The big tables this statement's plan reads in full (or walks for ids it was given)."""
    with svc.db.engine.connect() as conn:
        if svc.db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
            plan = [r[-1] for r in rows]
            if unkeyed := ids_unkeyed(statement, plan, "INTEGER PRIMARY KEY"):
                return unkeyed
            if re.search(r"timer\.case_id (=|IN)", statement):  # one case's: by the case
                plan_text = " ".join(plan)
                if "ix_timer_case" not in plan_text and "idempotency_key" not in plan_text:
                    return [f"one case's timers read without ix_timer_case: {plan_text}"]
            return period_unindexed(statement, plan) + [
                line
                for line in plan
                if re.match(r"SCAN (\w+)", line)
                and re.match(r"SCAN (\w+)", line).group(1) in BIG_TABLES  # type: ignore[union-attr]  # matched just before
            ]
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + statement, params).all()]
        conn.rollback()
        return (
            period_unindexed(statement, plan)
            + ids_unkeyed(statement, plan, "pk_kefu_case")
            + [line for line in plan if re.search(SEQ_SCAN, line)]
        )


def explain_all(svc: CaseService, run: Callable[[], Any]) -> list[str]:
    with recorded(svc) as statements:
        run()
    assert statements, "nothing was recorded"
    problems = []
    for statement, params in statements:
        for line in full_scans(svc, statement, params):
            problems.append(f"{line}\n    in: {' '.join(statement.split())[:300]}")
    return problems


def test_reads_and_dispatch_use_indexes(svc: CaseService) -> None:
    wang = svc.actor("demo", "wang")
    li = svc.actor("demo", "li")
    ids = []
    for i in range(30):  # a few cases at each step, so the tables are not empty
        case = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case
        ids.append(case.id)
        if i % 3:
            case = svc.act("demo", case.id, "verify", wang, VERIFY, case.version).case
        if i % 3 == 2:
            svc.act("demo", case.id, "dispatch", wang, DISPATCH, case.version)
    number = svc.get_case("demo", ids[7]).number
    # a case of a pack with a report counting an action (rules/iatf-customer-service)
    iatf = svc.open_case(
        "demo",
        "iatf-customer-service",
        wang,
        {"customer_name": "华东汽车", "channel": "phone", "service_phase": "in_sale"}
        | {"info_kind": "service", "service_kind": "onsite", "description": "现场指导"},
    ).case
    svc.act("demo", iatf.id, "register", wang, {"customer_type": "oem", "file_checked": True}, 1)
    onsite = {"visited_on": "2026-11-02", "site": "总装厂", "engineer": "li", "work": "install"}
    svc.act("demo", iatf.id, "report_onsite", li, {"onsite_reports": onsite | {"findings": "-"}}, 2)

    def back(**flt: Any) -> Any:
        """The page before the second page of a case list: read backwards from a cursor."""
        first = queries.list_cases(svc, wang, queries.CaseFilter(limit=3, **flt))
        second = queries.list_cases(svc, wang, queries.CaseFilter(limit=3, after=first.next, **flt))
        return queries.list_cases(
            svc, wang, queries.CaseFilter(limit=3, before=second.previous, **flt)
        )

    # no ANALYZE: on a table this small SQLite would rightly prefer a scan; without
    # statistics the question is, as with PostgreSQL, whether an index can serve it
    reads: dict[str, Callable[[], Any]] = {
        "engineer's inbox": lambda: queries.inbox(svc, li),
        "agent's inbox, second page": lambda: queries.inbox(svc, wang, limit=5, offset=5),
        "my cases": lambda: queries.list_cases(svc, wang, queries.CaseFilter(mine=True)),
        "my cases, the page after a cursor": lambda: queries.list_cases(
            svc,
            wang,
            queries.CaseFilter(
                mine=True,
                limit=3,
                after=queries.list_cases(svc, wang, queries.CaseFilter(mine=True, limit=3)).next,
            ),
        ),
        "all cases, the page after a cursor": lambda: queries.list_cases(
            svc,
            wang,
            queries.CaseFilter(
                limit=3, after=queries.list_cases(svc, wang, queries.CaseFilter(limit=3)).next
            ),
        ),
        "inbox, the page after a cursor": lambda: queries.inbox(
            svc, wang, limit=3, after=queries.inbox(svc, wang, limit=3).next
        ),
        "my cases, the page before a cursor": lambda: back(mine=True),
        "all cases, the page before a cursor": lambda: back(),
        "text search, the pages after and before a cursor": lambda: back(q="不制冷"),
        "inbox, the page before a cursor": lambda: queries.inbox(
            svc,
            wang,
            limit=3,
            before=queries.inbox(
                svc, wang, limit=3, after=queries.inbox(svc, wang, limit=3).next
            ).previous,
        ),
        "open cases": lambda: queries.list_cases(svc, wang, queries.CaseFilter(status="open")),
        "all cases, newest first": lambda: queries.list_cases(svc, wang, queries.CaseFilter()),
        "text search": lambda: queries.list_cases(svc, wang, queries.CaseFilter(q="不制冷")),
        "cases at a step": lambda: queries.list_cases(
            svc, wang, queries.CaseFilter(step="dispatch")
        ),
        "cases assigned to li": lambda: queries.list_cases(
            svc, wang, queries.CaseFilter(assignee="person:li")
        ),
        "cases opened in a month": lambda: queries.list_cases(
            svc, wang, queries.CaseFilter(created_from=MONTH[0], created_to=MONTH[1])
        ),
        "cases changed in a month": lambda: queries.list_cases(
            svc, wang, queries.CaseFilter(updated_from=MONTH[0], updated_to=MONTH[1])
        ),
        "the monthly satisfaction report": lambda: run_report(
            svc,
            "demo",
            "satisfaction",
            {"since": MONTH[0].date().isoformat(), "until": MONTH[1].date().isoformat()},
        ),
        "the monthly complaint report": lambda: run_report(
            svc, "demo", "complaints-monthly", {"since": "2026-11", "until": "2026-11"}
        ),
        "a statistics case counting the month's complaints": lambda: svc.open_case(
            "demo", "complaint-statistics", wang, {"period": "2026-11"}
        ),
        "a pack's monthly report": lambda: run_report(
            svc, "demo", "iatf-customer-service.monthly_service", {"since": "2026-11"}
        ),
        "a case by its number": lambda: svc.case_id_by_number("demo", number),
        "one case": lambda: svc.get_case("demo", ids[7]),
        "its journal": lambda: svc.journal("demo", ids[7]),
        "its deadlines": lambda: svc.deadlines("demo", ids[7]),
        "an action that dispatches": lambda: svc.act(
            "demo", ids[0], "verify", wang, VERIFY, svc.get_case("demo", ids[0]).version
        ),
        "the audit (chain, case rows, queue loads)": lambda: svc.verify_journal(),
        # (last: it leases timers) the live timers only, from ix_timer_due
        "the worker's due timers": lambda: claim(
            svc, owner="plans", now=svc.clock.now() + dt.timedelta(days=30)
        ),
    }
    problems = {name: explain_all(svc, run) for name, run in reads.items()}
    bad = {k: v for k, v in problems.items() if v}
    assert bad == {}, "\n".join(f"{k}: {line}" for k, v in bad.items() for line in v)


def test_a_search_with_many_matches_reads_the_text_index_in_order(
    svc: CaseService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past SEARCH_BY_ID matches a search's pages are read from the text index, newest
    first, forwards and backwards, and counted there: by index too."""
    monkeypatch.setattr(queries, "SEARCH_BY_ID", 2)
    wang = svc.actor("demo", "wang")
    for _ in range(12):
        svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)

    def pages() -> None:
        flt = {"q": "不制冷", "limit": 3}
        first = queries.list_cases(svc, wang, queries.CaseFilter(**flt))
        second = queries.list_cases(svc, wang, queries.CaseFilter(**flt, after=first.next))
        queries.list_cases(svc, wang, queries.CaseFilter(**flt, before=second.previous))

    assert explain_all(svc, pages) == []


def test_a_full_scan_is_caught(svc: CaseService) -> None:
    """The check itself: a query filtering on an unindexed expression is reported."""
    wang = svc.actor("demo", "wang")
    svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)

    def scan() -> None:
        with svc.db.read() as conn:
            conn.execute(text("SELECT id FROM kefu_case WHERE version + 0 = 1")).all()

    assert explain_all(svc, scan)


def test_a_long_list_says_its_count_is_capped(svc: CaseService, monkeypatch) -> None:
    """Counting stops at the cap: the page says "more than" instead of counting history."""
    monkeypatch.setattr(queries, "COUNT_CAP", 3)
    wang = svc.actor("demo", "wang")
    for _ in range(5):
        svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)
    page = queries.list_cases(svc, wang, queries.CaseFilter(limit=2))
    assert (page.total, page.total_exact, len(page.items)) == (3, False, 2)
    inbox = queries.inbox(svc, wang, limit=2)
    assert (inbox.total, inbox.total_exact) == (3, False)
    found = queries.list_cases(svc, wang, queries.CaseFilter(q="不制冷", limit=2))
    assert (found.total, found.total_exact, len(found.items)) == (3, False, 2)
    beyond = queries.list_cases(svc, wang, queries.CaseFilter(q="不制冷", limit=2, offset=6))
    assert (beyond.total, beyond.total_exact, beyond.items) == (3, False, [])
    monkeypatch.setattr(queries, "COUNT_CAP", 10)
    page = queries.list_cases(svc, wang, queries.CaseFilter(limit=2))
    assert (page.total, page.total_exact) == (5, True)
    found = queries.list_cases(svc, wang, queries.CaseFilter(q="不制冷", limit=2, offset=4))
    assert (found.total, found.total_exact, len(found.items)) == (5, True, 1)


@pytest.mark.pg
def test_postgresql_plans_every_run_with_its_values(pg_url: str) -> None:
    """psycopg prepares a statement run five times; PostgreSQL could then keep a generic
    plan made while the table was small (a sequential scan) for the connection's life.
    kefu's connections plan each run with its own values instead."""
    db = Database(pg_url)
    try:
        with db.engine.connect() as conn:
            stmt = text("SELECT id FROM kefu_case WHERE id = :id AND company_id = :co")
            for i in range(12):
                conn.execute(stmt, {"id": i, "co": 1}).all()
            plans = conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
                " WHERE statement LIKE 'SELECT id FROM kefu_case WHERE id = %%'"
            ).all()
            conn.rollback()
    finally:
        db.dispose()
    assert plans, "psycopg did not prepare the statement: nothing to check"
    generic, custom = plans[0]
    assert generic == 0 and custom >= 5


def test_my_cases_newest_first_across_queues_and_pages(svc: CaseService) -> None:
    """ "My cases" merges the actor's queues (their role's intake, their own cases) newest
    first by opening time — also when a case opened later has a smaller id — and its pages
    and filters agree with the whole list filtered by hand."""
    wang = svc.actor("demo", "wang")
    start = svc.clock.now()
    ids = []
    for i in range(14):  # opening times out of id order: 0, 5, 10, 1, 6, 11, …
        svc.clock.set(start + dt.timedelta(hours=(i * 5) % 14))
        symptom = "卫生间水管漏水" if i % 2 else "空调不制冷"
        case = svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS | {"symptom": symptom}).case
        ids.append(case.id)
        if i % 3 == 1:
            case = svc.act("demo", case.id, "verify", wang, VERIFY, case.version).case
        if i % 6 == 1:
            svc.act("demo", case.id, "dispatch", wang, DISPATCH, case.version)
    rt = svc.company("demo")
    mine_queues = set(queries.queues(svc, rt, wang, queries.readable_procedures(svc, rt, wang)))
    every = queries.list_cases(svc, wang, queries.CaseFilter(limit=200)).items

    def waits_on_wang(v: Any) -> bool:
        return any((*a.split(":", 1), v.procedure) in mine_queues for a in v.assignees)

    expected = [v.id for v in every if waits_on_wang(v)]
    assert 0 < len(expected) < len(ids)  # some of the cases wait on li alone
    assert [v.created_at for v in every] == sorted((v.created_at for v in every), reverse=True)
    pages = [
        queries.list_cases(svc, wang, queries.CaseFilter(mine=True, limit=4, offset=o))
        for o in range(0, len(expected) + 4, 4)
    ]
    assert [v.id for p in pages for v in p.items] == expected
    assert {p.total for p in pages} == {len(expected)}
    at_dispatch = queries.list_cases(svc, wang, queries.CaseFilter(mine=True, step="dispatch"))
    assert [v.id for v in at_dispatch.items] == [
        v.id for v in every if waits_on_wang(v) and v.step == "dispatch"
    ]
    assert at_dispatch.items  # the filter leaves some: it is checked, not vacuous
    still_open = queries.list_cases(svc, wang, queries.CaseFilter(mine=True, status="open"))
    assert [v.id for v in still_open.items] == expected
    assert queries.list_cases(svc, wang, queries.CaseFilter(mine=True, status="closed")).total == 0
    leaks = queries.list_cases(svc, wang, queries.CaseFilter(mine=True, q="漏水"))
    # a search lists its matches newest first in the order the cases were opened (their
    # ids), which this test's clock, moved back and forth, makes differ from their times
    assert [v.id for v in leaks.items] == sorted(
        (v.id for v in every if waits_on_wang(v) and "漏水" in v.fields["symptom"]), reverse=True
    )
    assert 0 < leaks.total < len(expected)
    li = queries.list_cases(svc, wang, queries.CaseFilter(mine=True, assignee="person:li"))
    assert [v.id for v in li.items] == [
        v.id for v in every if waits_on_wang(v) and "person:li" in v.assignees
    ]


def test_my_cases_read_each_queue_newest_first_from_its_index(svc: CaseService) -> None:
    """Each queue of "my cases" is read in order from ix_case_assignee_mine (a backward
    index range), not sorted: the page costs the same with 60,000 cases waiting."""
    wang = svc.actor("demo", "wang")
    for _ in range(3):
        svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS)
    with recorded(svc) as statements:
        queries.list_cases(svc, wang, queries.CaseFilter(mine=True))
    page = next(s for s in statements if "ORDER BY" in s[0] and "queue" in s[0])
    with svc.db.engine.connect() as conn:
        if svc.db.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + page[0], page[1]).all()
            plan = [r[-1] for r in rows]
            arms = [line for line in plan if "queue" in line]
            assert arms and all("ix_case_assignee_mine" in line for line in arms), plan
            # the merge of the heads may sort; no arm does (its order is the index's)
            sorts = [line for line in plan if "TEMP B-TREE" in line]
            assert len(sorts) <= 2, plan
        else:
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = [r[0] for r in conn.exec_driver_sql("EXPLAIN " + page[0], page[1]).all()]
            conn.rollback()
            text_plan = "\n".join(plan)
            assert "Index Scan Backward using ix_case_assignee_mine" in text_plan or (
                "Index Only Scan Backward using ix_case_assignee_mine" in text_plan
            ), text_plan
