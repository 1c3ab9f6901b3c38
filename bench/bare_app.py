"""The bare endpoint of bench/http_bench.py: verify a case with the sqlite3 module.

One Litestar route, ``POST /bare/cases/{id}/verify``, doing in one transaction the writes
kefu's verify does (``KEFU_BARE_SHAPE``: the resulting step, fields, assignees and number
of journal rows, measured on kefu first): read the case, update it with its version
checked, replace its inbox rows and its search document, append the journal rows and
move the journal head. No rules, no validation, no authentication beyond a present
bearer token: the floor an HTTP endpoint over the same tables can reach.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import threading
from typing import Any

from litestar import Litestar, Request, get, post
from litestar.exceptions import HTTPException, NotAuthorizedException

from core.storage.db import SQLITE_PRAGMAS

SHAPE: dict[str, Any] = json.loads(os.environ.get("KEFU_BARE_SHAPE", "{}"))
_conn = sqlite3.connect(
    os.environ.get("KEFU_BARE_DB", ":memory:"), isolation_level=None, check_same_thread=False
)
for _pragma in SQLITE_PRAGMAS:  # the database set up as kefu's own connections are
    _conn.execute(_pragma)
_lock = threading.Lock()


@get("/health", sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@post("/bare/cases/{case_id:int}/verify", status_code=200, sync_to_thread=True)
def verify(case_id: int, request: Request[Any, Any, Any], data: dict[str, Any]) -> dict[str, Any]:
    if not request.headers.get("authorization", "").startswith("Bearer "):
        raise NotAuthorizedException()
    fields = json.dumps({**SHAPE["fields"], **data["fields"]}, ensure_ascii=False)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    with _lock:
        cur = _conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            row = cur.execute(
                "SELECT id, company_id, number, version, procedure FROM kefu_case WHERE id=?",
                (case_id,),
            ).fetchone()
            if row is None:
                raise HTTPException(status_code=404)
            _, company, number, version, procedure = row
            n = cur.execute(
                "UPDATE kefu_case SET fields=?, step=?, assignees=?, version=?, updated_at=?"
                " WHERE id=? AND company_id=? AND version=?",
                (
                    fields,
                    SHAPE["step"],
                    json.dumps(SHAPE["assignees"]),
                    data["expected_version"] + 1,
                    now,
                    case_id,
                    company,
                    data["expected_version"],
                ),
            ).rowcount
            if n != 1:
                raise HTTPException(status_code=409)
            cur.execute("DELETE FROM case_assignee WHERE case_id=?", (case_id,))
            cur.executemany(
                "INSERT INTO case_assignee (case_id, kind, ref, company_id, procedure, due_at,"
                " created_at) VALUES (?,?,?,?,?,'9000-01-01 00:00:00',?)",
                [(case_id, *a.split(":", 1), company, procedure, now) for a in SHAPE["assignees"]],
            )
            cur.execute("DELETE FROM case_search WHERE rowid=?", (case_id,))
            cur.execute(
                "INSERT INTO case_search (rowid, doc) VALUES (?, ?)", (case_id, f"c{company}")
            )
            seq, prev = cur.execute(
                "SELECT seq, hash FROM journal_head WHERE company_id=?", (company,)
            ).fetchone()
            for _ in range(SHAPE["journal_rows"]):
                seq += 1
                entry = json.dumps({"fields": data["fields"]}, ensure_ascii=False)
                digest = hashlib.sha256((prev + entry).encode()).hexdigest()
                cur.execute(
                    "INSERT INTO journal (company_id, seq, case_id, at, actor, kind, data,"
                    " prev_hash, hash) VALUES (?,?,?,?,'wang','action',?,?,?)",
                    (company, seq, case_id, now, entry, prev, digest),
                )
                prev = digest
            cur.execute(
                "UPDATE journal_head SET seq=?, hash=? WHERE company_id=?", (seq, prev, company)
            )
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
    return {"id": case_id, "number": number, "step": SHAPE["step"], "version": version + 1}


app = Litestar([health, verify])
