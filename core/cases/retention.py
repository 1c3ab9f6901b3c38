"""Retention: the personal data of closed cases removed when the pack's ``retain:`` says.

A pack's ``retain: {keep: 1 year, anonymise: [customer_name, phone], hold: legal_hold}``
keeps a closed case's ``anonymise`` fields for ``keep`` after it closed (at least as long
as the longest ``retain:`` of its records; ``permanent`` anywhere keeps them for ever),
then clears them through the commit pipeline — one ``retention`` journal entry naming the
fields — and deletes the files of attachment fields among them (and of their items'
attachment fields, for list fields). A case whose ``hold``
field is true (a legal hold, set by an action and so journaled) is never touched. The
journal keeps what it recorded: it is the audit trail, and rewriting it would break its
hash chain. ``kefu retention --dry-run`` lists what a run would do; the worker runs it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from dateutil.relativedelta import relativedelta
from pydantic import BaseModel
from sqlalchemy import delete, select

from core.cases import attachments
from core.cases.service import CaseService
from core.spec.definitions import PackDef, keep_delta
from core.spec.effects import Change, EffectType
from core.storage import schema as t

BATCH = 200


class _Clear(BaseModel):
    fields: list[str]


def _clear(change: Change, args: _Clear, rule_id: str) -> None:
    cleared = [f for f in args.fields if change.fields.get(f) is not None]
    for name in cleared:
        change.fields[name] = None


CLEAR = EffectType("retention", _Clear, _clear, None, "clear fields at the end of retention")


@dataclass
class Due:
    """A closed case whose personal data is due to go."""

    company: str
    case_id: int
    number: str
    procedure: str
    closed_at: dt.datetime
    fields: list[str]


def keep_of(pack: PackDef) -> relativedelta | None:
    """How long after closing a case of ``pack`` keeps its data (None: for ever)."""
    if pack.retain is None:
        return None
    periods = [pack.retain.keep] + [r.retain for r in pack.records.values() if r.retain]
    longest = relativedelta()
    now = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
    for period in periods:
        parsed = keep_delta(period)
        if parsed is None:
            return None
        delta = relativedelta(**{parsed[1]: parsed[0]})
        if now + delta > now + longest:
            longest = delta
    return longest


def due(svc: CaseService, now: dt.datetime, company: str | None = None) -> list[Due]:
    """The closed cases whose data is due to go now (held cases and clean ones left out)."""
    out: list[Due] = []
    c = t.case
    for key, rt in svc.companies.items():
        if company and key != company:
            continue
        for pkey, proc in rt.procedures.items():
            keep = keep_of(proc.pack)
            retain = proc.pack.retain
            if keep is None or retain is None:
                continue
            cutoff = now - keep
            q = (
                select(c.c.id, c.c.number, c.c.fields, c.c.closed_at)
                .where(
                    c.c.company_id == rt.id,
                    c.c.status == "closed",
                    c.c.procedure == pkey,
                    c.c.closed_at <= cutoff,
                )
                .order_by(c.c.closed_at)
                .limit(BATCH)
            )
            with svc.db.read() as conn:
                rows = conn.execute(q).all()
            for r in rows:
                fields = r.fields or {}
                if retain.hold and fields.get(retain.hold) is True:
                    continue
                left = [f for f in retain.anonymise if fields.get(f) is not None]
                if left:
                    out.append(Due(key, r.id, r.number, pkey, r.closed_at, left))
    return out


def run(svc: CaseService, now: dt.datetime, company: str | None = None) -> list[Due]:
    """Clear the data of every case :func:`due` finds, each in its own transaction."""
    done = due(svc, now, company)
    for item in done:
        rt = svc.company(item.company)
        entry = {"kind": "retention", "data": {"anonymised": item.fields}}
        with svc.db.write() as conn:
            svc.pipeline(conn, rt).system(
                item.case_id, entry, [(CLEAR, _Clear(fields=item.fields))], "retention"
            )
            # the uploads of the cleared fields, those of a cleared list's items included
            pack = rt.procedures[item.procedure].pack  # the pack due() read retain: from
            paths = [p for p in attachments.field_paths(pack) if p.partition(".")[0] in item.fields]
            files = conn.execute(
                select(t.attachment.c.id, t.attachment.c.sha256).where(
                    t.attachment.c.company_id == rt.id,
                    t.attachment.c.case_id == item.case_id,
                    t.attachment.c.field.in_(paths),
                )
            ).all()
            if files:
                conn.execute(
                    delete(t.attachment).where(t.attachment.c.id.in_([f.id for f in files]))
                )
        _forget(svc, item.company, rt.id, {f.sha256 for f in files})
    svc.flush_events()
    return done


def _forget(svc: Any, company: str, company_id: int, digests: set[str]) -> None:
    if not digests:
        return
    with svc.db.read() as conn:
        still = set(
            conn.execute(
                select(t.attachment.c.sha256).where(
                    t.attachment.c.company_id == company_id,
                    t.attachment.c.sha256.in_(sorted(digests)),
                )
            ).scalars()
        )
    store = attachments.store_for(svc, company)
    for sha in digests - still:
        store.delete(sha)
