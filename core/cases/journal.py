"""The journal: every change of a case, append-only and chained per company under a key.

**What an entry's code covers.** Each entry's ``hash`` is an HMAC-SHA-256, under a key
kept outside the database (:class:`Keyring`; the entry names its ``key_id``), of the
previous entry's hash and of the entry: company, sequence number, instant, actor, kind,
case, action, rule, procedure version, data, facts and the case's ``state``. So changing,
removing or re-ordering an entry breaks the chain, and someone who can write to the
database but does not hold the key cannot compute the codes of a rewritten chain.

**Canonical text, serialised once.** ``data`` and ``facts`` are serialised once per entry
into canonical JSON (:func:`canonical_json`: sorted keys, no spaces, numbers in one
normal form); that very text is what the HMAC covers and what the column stores.
PostgreSQL's JSONB normalises numbers (``-0.0`` becomes ``0``, ``1e+16`` an integer), so
verification re-encodes what it reads with the same function, which maps both forms of a
number to one text: a ``-0.0`` is no false alarm on either database.

**The case row.** The last entry a commit writes for a case carries ``state``, the
SHA-256 of the case row it left (fields, step, status, assignees, version). Verification
compares every case row with the state its journal last recorded, so an edit of a case
row outside kefu shows too.

**Truncation.** Deleting the newest entries and rewinding ``journal_head`` leaves a
chain that is whole in itself; signed checkpoints written outside the database
(:func:`write_checkpoint`: the head's sequence number and hash, with their own HMAC) let
:func:`verify` see that entries a checkpoint saw are gone or different.

Entries written before keys existed (``key_id`` NULL) keep their plain SHA-256 codes and
are verified as such. The company's ``journal_head`` row holds the last sequence number
and hash; appending locks it (``FOR UPDATE`` on PostgreSQL, the write lock on SQLite),
which serialises writers of one company so the chain never forks.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, insert, select, update

from core.storage import loads
from core.storage import schema as t
from core.storage.db import JsonText, after_commit
from core.storage.prepared import Prepared, Query

GENESIS = "0" * 64
SAFE_INT = 2**53  # beyond it a JSON number may not survive a trip through a float

# built once: building a statement per call cost more than executing it
_SEL_HEAD = Query(
    select(t.journal_head.c.seq, t.journal_head.c.hash)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .with_for_update()
)
_UPD_HEAD = Prepared(
    update(t.journal_head)
    .where(t.journal_head.c.company_id == bindparam("co"))
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)
#: the head moved on only if it is still the one this process's last append left
_UPD_HEAD_FROM = Prepared(
    update(t.journal_head)
    .where(
        t.journal_head.c.company_id == bindparam("co"),
        t.journal_head.c.seq == bindparam("old_seq"),
        t.journal_head.c.hash == bindparam("old_hash"),
    )
    .values(seq=bindparam("seq"), hash=bindparam("hash"))
)


class _Heads:
    """Each company's chain head as this process's last committed append left it.

    The next append chains onto it and moves the head with one conditional UPDATE, which
    takes the same row lock the head's ``SELECT … FOR UPDATE`` would; only when another
    process (or database) moved the head meanwhile — no row matches both the sequence
    number and the hash — is the head read and the entries chained again. A remembered
    head is only ever the one a committed transaction wrote.

    Where several processes write one company's journal in turn, most remembered heads
    are stale and the conditional UPDATE would be one statement too many: after a miss,
    the company's next ``retry`` appends read the head first, as without a memory."""

    def __init__(self, size: int = 1024, retry: int = 32) -> None:
        self.size, self.retry = size, retry
        self._heads: dict[int, tuple[int, str]] = {}
        self._reading: dict[int, int] = {}  # company -> appends left that read the head

    def get(self, company_id: int) -> tuple[int, str] | None:
        left = self._reading.get(company_id)
        if left:
            self._reading[company_id] = left - 1
            return None
        return self._heads.get(company_id)

    def put(self, company_id: int, seq: int, hash_: str) -> None:
        if len(self._heads) >= self.size and company_id not in self._heads:
            self._heads.clear()
            self._reading.clear()
        self._heads[company_id] = (seq, hash_)

    def missed(self, company_id: int) -> None:
        """The remembered head was stale: read it for the next ``retry`` appends."""
        self._reading[company_id] = self.retry

    def clear(self) -> None:
        self._heads.clear()
        self._reading.clear()


HEADS = _Heads()

_JOURNAL_COLUMNS = [c.name for c in t.journal.c if c.name != "id"]
_INS_JOURNAL = Prepared(insert(t.journal).values({c: bindparam(c) for c in _JOURNAL_COLUMNS}))
_SEL_CASE_JOURNAL = Query(
    select(t.journal.c.at, t.journal.c.kind, t.journal.c.action, t.journal.c.data)
    .where(t.journal.c.company_id == bindparam("co"), t.journal.c.case_id == bindparam("cid"))
    .order_by(t.journal.c.seq)
)


# -- canonical text ----------------------------------------------------------------------
def _normal(value: Any) -> Any:
    """One form per number, whichever database it came back from: a whole number within
    2^53 as an integer (``-0.0`` and ``3.0`` become ``0`` and ``3``), anything larger as
    the shortest text of the nearest float (PostgreSQL gives ``1e+16`` back as an integer
    and ``1e308`` as a 309-digit one)."""
    kind = value.__class__
    # the JSON types first, by their exact class (most values are texts)
    if kind is str or kind is bool or value is None:
        return value
    if kind is dict:
        return {k if k.__class__ is str else str(k): _normal(v) for k, v in value.items()}
    if kind is list:
        return [_normal(v) for v in value]
    if kind is int and -SAFE_INT <= value <= SAFE_INT:
        return value
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, int):
        if -SAFE_INT <= value <= SAFE_INT:
            return value
        try:
            return float(value)
        except OverflowError:  # beyond any float: its digits
            return str(value)
    if isinstance(value, float):
        if value.is_integer() and -SAFE_INT <= value <= SAFE_INT:
            return int(value)
        return value
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return str(value)


#: one encoder for every canonical text (``json.dumps`` with options builds a new one per
#: call, a third of the cost of a small entry's text)
_CANONICAL = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value``: numbers normalised, keys sorted, no spaces."""
    return _CANONICAL.encode(_normal(value))


def state_digest(fields: Any, step: str, status: str, assignees: Any, version: int) -> str:
    """The SHA-256 of what a case row holds that its journal vouches for."""
    state = [fields, step, status, list(assignees), version]
    return hashlib.sha256(canonical_json(state).encode()).hexdigest()


# -- keys ----------------------------------------------------------------------------------
DEFAULT_KEYS = Path("var/audit-keys")
DEFAULT_CHECKPOINTS = Path("var/audit-checkpoints.jsonl")


@dataclass(frozen=True)
class Keyring:
    """The journal's HMAC keys by id; new entries use the newest (``current``).

    Kept in a file outside the database (``KEFU_AUDIT_KEYS``, default
    ``var/audit-keys``): one ``<key id> <hex key>`` per line, the newest last. Rotating
    (``kefu audit rotate-key``) appends a key; old entries keep verifying with theirs.
    """

    keys: Mapping[str, bytes]
    current: str

    @classmethod
    def load(cls, path: Path, *, create: bool = True) -> Keyring:
        """The keyring in ``path``; a missing file is created with one new key."""
        if not path.exists():
            if not create:
                raise FileNotFoundError(f"no audit keyring at {path}")
            cls._append(path, "k1")
        keys: dict[str, bytes] = {}
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                key_id, hexkey = line.split()
                keys[key_id] = bytes.fromhex(hexkey)
            except ValueError:
                raise ValueError(f"{path}:{n}: expected '<key id> <hex key>'") from None
        if not keys:
            raise ValueError(f"{path}: no keys")
        return cls(keys, key_id)

    @staticmethod
    def _append(path: Path, key_id: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{key_id} {secrets.token_hex(32)}\n")
            f.flush()
            os.fsync(f.fileno())

    @classmethod
    def rotate(cls, path: Path) -> str:
        """Add a new key to ``path`` (it becomes the current one); return its id."""
        ring = cls.load(path)
        n = 1 + max((int(k[1:]) for k in ring.keys if k[1:].isdigit()), default=0)
        cls._append(path, f"k{n}")
        return f"k{n}"

    def mac(self, key_id: str, message: str) -> str:
        return hmac.digest(self.keys[key_id], message.encode(), "sha256").hex()


def keys_path() -> Path:
    return Path(os.environ.get("KEFU_AUDIT_KEYS") or DEFAULT_KEYS)


def checkpoints_path() -> Path:
    return Path(os.environ.get("KEFU_AUDIT_CHECKPOINTS") or DEFAULT_CHECKPOINTS)


def keyring() -> Keyring:
    """The process's keyring (read once per ``KEFU_AUDIT_KEYS`` setting)."""
    return _keyring_at(os.environ.get("KEFU_AUDIT_KEYS"))


@functools.lru_cache(maxsize=8)
def _keyring_at(setting: str | None) -> Keyring:
    # by the setting's text: no path is built on every change of a case
    return Keyring.load(Path(setting or DEFAULT_KEYS))


def forget_keyring() -> None:
    """Read the keyring again at next use (after a rotation)."""
    _keyring_at.cache_clear()


# -- the code of an entry ------------------------------------------------------------------
def _message(
    prev: str,
    header: Sequence[Any],
    data_text: str,
    facts_text: str,
    state: str | None,
) -> str:
    return "\n".join((prev, canonical_json(list(header)), data_text, facts_text, state or ""))


def _header(
    company_id: int,
    seq: int,
    at: dt.datetime,
    actor: str,
    kind: str,
    case_id: int | None,
    action: str | None,
    rule_id: str | None,
    pversion: int | None,
    key_id: str,
) -> list[Any]:
    at_text = at.astimezone(dt.UTC).isoformat()
    return [company_id, seq, at_text, actor, kind, case_id, action, rule_id, pversion, key_id]


def _legacy_hash(prev: str, r: Any) -> str:
    """The plain SHA-256 of an entry written before keys existed."""
    part = {
        "company": r.company_id,
        "seq": r.seq,
        "at": r.at.astimezone(dt.UTC).isoformat(),
        "actor": r.actor,
        "kind": r.kind,
        "case": r.case_id,
        "action": r.action,
        "rule": r.rule_id,
        "pv": r.procedure_version,
        "data": r.data,
        "facts": r.facts,
    }
    text = json.dumps(part, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + text).encode()).hexdigest()


def append(
    conn: Connection,
    company_id: int,
    entries: Sequence[Mapping[str, Any]],
    *,
    case_id: int | None,
    actor: str,
    pversion: int | None,
    now: dt.datetime,
    state: str | None = None,
) -> list[int]:
    """Append ``entries`` (``kind``, ``data``, optional ``action``/``rule_id``/``facts``)
    to the company's chain in ``conn``; returns their sequence numbers. ``state``
    (:func:`state_digest` of the case row this commit leaves) goes on the last entry."""
    if not entries:
        return []
    ring = keyring()
    key_id = ring.current
    last = len(entries) - 1

    def chained(head: tuple[int, str]) -> list[dict[str, Any]]:
        """The journal rows of ``entries``, chained onto ``head`` (its sequence number
        and hash)."""
        seq, prev = head
        rows = []
        for i, e in enumerate(entries):
            seq += 1
            # serialised once: the same text is coded and stored
            data_text = canonical_json(e.get("data", {}))
            facts = e.get("facts")
            facts_text = canonical_json(facts) if facts is not None else "null"
            entry_state = state if i == last else None
            header = _header(
                company_id,
                seq,
                now,
                actor,
                e["kind"],
                case_id,
                e.get("action"),
                e.get("rule_id"),
                pversion,
                key_id,
            )
            h = ring.mac(key_id, _message(prev, header, data_text, facts_text, entry_state))
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
                    "data": JsonText(data_text),
                    "facts": JsonText(facts_text) if facts is not None else None,
                    "state": entry_state,
                    "key_id": key_id,
                    "prev_hash": prev,
                    "hash": h,
                }
            )
            prev = h
        return rows

    remembered = HEADS.get(company_id)
    rows = None
    if remembered is not None:
        rows = chained(remembered)
        old_seq, old_hash = remembered
        moved = {"co": company_id, "seq": rows[-1]["seq"], "hash": rows[-1]["hash"]}
        if _UPD_HEAD_FROM.execute(conn, moved | {"old_seq": old_seq, "old_hash": old_hash}) != 1:
            rows = None  # another process appended since: chain onto the head it left
            HEADS.missed(company_id)
    if rows is None:
        head = _SEL_HEAD.first(conn, {"co": company_id})
        if head is None:
            raise LookupError(f"company {company_id} has no journal head")
        rows = chained((head.seq, head.hash))
        _UPD_HEAD.execute(
            conn, {"co": company_id, "seq": rows[-1]["seq"], "hash": rows[-1]["hash"]}
        )
    _INS_JOURNAL.execute_many(conn, rows)
    last_seq, last_hash = rows[-1]["seq"], rows[-1]["hash"]
    after_commit(conn, lambda: HEADS.put(company_id, last_seq, last_hash))
    return [r["seq"] for r in rows]


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
    return [r._asdict() for r in _SEL_CASE_JOURNAL.all(conn, {"co": company_id, "cid": case_id})]


class AuditProblem(NamedTuple):
    """One thing verification found wrong: where (company, entry ``seq``, ``case_id``),
    what (``detail``, in words) and which ``kind``: ``missing``, ``link``, ``changed``,
    ``unknown-key``, ``head``, ``checkpoint``, ``case-row``, ``queue-load``."""

    company: str
    seq: int | None
    detail: str
    kind: str
    case_id: int | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A company's journal head at one instant, coded under the keyring's key."""

    company: str
    seq: int
    hash: str
    at: str
    key_id: str
    mac: str

    def message(self) -> str:
        return canonical_json(["checkpoint", self.company, self.seq, self.hash, self.at])

    def as_json(self) -> dict[str, Any]:
        return {
            "company": self.company,
            "seq": self.seq,
            "hash": self.hash,
            "at": self.at,
            "key_id": self.key_id,
            "mac": self.mac,
        }


def write_checkpoint(
    conn: Connection, company_id: int, company_key: str, now: dt.datetime, path: Path | None = None
) -> Checkpoint | None:
    """Append the company's journal head, signed, to the checkpoint file (default
    ``KEFU_AUDIT_CHECKPOINTS`` or ``var/audit-checkpoints.jsonl``); None for an empty
    journal. The line is flushed to disk before this returns."""
    head = conn.execute(
        select(t.journal_head.c.seq, t.journal_head.c.hash).where(
            t.journal_head.c.company_id == company_id
        )
    ).first()
    if head is None or head.seq == 0:
        return None
    ring = keyring()
    at = now.astimezone(dt.UTC).isoformat()
    draft = Checkpoint(company_key, head.seq, head.hash, at, ring.current, "")
    cp = Checkpoint(
        company_key, head.seq, head.hash, at, ring.current, ring.mac(ring.current, draft.message())
    )
    target = path or checkpoints_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "a", encoding="utf-8") as f:
        f.write(json.dumps(cp.as_json(), sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return cp


def read_checkpoints(path: Path | None = None) -> list[Checkpoint | str]:
    """The checkpoints of a file, oldest first; a line that is no checkpoint comes back as
    the text of its problem."""
    target = path or checkpoints_path()
    if not target.exists():
        return []
    out: list[Checkpoint | str] = []
    for n, line in enumerate(target.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            out.append(
                Checkpoint(
                    str(raw["company"]),
                    int(raw["seq"]),
                    str(raw["hash"]),
                    str(raw["at"]),
                    str(raw["key_id"]),
                    str(raw["mac"]),
                )
            )
        except (ValueError, KeyError, TypeError):
            out.append(f"{target}:{n}: not a checkpoint")
    return out


def entry_code_ok(company_id: int, r: Any, ring: Keyring | None = None) -> bool | None:
    """Whether journal row ``r``'s stored code matches its content (an old-style entry:
    its plain SHA-256); None when it was signed with a key the keyring does not hold.
    One entry alone: the chain around it is :func:`verify`'s walk."""
    if r.key_id is None:
        return hmac.compare_digest(_legacy_hash(r.prev_hash, r), r.hash)
    ring = ring or keyring()
    if r.key_id not in ring.keys:
        return None
    header = _header(
        company_id,
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
    facts_text = canonical_json(r.facts) if r.facts is not None else "null"
    message = _message(r.prev_hash, header, canonical_json(r.data), facts_text, r.state)
    return hmac.compare_digest(ring.mac(r.key_id, message), r.hash)


def verify(
    conn: Connection,
    company_id: int,
    company_key: str,
    checkpoints: Iterable[Checkpoint | str] = (),
) -> list[AuditProblem]:
    """Check one company's journal and case rows; return every problem found, in order.

    The chain entry by entry (sequence, link to the previous entry, code), the head, the
    checkpoints of this company, then every case row against the state its journal last
    recorded. A bad entry does not stop the walk: each is reported.
    """
    ring = keyring()
    problems: list[AuditProblem] = []

    def bad(seq: int | None, detail: str, kind: str, case_id: int | None = None) -> None:
        problems.append(AuditProblem(company_key, seq, detail, kind, case_id))

    mine = [c for c in checkpoints if isinstance(c, str) or c.company == company_key]
    wanted = {c.seq for c in mine if not isinstance(c, str)}
    seen: dict[int, str] = {}
    states: dict[int, tuple[int, str]] = {}
    prev, expected, keyed = GENESIS, 0, False
    rows = conn.execute(
        select(t.journal).where(t.journal.c.company_id == company_id).order_by(t.journal.c.seq)
    )
    for r in rows:
        expected += 1
        if r.seq != expected:
            gap = f"{expected}" if r.seq == expected + 1 else f"{expected}-{r.seq - 1}"
            bad(expected, f"entries {gap} are missing (the next is {r.seq})", "missing")
            expected = r.seq
        if r.prev_hash != prev:
            bad(r.seq, "prev_hash does not match the entry before it", "link", r.case_id)
        if r.key_id is None:
            # an old-style entry is only valid before the first keyed one: else anyone
            # could rewrite the chain's end as plain SHA-256 entries
            ok = not keyed and bool(entry_code_ok(company_id, r, ring))
        elif r.key_id not in ring.keys:
            bad(
                r.seq,
                f"signed with key '{r.key_id}', which is not in the keyring",
                "unknown-key",
                r.case_id,
            )
            ok = True
        else:
            ok = bool(entry_code_ok(company_id, r, ring))
        if not ok:
            bad(
                r.seq,
                "content does not match its code (the entry was changed)",
                "changed",
                r.case_id,
            )
        keyed = keyed or r.key_id is not None
        if r.case_id is not None and r.state is not None:
            states[r.case_id] = (r.seq, r.state)
        if r.seq in wanted:
            seen[r.seq] = r.hash
        prev = r.hash
    head = conn.execute(
        select(t.journal_head).where(t.journal_head.c.company_id == company_id)
    ).first()
    if head is not None and (head.seq != expected or head.hash != prev):
        bad(
            expected + 1 if head.seq > expected else head.seq,
            f"the chain ends at {expected} but its head says {head.seq} (entries deleted?)",
            "head",
        )
    for cp in mine:
        if isinstance(cp, str):
            bad(None, cp, "checkpoint")
        elif cp.key_id not in ring.keys or not hmac.compare_digest(
            ring.mac(cp.key_id, cp.message()), cp.mac
        ):
            bad(
                cp.seq,
                f"the checkpoint of {cp.at} is not signed by a key of the keyring",
                "checkpoint",
            )
        elif cp.seq not in seen:
            bad(
                cp.seq,
                f"a checkpoint saw entry {cp.seq} at {cp.at}; the chain ends at "
                f"{expected} (entries removed)",
                "checkpoint",
            )
        elif seen[cp.seq] != cp.hash:
            bad(
                cp.seq,
                f"entry {cp.seq} differs from the checkpoint of {cp.at} (the chain was rewritten)",
                "checkpoint",
            )
    c = t.case
    cases = conn.execute(
        select(c.c.id, c.c.number, c.c.fields, c.c.step, c.c.status, c.c.assignees, c.c.version)
        .where(c.c.company_id == company_id)
        .order_by(c.c.id)
    )
    for row in cases:
        recorded = states.get(row.id)
        if recorded is None:
            continue  # written before states were recorded
        digest = state_digest(row.fields, row.step, row.status, row.assignees, row.version)
        if digest != recorded[1]:
            bad(
                recorded[0],
                f"case {row.number}: the case row (fields, step, status, "
                f"assignees or version) differs from what its journal recorded at entry "
                f"{recorded[0]}",
                "case-row",
                row.id,
            )
    # dispatch's count of each queue's open cases (kept beside the case rows)
    for kind, ref, kept, counted in loads.mismatches(conn, company_id):
        bad(
            None,
            f"queue {kind}:{ref}: dispatch counts {kept} open cases, {counted} wait in it",
            "queue-load",
        )
    return problems


def verify_all(
    conn: Connection, company: str | None = None, checkpoints: Path | None = None
) -> list[AuditProblem]:
    """:func:`verify` for every company (or the one named), with the checkpoints of
    ``checkpoints`` (default: the configured file)."""
    marks = read_checkpoints(checkpoints)
    problems: list[AuditProblem] = []
    for c in conn.execute(select(t.company.c.id, t.company.c.key).order_by(t.company.c.key)):
        if company is None or c.key == company:
            problems.extend(verify(conn, c.id, c.key, marks))
    return problems
