"""The journal: every change of a case, append-only and hash-chained per company.

Each entry's hash covers the previous entry's hash and the entry's content (company,
sequence number, instant, actor, kind, case, action, rule, procedure version, data and
facts), so changing, removing or re-ordering an entry breaks the chain that
:func:`verify_chain` walks. The company's ``journal_head`` row holds the last sequence
number and hash; appending locks it (``FOR UPDATE`` on PostgreSQL, the write lock on
SQLite), which serialises writers of one company so the chain never forks.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from core.storage import schema as t

GENESIS = "0" * 64

# built once: building a statement per call cost more than executing it
_SEL_HEAD = (
    select(t.journal_head.c.seq, t.journal_head.c.hash)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .with_for_update()
)
_UPD_HEAD = (
    update(t.journal_head)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
_INS_JOURNAL = insert(t.journal)
_SEL_CASE_JOURNAL = (
    select(t.journal.c.at, t.journal.c.kind, t.journal.c.action, t.journal.c.data)
    .where(t.journal.c.company_id == bindparam("co"), t.journal.c.case_id == bindparam("cid"))
    .order_by(t.journal.c.seq)
)


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)


def entry_hash(prev: str, entry: Mapping[str, Any]) -> str:
    """The hash of an entry chained to the hash of the one before it."""
    return hashlib.sha256((prev + _canonical(entry)).encode()).hexdigest()


def hashed_part(
    company_id: int,
    seq: int,
    at: dt.datetime,
    actor: str,
    kind: str,
    case_id: int | None,
    action: str | None,
    rule_id: str | None,
    pversion: int | None,
    data: Any,
    facts: Any,
) -> dict[str, Any]:
    """What an entry's hash covers."""
    return {
        "company": company_id,
        "seq": seq,
        "at": at.astimezone(dt.UTC).isoformat(),
        "actor": actor,
        "kind": kind,
        "case": case_id,
        "action": action,
        "rule": rule_id,
        "pv": pversion,
        "data": data,
        "facts": facts,
    }


def append(
    conn: Connection,
    company_id: int,
    entries: Sequence[Mapping[str, Any]],
    *,
    case_id: int | None,
    actor: str,
    pversion: int | None,
    now: dt.datetime,
) -> list[int]:
    """Append ``entries`` (``kind``, ``data``, optional ``action``/``rule_id``/``facts``)
    to the company's chain in ``conn``; returns their sequence numbers."""
    if not entries:
        return []
    head = conn.execute(_SEL_HEAD, {"co": company_id}).one()
    seq, prev = head.seq, head.hash
    rows, seqs = [], []
    for e in entries:
        seq += 1
        data = e.get("data", {})
        part = hashed_part(
            company_id,
            seq,
            now,
            actor,
            e["kind"],
            case_id,
            e.get("action"),
            e.get("rule_id"),
            pversion,
            data,
            e.get("facts"),
        )
        h = entry_hash(prev, part)
        rows.append(
            {
                "company_id": company_id,
                "seq": seq,
                "case_id": case_id,
                "at": now,
                "actor": actor,
                "kind": e["kind"],
                "action": e.get("action"),
                "rule_id": e.get("rule_id"),
                "procedure_version": pversion,
                "data": data,
                "facts": e.get("facts"),
                "prev_hash": prev,
                "hash": h,
            }
        )
        seqs.append(seq)
        prev = h
    conn.execute(_INS_JOURNAL, rows)
    conn.execute(_UPD_HEAD, {"co": company_id, "seq": seq, "hash": prev})
    return seqs


_SEL_ACTION_TAKERS = (
    select(t.journal.c.action, t.journal.c.actor)
    .where(
        t.journal.c.company_id == bindparam("co"),
        t.journal.c.case_id == bindparam("cid"),
        t.journal.c.kind == "action",
        t.journal.c.action.in_(bindparam("actions", expanding=True)),
    )
    .distinct()
)


def action_takers(
    conn: Connection, company_id: int, case_id: int, actions: Sequence[str]
) -> dict[str, set[str]]:
    """Who took each of ``actions`` on the case so far (action -> user names)."""
    out: dict[str, set[str]] = {a: set() for a in actions}
    for r in conn.execute(
        _SEL_ACTION_TAKERS, {"co": company_id, "cid": case_id, "actions": list(actions)}
    ):
        out.setdefault(r.action, set()).add(r.actor)
    return out


def case_history(conn: Connection, company_id: int, case_id: int) -> list[dict[str, Any]]:
    """The case's entries, oldest first, as deadlines replay them (at, kind, action, data)."""
    rows = conn.execute(_SEL_CASE_JOURNAL, {"co": company_id, "cid": case_id}).all()
    return [dict(r._mapping) for r in rows]


def verify_chain(
    conn: Connection, company_id: int, company_key: str
) -> list[tuple[str, int | None, str]]:
    """Walk one company's chain; returns (company, first bad seq, problem) for a break."""
    prev = GENESIS
    expected_seq = 0
    rows = conn.execute(
        select(t.journal).where(t.journal.c.company_id == company_id).order_by(t.journal.c.seq)
    )
    for r in rows:
        expected_seq += 1
        if r.seq != expected_seq:
            return [
                (company_key, expected_seq, f"entry {expected_seq} is missing (next is {r.seq})")
            ]
        if r.prev_hash != prev:
            return [(company_key, r.seq, "prev_hash does not match the entry before it")]
        part = hashed_part(
            company_id,
            r.seq,
            r.at,
            r.actor,
            r.kind,
            r.case_id,
            r.action,
            r.rule_id,
            r.procedure_version,
            r.data,
            r.facts,
        )
        if entry_hash(prev, part) != r.hash:
            return [(company_key, r.seq, "content does not match its hash (the entry was changed)")]
        prev = r.hash
    head = conn.execute(
        select(t.journal_head).where(t.journal_head.c.company_id == company_id)
    ).first()
    if head is not None and (head.seq != expected_seq or head.hash != prev):
        return [
            (
                company_key,
                expected_seq + 1 if head.seq > expected_seq else head.seq,
                f"the chain ends at {expected_seq} but its head says {head.seq} (entries deleted?)",
            )
        ]
    return []
