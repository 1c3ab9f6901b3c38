"""The outbox contract: messages written by an action, delivered after it commits.

Rows are written in the action's transaction by the case service (``outbox`` table,
status ``pending``, an idempotency key per message). After commit the worker hands each
pending message to the :class:`Channel` named by its ``channel`` column. Channels come
from plugins (``kefu_notification_channels``); a channel must use
``message.idempotency_key`` so that a message handed over twice (a worker killed between
sending and recording) is delivered once at the receiving end where it can (SMTP
``Message-ID``, webhook ``Idempotency-Key`` header) and is never sent twice by kefu
once recorded as sent.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update

from core.cases.service import CaseService
from core.spec.extensions import enabled_for
from core.spec.templates import with_text
from core.storage import schema as t

log = logging.getLogger("kefu.outbox")


@dataclass(frozen=True)
class OutboxMessage:
    """One pending message, as handed to a channel."""

    id: int
    company_id: int
    company: str
    case_id: int | None
    channel: str
    recipient: str
    template: str
    payload: dict[str, Any]
    idempotency_key: str
    attempts: int
    created_at: dt.datetime


class DeliveryError(Exception):
    """Raised by a channel: ``permanent=True`` gives up at once, otherwise retried later."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    """A way to deliver outbox messages (log, file, SMTP, webhook, SMS...)."""

    name: str

    def deliver(self, message: OutboxMessage, settings: dict[str, Any]) -> None:
        """Deliver ``message``; ``settings`` are the company's settings for this channel.

        Return normally when delivered; raise :class:`DeliveryError` otherwise.
        """


# -- delivery (the worker, after commit) -------------------------------------------------

MAX_ATTEMPTS = 8
FIRST_BACKOFF = dt.timedelta(seconds=30)
MAX_BACKOFF = dt.timedelta(hours=1)
DEFAULT_LEASE = dt.timedelta(minutes=5)
PENDING, SENT, FAILED = "pending", "sent", "failed"
DEFAULT_CHANNEL = (
    "log"  # where `channel: default` goes unless the company says `default: {use: ...}`
)

SettingsLookup = Callable[[str, str], Mapping[str, Any]]


@dataclass
class DeliveryReport:
    """What one :func:`deliver_pending` call did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __add__(self, other: DeliveryReport) -> DeliveryReport:
        return DeliveryReport(
            self.sent + other.sent, self.retried + other.retried, self.failed + other.failed
        )

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


def backoff(attempts: int) -> dt.timedelta:
    """Wait before attempt ``attempts + 1``: 30 s, 1 min, 2 min, ... capped at 1 hour."""
    return min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def claim(
    svc: CaseService,
    *,
    owner: str,
    now: dt.datetime,
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
) -> list[OutboxMessage]:
    """Lease up to ``limit`` messages due for (re)delivery (``SKIP LOCKED`` on PostgreSQL)."""
    o = t.outbox
    due = (
        (o.c.status == PENDING)
        & (o.c.next_attempt_at <= now)
        & (o.c.lease_until.is_(None) | (o.c.lease_until <= now))
    )
    q = (
        select(o, t.company.c.key.label("company_key"))
        .join(t.company, t.company.c.id == o.c.company_id)
        .where(due)
        .order_by(o.c.next_attempt_at, o.c.id)
        .limit(limit)
    )
    if not svc.db.is_sqlite:
        q = q.with_for_update(of=o, skip_locked=True)
    with svc.db.write() as conn:
        rows = conn.execute(q).all()
        if not rows:
            return []
        conn.execute(
            update(o)
            .where(o.c.id.in_([r.id for r in rows]))
            .values(lease_owner=owner, lease_until=now + lease)
        )
    return [
        OutboxMessage(
            r.id,
            r.company_id,
            r.company_key,
            r.case_id,
            r.channel,
            r.recipient,
            r.template,
            # the template rendered now: after the action's commit, outside any transaction
            with_text(r.payload or {}),
            r.idempotency_key,
            r.attempts + 1,
            r.created_at,
        )
        for r in rows
    ]


def _record(svc: CaseService, msg: OutboxMessage, owner: str, values: dict[str, Any]) -> bool:
    o = t.outbox
    with svc.db.write() as conn:
        res = conn.execute(
            update(o)
            .where(o.c.id == msg.id, o.c.status == PENDING, o.c.lease_owner == owner)
            .values(lease_owner=None, lease_until=None, attempts=msg.attempts, **values)
        )
    return res.rowcount == 1


def deliver_one(
    svc: CaseService,
    msg: OutboxMessage,
    channels: Mapping[str, Channel],
    *,
    owner: str,
    now: dt.datetime,
    settings: SettingsLookup | None = None,
) -> str:
    """Hand one claimed message to its channel and record the outcome.

    Returns ``"sent"``, ``"retry"``, ``"failed"`` or ``"lost"`` (the lease ran out and another
    worker took the message over: nothing is recorded by this one).
    """
    conf = dict(settings(msg.company, msg.channel) if settings else {})
    # a rule's channel is a name the company maps to a real channel: `default: {use: email}`
    name = conf.pop("use", None) or (DEFAULT_CHANNEL if msg.channel == "default" else msg.channel)
    if name != msg.channel and settings:
        conf = {**settings(msg.company, name), **conf}
    channel = channels.get(name)
    error: str
    permanent = False
    off = _disabled_owner(svc, msg.company, name)
    if off is not None:
        channel, permanent = None, True
        error = (
            f"notification channel '{name}' comes from plugin '{off}', "
            f"which company '{msg.company}' disables"
        )
    elif channel is None:
        error = (
            f"no notification channel '{name}' (available: "
            f"{', '.join(sorted(channels)) or 'none'}; is its plugin installed and enabled?)"
        )
    if channel is not None:
        try:
            channel.deliver(msg, conf)
        except DeliveryError as exc:
            error, permanent = str(exc), exc.permanent
        except Exception as exc:  # a channel bug must not stop the worker
            log.exception("channel %s failed on message %s", msg.channel, msg.idempotency_key)
            error = f"{type(exc).__name__}: {exc}"
        else:
            return (
                "sent"
                if _record(svc, msg, owner, {"status": SENT, "sent_at": now, "last_error": None})
                else "lost"
            )
    if permanent or msg.attempts >= MAX_ATTEMPTS:
        why = "permanent error" if permanent else f"{msg.attempts} attempts"
        ok = _record(
            svc, msg, owner, {"status": FAILED, "last_error": f"{error} (gave up: {why})"[:2000]}
        )
        if ok:
            log.error(
                "message %s to %s via %s failed for good: %s",
                msg.idempotency_key,
                msg.recipient,
                msg.channel,
                error,
            )
        return "failed" if ok else "lost"
    ok = _record(
        svc,
        msg,
        owner,
        {"last_error": error[:2000], "next_attempt_at": now + backoff(msg.attempts)},
    )
    log.warning(
        "message %s via %s: attempt %d failed, retrying: %s",
        msg.idempotency_key,
        msg.channel,
        msg.attempts,
        error,
    )
    return "retry" if ok else "lost"


def _disabled_owner(svc: CaseService, company: str, channel: str) -> str | None:
    """The plugin giving ``channel`` when ``company`` disables it, else None.

    A company disables a plugin with ``plugins: {name: {enabled: false}}``.
    """
    owner = svc.catalog.extensions.plugin_of("notification channel", channel)
    rt = svc.companies.get(company)
    if owner is None or rt is None or enabled_for(rt.definition, owner):
        return None
    return owner


def deliver_pending(
    svc: CaseService,
    channels: Mapping[str, Channel],
    *,
    now: dt.datetime | None = None,
    owner: str = "inline",
    limit: int = 100,
    lease: dt.timedelta = DEFAULT_LEASE,
    settings: SettingsLookup | None = None,
) -> DeliveryReport:
    """Deliver every message due at ``now``, batch by batch; returns what happened.

    ``settings(company_key, channel_name)`` gives a channel its company settings; by default
    the company config's ``channels:`` entry.
    """
    if settings is None:
        settings = company_channel_settings(svc)
    report = DeliveryReport()
    while True:
        at = now or svc.clock.now()
        batch = claim(svc, owner=owner, now=at, limit=limit, lease=lease)
        if not batch:
            return report
        for msg in batch:
            outcome = deliver_one(svc, msg, channels, owner=owner, now=at, settings=settings)
            if outcome == "sent":
                report.sent += 1
            elif outcome == "retry":
                report.retried += 1
            elif outcome == "failed":
                report.failed += 1
        if len(batch) < limit:
            return report


def company_channel_settings(svc: CaseService) -> SettingsLookup:
    """``settings(company, channel)`` from each company config's ``channels:`` mapping."""

    def lookup(company: str, channel: str) -> Mapping[str, Any]:
        rt = svc.companies.get(company)
        return rt.definition.channels.get(channel, {}) if rt else {}

    return lookup
