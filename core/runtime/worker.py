"""Firing due timers: claim (lease) → run the kind's handler → mark done, one transaction.

This is the synchronous core that ``kefu worker``, the worker embedded in ``kefu serve``
(SQLite) and the scenario runner (``after:`` / ``at:``) all call. A claim writes a lease
(owner + until) in its own short transaction; the handler then runs in a second write
transaction that also marks the timer done, so its effects happen exactly once. A worker
that dies while holding a lease loses nothing: once the lease runs out the timer is due
again and another worker re-claims it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, update

from core.cases import attachments, retention, timers
from core.cases.service import CaseService
from core.runtime import outbox
from core.runtime.outbox import Channel
from core.storage.schema import timer

log = logging.getLogger("kefu.worker")

DEFAULT_LEASE = dt.timedelta(minutes=5)
RETRY_DELAY = dt.timedelta(minutes=1)


def claim(
    svc: CaseService,
    *,
    owner: str,
    now: dt.datetime,
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> list[timers.DueTimer]:
    """Lease up to ``limit`` due timers to ``owner`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""
    due = or_(
        timer.c.status == timers.PENDING,
        (timer.c.status == timers.CLAIMED) & (timer.c.lease_until <= now),
    )
    q = (
        select(timer)
        .where(timers.live(), due, timer.c.due_at <= now)
        .order_by(timer.c.due_at, timer.c.id)
        .limit(limit)
    )
    if not svc.db.is_sqlite:
        q = q.with_for_update(skip_locked=True)
    with svc.db.write() as conn:
        rows = conn.execute(q).all()
        if not rows:
            return []
        conn.execute(
            update(timer)
            .where(timer.c.id.in_([r.id for r in rows]))
            .values(status=timers.CLAIMED, lease_owner=owner, lease_until=now + lease)
        )
    return [
        timers.DueTimer(
            r.id,
            r.company_id,
            r.case_id,
            r.kind,
            r.due_at,
            r.idempotency_key,
            dict(r.payload or {}),
            r.attempts + 1,
        )
        for r in rows
    ]


def fire(svc: CaseService, due: timers.DueTimer, *, owner: str, now: dt.datetime) -> bool:
    """Run one claimed timer's handler and mark it done in the same transaction.

    Returns False (and leaves the timer for another try) when the lease was lost or the
    handler raised; the handler's writes are then rolled back.
    """
    handler = timers.HANDLERS.get(due.kind)
    try:
        with svc.db.write() as conn:
            res = conn.execute(
                update(timer)
                .where(
                    timer.c.id == due.id,
                    timer.c.status == timers.CLAIMED,
                    timer.c.lease_owner == owner,
                )
                .values(status=timers.DONE, fired_at=now, attempts=due.attempts, lease_until=None)
            )
            if res.rowcount != 1:  # our lease ran out and someone else took it
                return False
            if handler is None:
                raise LookupError(f"no handler for timer kind '{due.kind}'")
            handler(svc, conn, due)
        svc.flush_events()  # what the handler changed, now committed
        return True
    except Exception as exc:
        svc.events.drop()
        log.warning("timer %s (%s) failed: %s", due.key, due.kind, exc)
        with svc.db.write() as conn:
            conn.execute(
                update(timer)
                .where(timer.c.id == due.id, timer.c.lease_owner == owner)
                .values(
                    status=timers.PENDING,
                    lease_owner=None,
                    lease_until=None,
                    attempts=due.attempts,
                    due_at=max(due.due_at, now + RETRY_DELAY),
                )
            )
        return False


def run_due(
    svc: CaseService, *, now: dt.datetime | None = None, owner: str = "inline", limit: int = 100
) -> int:
    """Fire every timer due at ``now`` (default: the service's clock); returns how many fired.

    Timers a handler schedules for a moment already passed fire in the same call.
    """
    fired = 0
    while True:
        at = now or svc.clock.now()
        batch = claim(svc, owner=owner, now=at, limit=limit)
        if not batch:
            return fired
        progress = 0
        for due in batch:
            if fire(svc, due, owner=owner, now=at):
                progress += 1
        fired += progress
        if progress == 0:
            return fired


class Worker:
    """The loop behind ``kefu worker`` and the worker embedded in ``kefu serve``.

    Each round fires the due timers, then delivers the due outbox messages (after the
    timers' own transactions committed, so a message a timer queued goes out in the same
    round). It sleeps ``poll`` seconds when a round found nothing to do, and stops after the
    item at hand when :meth:`stop` is called (SIGTERM/SIGINT in ``kefu worker``).
    """

    def __init__(
        self,
        svc: CaseService,
        channels: Mapping[str, Channel] | None = None,
        *,
        owner: str | None = None,
        batch: int = 100,
        poll: float = 1.0,
        lease: dt.timedelta = DEFAULT_LEASE,
        optimize_every: float = 3600.0,
        checkpoint_every: float = 600.0,
    ) -> None:
        self.svc = svc
        # a signed checkpoint of each company's journal head this often (seconds), when
        # the journal grew: truncating the journal is detectable up to the last one
        self.checkpoint_every = checkpoint_every
        self._checkpointed_at = time.monotonic()
        # statistics refreshed this often (seconds of wall time) while the worker runs
        self.optimize_every = optimize_every
        self._optimized_at = time.monotonic()
        self.channels = dict(channels or {})
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.batch = batch
        self.poll = poll
        self.lease = lease
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run_once(self) -> tuple[int, outbox.DeliveryReport]:
        """One round: every due timer, then every due message. Returns (fired, delivery)."""
        fired = 0
        while not self._stop.is_set():
            at = self.svc.clock.now()
            claimed = claim(self.svc, owner=self.owner, now=at, limit=self.batch, lease=self.lease)
            if not claimed:
                break
            progress = 0
            for due in claimed:
                if (
                    self._stop.is_set()
                ):  # leave the rest: their lease runs out, another worker takes them
                    break
                progress += fire(self.svc, due, owner=self.owner, now=at)
            fired += progress
            if progress == 0:
                break
        report = outbox.DeliveryReport()
        while not self._stop.is_set():
            msgs = outbox.claim(
                self.svc,
                owner=self.owner,
                now=self.svc.clock.now(),
                limit=self.batch,
                lease=self.lease,
            )
            if not msgs:
                break
            settings = outbox.company_channel_settings(self.svc)
            for msg in msgs:
                if self._stop.is_set():
                    break
                outcome = outbox.deliver_one(
                    self.svc,
                    msg,
                    self.channels,
                    owner=self.owner,
                    now=self.svc.clock.now(),
                    settings=settings,
                )
                report += outbox.DeliveryReport(
                    outcome == "sent", outcome == "retry", outcome == "failed"
                )
            if len(msgs) < self.batch:
                break
        return fired, report

    def run(self) -> None:
        """Rounds until stopped; a round that fails (database down) is logged and retried."""
        log.info(
            "worker %s started (batch %d, poll %.1fs, lease %s)",
            self.owner,
            self.batch,
            self.poll,
            self.lease,
        )
        while not self._stop.is_set():
            try:
                fired, report = self.run_once()
                if time.monotonic() - self._optimized_at >= self.optimize_every:
                    self._optimized_at = time.monotonic()
                    self.svc.db.optimize()
                    # uploads no case claimed (the hourly rhythm is ample: they wait hours)
                    swept = attachments.sweep(self.svc, self.svc.clock.now())
                    if swept:
                        log.info("removed %d unclaimed upload(s)", swept)
                    cleared = retention.run(self.svc, self.svc.clock.now())
                    if cleared:
                        log.info("retention: cleared the data of %d case(s)", len(cleared))
                if time.monotonic() - self._checkpointed_at >= self.checkpoint_every:
                    self._checkpointed_at = time.monotonic()
                    self.svc.write_checkpoints(unchanged=False)
            except Exception:
                log.exception("worker round failed; retrying in %.1fs", self.poll)
                fired, report = 0, outbox.DeliveryReport()
            if fired or report.handled:
                log.info(
                    "fired %d timers; messages sent %d, retried %d, failed %d",
                    fired,
                    report.sent,
                    report.retried,
                    report.failed,
                )
            else:
                self._stop.wait(self.poll)
        log.info("worker %s stopped", self.owner)


def run_until(svc: CaseService, target: dt.datetime, *, owner: str = "inline") -> int:
    """Move a test clock to ``target``, firing every timer due on the way at its due instant.

    Scenarios (``after:`` / ``at:``) use this so an escalation's journal entry carries the
    moment it was due, and timers fire in due order (a warning before its breach). The
    service's clock must have a ``set`` method (:class:`core.clock.TestClock`).
    """
    clock: Any = svc.clock
    fired = 0
    while True:
        with svc.db.read() as conn:
            nxt = conn.execute(
                select(timer.c.due_at)
                .where(timers.live(), timer.c.status == timers.PENDING, timer.c.due_at <= target)
                .order_by(timer.c.due_at)
                .limit(1)
            ).scalar()
        if nxt is None:
            break
        if nxt > clock.now():
            clock.set(nxt)
        got = run_due(svc, owner=owner)
        fired += got
        if got == 0:  # a failing handler: leave it for later rather than spin
            break
    clock.set(target)
    return fired + run_due(svc, owner=owner)
