"""The audit trail holds on SQLite and PostgreSQL: ordinary numbers verify, every kind of
tampering is found and reported entry by entry.

A tamper corpus of 1,000 random tamperings — an entry edited, deleted, the tail
truncated with the head rewound, the chain rewritten from some entry on with recomputed
codes (under a guessed key, or as old-style plain SHA-256 entries), a case row edited —
must be detected 1,000/1,000; ``-0.0``, ``1e+16`` and ``1e308`` in a form or in journal
data must not be a false alarm. Each tampering runs in a transaction that is rolled back.
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Connection, delete, event, func, select, update

from core import hookimpl
from core.cases import journal as chain
from core.cases.service import CaseService
from core.cli import cli
from core.runtime.plugins import installed
from core.runtime.worker import Worker
from core.storage import schema as t
from core.storage.db import Database
from tests.helpers import CARD, DISPATCH, OPEN_FIELDS, case_at_repair

REPAIRED = {"hours_spent": 2.0, "result": "换了电容", "resolved": True}


def walk(svc: CaseService, n: int = 3) -> list[int]:
    """``n`` repair cases: the last one reported with ``hours_spent: 2.0``."""
    ids = [case_at_repair(svc) for _ in range(n)]
    li = svc.actor("demo", "li")
    svc.act("demo", ids[-1], "complete", li, REPAIRED, 3)
    return ids


def test_negative_zero_and_big_numbers_are_no_false_alarm(
    svc: CaseService, db: Database, tmp_path: Path
) -> None:
    walk(svc)
    with db.write() as conn:
        co = svc.company("demo").id
        chain.append(
            conn,
            co,
            [{"kind": "note", "data": {"a": -0.0, "b": 1e16, "c": 1e308, "d": 0.1, "e": 2**60}}],
            case_id=None,
            actor="system",
            pversion=None,
            now=svc.clock.now(),
        )
    svc.write_checkpoints(tmp_path / "cp.jsonl")
    assert svc.verify_journal(checkpoints=tmp_path / "cp.jsonl") == []
    # a case row holding -0.0 where its journal recorded 0 is the same state
    assert chain.state_digest({"h": -0.0, "n": 1e16}, "s", "open", [], 1) == chain.state_digest(
        {"h": 0, "n": 10**16}, "s", "open", [], 1
    )


def test_every_bad_entry_is_reported_with_its_case_and_kind(
    svc: CaseService, db: Database, tmp_path: Path
) -> None:
    cid = walk(svc)[0]
    number = svc.get_case("demo", cid).number
    with db.write() as conn:
        seqs = [r.seq for r in conn.execute(select(t.journal.c.seq).order_by(t.journal.c.seq))]
        for seq in (seqs[1], seqs[4], seqs[7]):
            conn.execute(update(t.journal).where(t.journal.c.seq == seq).values(actor="mallory"))
        conn.execute(update(t.case).where(t.case.c.id == cid).values(step="closed"))
    problems = svc.verify_journal()
    changed = [p for p in problems if p.kind == "changed"]
    assert [p.seq for p in changed] == [seqs[1], seqs[4], seqs[7]]
    [row] = [p for p in problems if p.kind == "case-row"]
    assert row.case_id == cid and number in row.detail
    # the command says the same, one line per problem, and fails
    out = CliRunner().invoke(
        cli,
        ["audit", "verify", "--database", db.url, "--checkpoints", str(tmp_path / "none.jsonl")],
    )
    assert out.exit_code == 1
    lines = [line for line in out.output.splitlines() if line.startswith("demo: journal entry")]
    assert len(lines) == 4 and f"(case {number}): case-row" in out.output, out.output


def test_a_rotated_key_keeps_old_entries_verifying(
    svc: CaseService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = tmp_path / "keys"
    monkeypatch.setenv("KEFU_AUDIT_KEYS", str(keys))
    chain.forget_keyring()
    try:
        case_at_repair(svc)
        assert chain.Keyring.rotate(keys) == "k2"
        chain.forget_keyring()
        case_at_repair(svc)
        assert svc.verify_journal(checkpoints=tmp_path / "none") == []
        # without the old key its entries cannot be vouched for
        keys.write_text("\n".join(keys.read_text().splitlines()[1:]) + "\n")
        chain.forget_keyring()
        kinds = Counter(p.kind for p in svc.verify_journal(checkpoints=tmp_path / "none"))
        assert set(kinds) == {"unknown-key"} and kinds["unknown-key"] > 3
    finally:
        chain.forget_keyring()


def test_entries_from_before_the_keys_keep_verifying(svc: CaseService, db: Database) -> None:
    """A database migrated from before the keyring: its entries are plain SHA-256 codes
    (key_id NULL, no state); new entries continue the chain under the key."""
    case_at_repair(svc)
    demo = svc.company("demo").id
    with db.write() as conn:  # what the rows looked like before: recompute them old-style
        prev = chain.GENESIS
        rows = select(t.journal).where(t.journal.c.company_id == demo).order_by(t.journal.c.seq)
        for r in conn.execute(rows).all():
            h = chain._legacy_hash(prev, r)
            conn.execute(
                update(t.journal)
                .where(t.journal.c.id == r.id)
                .values(key_id=None, state=None, prev_hash=prev, hash=h)
            )
            prev = h
        conn.execute(
            update(t.journal_head).where(t.journal_head.c.company_id == demo).values(hash=prev)
        )
    assert svc.verify_journal() == []
    case_at_repair(svc)  # new, keyed entries after the old ones
    assert svc.verify_journal() == []


# -- the tamper corpus ------------------------------------------------------------------------
Tamper = Callable[[Connection, random.Random], str]


def _rows(conn: Connection) -> list[Any]:
    return list(conn.execute(select(t.journal).order_by(t.journal.c.seq)).all())


def edit(conn: Connection, rnd: random.Random) -> str:
    r = rnd.choice(_rows(conn))
    column, value = rnd.choice(
        [
            ("data", {"fields": {"engineer": "mallory"}}),
            ("data", {**(r.data or {}), "x": 1}),
            ("actor", "mallory"),
            ("kind", "note"),
            ("action", "cancel"),
            ("at", r.at.replace(year=2020)),
            ("facts", {"urgency": "low"}),
            ("state", "0" * 64),
            ("procedure_version", 99),
        ]
    )
    conn.execute(update(t.journal).where(t.journal.c.id == r.id).values({column: value}))
    return "edit"


def remove(conn: Connection, rnd: random.Random) -> str:
    r = rnd.choice(_rows(conn))
    conn.execute(delete(t.journal).where(t.journal.c.id == r.id))
    return "delete"


def truncate(conn: Connection, rnd: random.Random) -> str:
    rows = _rows(conn)
    keep = rnd.randrange(1, len(rows))
    conn.execute(delete(t.journal).where(t.journal.c.seq > rows[keep - 1].seq))
    last = rows[keep - 1]  # the head rewound to the new last entry: a chain whole in itself
    conn.execute(update(t.journal_head).values(seq=last.seq, hash=last.hash))
    return "truncate"


def rewrite(conn: Connection, rnd: random.Random) -> str:
    """Edit one entry and recompute every code from it on, as someone without the key
    could: under a key of their own (with the real key id), or as old-style entries."""
    rows = _rows(conn)
    start = rnd.randrange(len(rows))
    legacy = rnd.random() < 0.5
    guessed = chain.Keyring(
        {chain.keyring().current: secrets.token_bytes(32)}, chain.keyring().current
    )
    prev = rows[start].prev_hash
    for i, r in enumerate(rows[start:]):
        if i == 0:
            conn.execute(update(t.journal).where(t.journal.c.id == r.id).values(actor="mallory"))
        r = conn.execute(select(t.journal).where(t.journal.c.id == r.id)).one()
        if legacy:
            h = chain._legacy_hash(prev, r)
            key_id = None
        else:
            header = chain._header(
                r.company_id,
                r.seq,
                r.at,
                r.actor,
                r.kind,
                r.case_id,
                r.action,
                r.rule_id,
                r.procedure_version,
                r.key_id,
            )
            facts = chain.canonical_json(r.facts) if r.facts is not None else "null"
            h = guessed.mac(
                r.key_id, chain._message(prev, header, chain.canonical_json(r.data), facts, r.state)
            )
            key_id = r.key_id
        conn.execute(
            update(t.journal)
            .where(t.journal.c.id == r.id)
            .values(prev_hash=prev, hash=h, key_id=key_id)
        )
        prev = h
    conn.execute(update(t.journal_head).values(hash=prev))
    return "rewrite (legacy)" if legacy else "rewrite (guessed key)"


def case_row(conn: Connection, rnd: random.Random) -> str:
    cases = list(conn.execute(select(t.case)).all())
    c = rnd.choice(cases)
    column, value = rnd.choice(
        [
            ("step", "closed" if c.step != "closed" else "intake"),
            ("status", "closed" if c.status != "closed" else "open"),
            ("fields", {**c.fields, "customer_name": "李四"}),
            ("fields", {**c.fields, "hours_spent": 7}),
            ("assignees", ["person:mallory"]),
            ("version", c.version + 1),
        ]
    )
    conn.execute(update(t.case).where(t.case.c.id == c.id).values({column: value}))
    return "case row"


def test_a_thousand_random_tamperings_are_all_detected(
    svc: CaseService, db: Database, tmp_path: Path
) -> None:
    walk(svc, 4)
    li = svc.actor("demo", "li")
    svc.act("demo", case_at_repair(svc), "reschedule", li, {"visit_at": DISPATCH["visit_at"]}, 3)
    checkpoints = tmp_path / "cp.jsonl"
    svc.write_checkpoints(checkpoints)
    marks = chain.read_checkpoints(checkpoints)
    unmarked: Counter[str] = Counter()  # detected without the checkpoint too
    co = svc.company("demo").id
    with db.read() as conn:
        assert chain.verify(conn, co, "demo", marks) == []
        entries = len(_rows(conn))
    rnd = random.Random(18)
    kinds: list[Tamper] = [edit, remove, truncate, rewrite, case_row]
    detected: Counter[str] = Counter()
    tried: Counter[str] = Counter()
    with db.engine.connect() as conn:
        for _ in range(1000):
            tx = conn.begin()
            try:
                kind = rnd.choice(kinds)(conn, rnd)
                tried[kind] += 1
                if chain.verify(conn, co, "demo", marks):
                    detected[kind] += 1
                if chain.verify(conn, co, "demo"):
                    unmarked[kind] += 1
            finally:
                tx.rollback()
    print(
        f"\ntamper corpus over {entries} entries: detected {sum(detected.values())}/"
        f"{sum(tried.values())}: {dict(detected)}"
    )
    print(f"without the checkpoint: {dict(unmarked)}")
    assert detected == tried
    # a truncation, and a rewrite of the whole chain as old-style entries, leave a chain
    # whole in itself: only a checkpoint shows them; everything else shows without one
    assert all(unmarked[k] == tried[k] for k in ("edit", "delete", "case row")), unmarked
    assert unmarked["rewrite (guessed key)"] == tried["rewrite (guessed key)"], unmarked
    with db.read() as conn:
        assert chain.verify(conn, co, "demo", marks) == []  # every tampering was rolled back


def test_stored_journal_text_is_the_coded_text(svc: CaseService, db: Database) -> None:
    """The journal's data is serialised once: the column holds the canonical text."""
    walk(svc, 1)
    with db.read() as conn:  # the entry of the action 'complete' (rules' entries follow it)
        stored = conn.execute(
            select(t.journal.c.data)
            .where(t.journal.c.kind == "action")
            .order_by(t.journal.c.seq.desc())
            .limit(1)
        ).scalar_one()
        raw = conn.exec_driver_sql(
            "SELECT data FROM journal WHERE kind = 'action' ORDER BY seq DESC LIMIT 1"
        ).scalar_one()
    if db.is_sqlite:  # the column's text is exactly the canonical text that was coded
        assert raw == chain.canonical_json(stored)
    assert stored["fields"]["hours_spent"] == 2


class Notary:
    """A plugin keeping its own copy of every checkpoint (one fails, like a notary down)."""

    def __init__(self, fail: bool = False) -> None:
        self.kept: list[dict[str, Any]] = []
        self.fail = fail

    @hookimpl
    def kefu_audit_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("notary unreachable")
        self.kept.append(checkpoint)


def test_hook_audit_checkpoint(
    svc: CaseService, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pm = installed().pm
    down, notary = Notary(fail=True), Notary()
    pm.register(down, name="test-notary-down")
    pm.register(notary, name="test-notary")
    try:
        case_at_repair(svc)
        worker = Worker(svc, poll=0.01, checkpoint_every=0)
        file = tmp_path / "cp.jsonl"
        monkeypatch.setenv("KEFU_AUDIT_CHECKPOINTS", str(file))
        thread = threading.Thread(target=worker.run)
        thread.start()
        try:
            deadline = time.monotonic() + 30
            while not notary.kept and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            worker.stop()
            thread.join()
    finally:
        pm.unregister(name="test-notary")
        pm.unregister(name="test-notary-down")
    # the worker wrote it once (the journal did not grow after), the notary kept the same
    [written] = chain.read_checkpoints(file)
    assert notary.kept == [written.as_json()]  # type: ignore[union-attr]
    with db.read() as conn:
        head = conn.execute(
            select(t.journal_head.c.seq, t.journal_head.c.hash).where(
                t.journal_head.c.company_id == svc.company("demo").id
            )
        ).one()
    assert (notary.kept[0]["seq"], notary.kept[0]["hash"]) == (head.seq, head.hash)
    # the notary's copy verifies the journal as well as kefu's own file
    copy = tmp_path / "notary.jsonl"
    copy.write_text("".join(json.dumps(c) + "\n" for c in notary.kept))
    assert svc.verify_journal(checkpoints=copy) == []


def test_the_head_another_process_moved_is_chained_onto(svc: CaseService, db: Database) -> None:
    """A process chains onto the head its last committed append left, moving it only if it
    is still that one: an entry another process appended meanwhile is chained onto, never
    overwritten, and an append that rolled back is not remembered. After such a miss the
    head is read first for a while (processes writing in turn would miss every time)."""
    svc.forget_remembered()  # as a process that just started (tests share one process)
    cid = case_at_repair(svc)
    co = svc.company("demo").id
    mine = chain.HEADS.get(co)
    assert mine is not None and mine[0] > 0  # what the last committed change left
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))

    def head_statements() -> list[str]:
        out = [s.split()[0] for s in statements if "journal_head" in s]
        statements.clear()
        return out

    def note(conn: Connection, text: str) -> None:
        chain.append(
            conn,
            co,
            [{"kind": "note", "data": {"text": text}}],
            case_id=None,
            actor="system",
            pversion=None,
            now=svc.clock.now(),
        )

    # uncontended, the head is never read: one UPDATE moves it
    svc.act("demo", cid, "complete", svc.actor("demo", "li"), REPAIRED, 3)
    assert head_statements() == ["UPDATE"]
    # another process appends: here, an append whose head this process then forgets
    mine = chain.HEADS.get(co)
    with db.write() as conn:
        note(conn, "written by another process")
    chain.HEADS.put(co, *mine)  # type: ignore[misc]
    head_statements()
    # this append finds the head moved, reads it and chains onto it — then rolls back
    with pytest.raises(RuntimeError, match="the disk is full"):
        with db.write() as conn:
            note(conn, "never committed")
            raise RuntimeError("the disk is full")
    assert head_statements() == [
        "UPDATE",
        "SELECT",
        "UPDATE",
    ]
    # the next changes read the head first, without trying the stale one
    svc.act("demo", cid, "return_card", svc.actor("demo", "li"), CARD, 4)
    assert head_statements() == ["SELECT", "UPDATE"]
    assert svc.verify_journal() == []
    with db.read() as conn:
        seqs = [r.seq for r in conn.execute(select(t.journal.c.seq).order_by(t.journal.c.seq))]
        texts = [
            r.data.get("text")
            for r in conn.execute(select(t.journal.c.data).where(t.journal.c.kind == "note"))
        ]
    assert seqs == list(range(1, len(seqs) + 1))
    assert texts == ["written by another process"]


def test_a_queue_load_edited_by_hand_is_reported(
    svc: CaseService, db: Database, tmp_path: Path
) -> None:
    """Dispatch reads each queue's count of open cases; verification counts the cases
    waiting in each queue and names a queue whose count differs."""
    walk(svc)  # three cases at the engineer li, then one moved on
    assert svc.verify_journal() == []
    a = t.assignee_load
    with db.write() as conn:
        conn.execute(update(a).where(a.c.kind == "person", a.c.ref == "li").values(open_cases=7))
    [p] = svc.verify_journal()
    assert p.kind == "queue-load" and p.seq is None
    with db.read() as conn:
        waiting = conn.execute(
            select(func.count())
            .select_from(t.case_assignee)
            .where(t.case_assignee.c.kind == "person", t.case_assignee.c.ref == "li")
        ).scalar_one()
    assert p.detail == f"queue person:li: dispatch counts 7 open cases, {waiting} wait in it"
    out = CliRunner().invoke(
        cli,
        ["audit", "verify", "--database", db.url, "--checkpoints", str(tmp_path / "none.jsonl")],
    )
    assert out.exit_code == 1 and "demo: queues: queue-load: queue person:li" in out.output


def test_repair_loads_sets_each_wrong_queue_count_to_its_waiting_cases(
    svc: CaseService, db: Database, tmp_path: Path
) -> None:
    """`kefu audit repair-loads` puts back what dispatch reads: a count edited by hand and
    a queue whose row is gone both become the cases waiting in them, and verification is
    clean again; a second run changes nothing."""
    walk(svc)
    # and a new case, waiting in the intake queue
    svc.open_case("demo", "repair-desk", svc.actor("demo", "wang"), OPEN_FIELDS)
    a = t.assignee_load
    with db.read() as conn:
        before = dict(
            ((r.kind, r.ref), r.open_cases)
            for r in conn.execute(select(a.c.kind, a.c.ref, a.c.open_cases))
        )
    assert before[("person", "li")] > 0
    gone = next(k for k, n in sorted(before.items()) if n > 0 and k != ("person", "li"))
    with db.write() as conn:
        conn.execute(update(a).where(a.c.kind == "person", a.c.ref == "li").values(open_cases=7))
        conn.execute(delete(a).where(a.c.kind == gone[0], a.c.ref == gone[1]))
    assert {p.kind for p in svc.verify_journal()} == {"queue-load"}
    out = CliRunner().invoke(cli, ["audit", "repair-loads", "--database", db.url])
    assert out.exit_code == 0, out.output
    assert f"demo: queue person:li: 7 -> {before[('person', 'li')]} open cases" in out.output
    assert f"demo: queue {gone[0]}:{gone[1]}: 0 -> {before[gone]} open cases" in out.output
    assert svc.verify_journal() == []
    with db.read() as conn:
        after = dict(
            ((r.kind, r.ref), r.open_cases)
            for r in conn.execute(select(a.c.kind, a.c.ref, a.c.open_cases))
        )
    assert after == before
    again = CliRunner().invoke(cli, ["audit", "repair-loads", "--database", db.url])
    assert again.exit_code == 0
    assert "demo: every queue's count matches the cases waiting in it" in again.output
    unknown = CliRunner().invoke(
        cli, ["audit", "repair-loads", "--database", db.url, "--company", "nope"]
    )
    assert unknown.exit_code != 0 and "no company 'nope'" in unknown.output
