"""The outbox after commit: each message handed to its channel, retried, recorded once."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select, update

from core.clock import TestClock
from core.runtime import outbox
from core.runtime.outbox import DeliveryError, OutboxMessage
from core.storage import schema as t
from plugins.notifications import FileChannel, LogChannel
from tests.helpers import case_at_repair, service

T0 = dt.datetime(2026, 11, 2, 1, 0, tzinfo=dt.UTC)


class Recorder:
    """A channel that keeps what it was given, failing the first ``fail`` times."""

    def __init__(self, name: str = "log", fail: int = 0, permanent: bool = False) -> None:
        self.name, self.fail, self.permanent = name, fail, permanent
        self.got: list[tuple[OutboxMessage, dict[str, Any]]] = []

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        if self.fail:
            self.fail -= 1
            raise DeliveryError("receiver said no", permanent=self.permanent)
        self.got.append((message, settings))


def _rows(svc) -> list[Any]:
    with svc.db.read() as conn:
        return conn.execute(select(t.outbox).order_by(t.outbox.c.id)).all()


def test_each_message_is_handed_over_once_and_recorded_sent(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    case_at_repair(svc)  # the dispatch tells the customer who comes (repair.engineer-assigned)
    queued = _rows(svc)
    assert queued and {r.status for r in queued} == {"pending"}
    rec = Recorder()
    report = outbox.deliver_pending(svc, {"log": rec})
    assert (report.sent, report.retried, report.failed) == (len(queued), 0, 0)
    assert [m.idempotency_key for m, _ in rec.got] == [r.idempotency_key for r in queued]
    assert {m.company for m, _ in rec.got} == {"demo"}
    assert all(r.status == "sent" and r.sent_at == T0 and r.lease_owner is None for r in _rows(svc))
    assert outbox.deliver_pending(svc, {"log": rec}).handled == 0  # nothing handed over twice
    assert len(rec.got) == len(queued)


def test_failures_back_off_then_give_up_after_eight_attempts(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    case_at_repair(svc)
    first = _rows(svc)[0]
    with db.write() as conn:  # keep one message only
        conn.execute(update(t.outbox).where(t.outbox.c.id != first.id).values(status="sent"))
    rec = Recorder(fail=100)
    waits = []
    for attempt in range(1, 9):
        report = outbox.deliver_pending(svc, {"log": rec})
        row = _rows(svc)[0]
        assert row.attempts == attempt and "receiver said no" in row.last_error
        if attempt < 8:
            assert report.retried == 1 and row.status == "pending"
            waits.append(row.next_attempt_at - clock.now())
            assert outbox.deliver_pending(svc, {"log": rec}).handled == 0  # not before its time
            clock.set(row.next_attempt_at)
        else:
            assert (
                report.failed == 1
                and row.status == "failed"
                and "gave up: 8 attempts" in row.last_error
            )
    assert [w.total_seconds() for w in waits] == [30, 60, 120, 240, 480, 960, 1920]
    assert outbox.backoff(20) == dt.timedelta(hours=1)
    clock.advance(dt.timedelta(days=1))
    assert outbox.deliver_pending(svc, {"log": rec}).handled == 0


def test_permanent_error_fails_at_once_and_unknown_channel_is_retried_with_its_name(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    case_at_repair(svc)
    report = outbox.deliver_pending(svc, {"log": Recorder(fail=100, permanent=True)})
    assert report.failed == len(_rows(svc)) and report.sent == 0
    assert all(r.status == "failed" and "permanent error" in r.last_error for r in _rows(svc))

    case_at_repair(svc)
    report = outbox.deliver_pending(svc, {"sms": Recorder("sms")})
    pending = [r for r in _rows(svc) if r.status == "pending"]
    assert report.retried == len(pending) > 0
    assert all("no notification channel 'log' (available: sms" in r.last_error for r in pending)


def test_a_dead_workers_lease_runs_out_and_its_late_record_changes_nothing(db):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    case_at_repair(svc)
    n = len(_rows(svc))
    taken = outbox.claim(svc, owner="dead", now=T0)  # then it hangs before delivering
    assert len(taken) == n
    rec = Recorder()
    assert outbox.deliver_pending(svc, {"log": rec}, owner="w2").handled == 0  # still leased
    clock.advance(outbox.DEFAULT_LEASE + dt.timedelta(seconds=1))
    assert outbox.deliver_pending(svc, {"log": rec}, owner="w2").sent == n
    late = Recorder()
    assert outbox.deliver_one(svc, taken[0], {"log": late}, owner="dead", now=clock.now()) == "lost"
    assert all(r.status == "sent" and r.attempts == 1 for r in _rows(svc))


def test_company_maps_default_channel_to_the_file_channel(db, tmp_path):
    clock = TestClock(T0)
    svc = service(db, clock=clock)
    svc.companies["demo"].definition.channels.update(
        {"default": {"use": "file"}, "file": {"directory": str(tmp_path)}}
    )
    case_at_repair(svc)
    report = outbox.deliver_pending(svc, {"file": FileChannel(), "log": Recorder()})
    lines = [
        json.loads(x) for x in (tmp_path / "demo.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert report.sent == len(lines) == len(_rows(svc))
    assert lines[0]["company"] == "demo" and lines[0]["template"].startswith("repair.")
    assert [x["id"] for x in lines] == [r.idempotency_key for r in _rows(svc)]


def test_bad_channel_settings_fail_the_message_with_the_setting_named(db):
    svc = service(db, clock=TestClock(T0))
    svc.companies["demo"].definition.channels.update(
        {"default": {"use": "file", "directory": 5, "colour": 1}}
    )
    case_at_repair(svc)
    outbox.deliver_pending(svc, {"file": FileChannel()})
    errors = {r.last_error for r in _rows(svc)}
    assert all(r.status == "failed" for r in _rows(svc))
    assert any("channels.file settings are invalid" in e and "colour" in e for e in errors), errors


def test_the_log_channel_shows_the_rendered_text(db, caplog):
    import logging

    svc = service(db, clock=TestClock(T0))
    case_at_repair(svc)
    with caplog.at_level(logging.INFO, logger="kefu.notify"):
        outbox.deliver_pending(svc, {"log": LogChannel()})
    assert "notify customer via default: repair.engineer-assigned\n您好,您的报修单" in caplog.text
    assert "约定上门时间:2026-11-23 10:00" in caplog.text
    assert "notify role:supervisor" not in caplog.text  # medium urgency: nobody else told
