"""The portal's rate limits count in the database: requests from several connections (as
from several server processes) at once are each counted once, a new window starts the
count again, and finished windows are swept."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from api.portal import allow
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import at_once

NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
WINDOW = dt.timedelta(minutes=10)


def test_parallel_requests_are_each_counted_once(db: Database) -> None:
    answers: list[bool] = []

    def burst(_: int) -> None:
        for _ in range(15):
            with db.write() as conn:
                answers.append(allow(conn, "portal-status:10.0.0.1", 20, NOW, WINDOW))

    at_once(3, burst)
    assert len(answers) == 45 and answers.count(True) == 20
    with db.write() as conn:  # the next window counts from one again
        assert allow(conn, "portal-status:10.0.0.1", 20, NOW + WINDOW, WINDOW)
        assert allow(conn, "portal-status:10.0.0.2", 20, NOW + WINDOW, WINDOW)
    with db.read() as conn:
        row = conn.execute(select(t.rate_limit.c.count).where(t.rate_limit.c.key.like("%.1"))).one()
        assert row[0] == 1
    with db.write() as conn:  # a new key later sweeps the finished windows
        allow(conn, "portal-status:10.0.0.3", 20, NOW + 3 * WINDOW, WINDOW)
    with db.read() as conn:
        assert conn.execute(select(func.count()).select_from(t.rate_limit)).scalar_one() == 1
