"""`kefu copy-data`: a company's whole history moves to another database — SQLite to
PostgreSQL, the scale path, and back — and kefu goes on there where it stopped."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.cases import queries
from core.cases.journal import verify_all
from core.cases.service import CaseService
from core.cli import cli
from core.storage.db import Database
from core.storage.migrate import upgrade
from core.testing.scenarios import temporary_pg_database
from tests import pg
from tests.helpers import DISPATCH, OPEN_FIELDS, VERIFY, service


@contextmanager
def other_database(svc: CaseService, request: pytest.FixtureRequest, tmp: Path) -> Iterator[str]:
    """An empty database of the other kind than ``svc``'s: PostgreSQL for SQLite and back."""
    if svc.db.is_sqlite:
        pg.session_url(request.config)  # skips (or fails in CI) when PostgreSQL is down
        with temporary_pg_database(pg.PG_ADMIN_URL, prefix="kefu_copy") as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'copy.db'}"


def history(svc: CaseService) -> list[tuple[object, ...]]:
    wang = svc.actor("demo", "wang")
    page = queries.list_cases(svc, wang, queries.CaseFilter(limit=200))
    return [(v.id, v.number, v.status, v.step, v.fields, v.version) for v in page.items]


def test_a_copy_holds_the_whole_history_and_goes_on_from_there(
    svc: CaseService, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    wang = svc.actor("demo", "wang")
    for i in range(6):
        case = svc.open_case(
            "demo", "repair-desk", wang, OPEN_FIELDS | {"phone": f"1391234{i:04d}"}
        ).case
        if i % 3 == 1:
            case = svc.act("demo", case.id, "verify", wang, VERIFY, case.version).case
        if i % 3 == 2:
            case = svc.act("demo", case.id, "verify", wang, VERIFY, case.version).case
            svc.act("demo", case.id, "dispatch", wang, DISPATCH, case.version)
    before = history(svc)
    inbox = [v.id for v in queries.inbox(svc, wang).items]
    journal = svc.journal("demo", before[0][0])
    with other_database(svc, request, tmp_path) as target:
        res = CliRunner().invoke(cli, ["copy-data", target, "--database", svc.db.url])
        assert res.exit_code == 0, res.output
        assert "kefu_case" in res.output and "journal" in res.output
        copy_db = Database(target)
        copy = service(copy_db)
        try:
            assert history(copy) == before
            assert [v.id for v in queries.inbox(copy, wang).items] == inbox
            assert copy.journal("demo", before[0][0]) == journal
            with copy_db.read() as conn:
                assert verify_all(conn, None, None) == []
            # the search index was written in the target's own form
            found = queries.list_cases(copy, wang, queries.CaseFilter(q="12340004"))
            assert [v.id for v in found.items] == [v[0] for v in before if "12340004" in str(v)]
            # and kefu goes on: a new case takes the next id and the next number
            new = copy.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case
            assert new.id > max(v[0] for v in before)
            assert new.number not in {v[1] for v in before}
            assert new.number == svc.open_case("demo", "repair-desk", wang, OPEN_FIELDS).case.number
            # a second copy into it is refused: nothing there is overwritten
            again = CliRunner().invoke(cli, ["copy-data", target, "--database", svc.db.url])
            assert again.exit_code == 1
            assert "not empty (table" in again.output and "Traceback" not in again.output
            assert len(history(copy)) == len(before) + 1
        finally:
            copy.close()
            copy_db.dispose()


def test_a_copy_is_refused_with_a_reason(tmp_path: Path) -> None:
    missing = CliRunner().invoke(
        cli, ["copy-data", f"sqlite:///{tmp_path / 'b.db'}", "--database", "sqlite:///nowhere.db"]
    )
    assert missing.exit_code == 1 and "nowhere.db: no such file" in missing.output
    old = Database(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(old, "e3e0e0e0e0e3")  # one revision behind
    old.dispose()
    behind = CliRunner().invoke(
        cli,
        ["copy-data", f"sqlite:///{tmp_path / 'b.db'}", "--database", old.url],
    )
    assert behind.exit_code == 1
    assert "schema revision e3e0e0e0e0e3" in behind.output and "kefu init" in behind.output
    bad = CliRunner().invoke(cli, ["copy-data", "nonsense", "--database", old.url])
    assert bad.exit_code == 1 and "not a database URL" in bad.output
