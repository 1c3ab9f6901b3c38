"""Text search over cases: any two or more consecutive characters of a case's number or
of its text fields, Chinese included, found through an index.

Chinese is written without spaces, so a word index cannot find 漏水 inside 卫生间水管漏水;
instead every run of letters and digits is indexed as its overlapping character triples,
then its last pair: 水管漏水 → 水管漏 管漏水 漏水 (a run of two is its pair alone). A
search for a run of three or more characters finds the cases holding all of its triples
one after another — exactly the cases containing it. A run of two is found as the start
of a triple (a prefix query: 漏水 starts 漏水管) or, at the end of a run, as its last
pair. Phone numbers work the same way (尾号 5678 finds …12345678). A run's last pair
also keeps it apart from the next run: the triples of one run and of the next never
follow each other, so a text "123 234 345" is not found by a search for 12345. Each
triple and pair is stored as an ASCII token (``t`` or ``g`` + the hex of its UTF-8) so
both databases' tokenisers keep it whole (and the hex of two characters is a prefix of
the hex of every triple starting with them), and each document starts with its
company's token (``c42``), so a search never leaves its company.

Why triples: the documents used to be pairs alone, and a phrase of pairs is costly
wherever the pairs are common. The pairs of a phone number (00, 13, 39) or of a name
prefix most cases share (客户) are in nearly every document; SQLite then checked the
positions of every document holding them all (a million at a million cases), and a search
for an old customer's name took 250-430 ms. Triples are roughly a hundred times rarer: the
same search reads 15 ms, a phone number 3 ms instead of 60. A run of two costs more than
by its pair (8-80 ms instead of 1-4 ms: the prefix query merges the doclists of every
triple starting with it), which is far inside a page's budget; and a document has no more
tokens than one of pairs, so writing it costs the same.

SQLite keeps the documents in an FTS5 table (``case_search``, rowid = case id), whose
index holds each token's positions, so a phrase is matched inside the index. PostgreSQL
keeps each document's terms (``to_tsvector('simple', doc)``; the text itself is not kept)
in a table under a GIN index, queried with phrase and prefix operators; its GIN index
holds no positions, so every row holding all of a phrase's triples is read again to check
their order. By pairs that was a quarter of the cases for an eight-digit search at 200,000
(2.2 s); by triples far fewer, and a row of terms alone is half as long to read as one
that also held the text (an old customer's name at a million: 72 ms against 97).

The commit pipeline rewrites a case's document whenever its fields change, in the same
transaction: the documents a transaction changes are kept until it is about to commit,
then each is written once, in case-id order. FTS5 buffers a
transaction's terms in memory only while the rows it writes come in ascending order; a
case written twice in one transaction (opened and cancelled, two timers firing) or cases
written out of order would each cost a flush to disk and a small segment for the index
to merge later — enough to halve a bulk load's rate at 60,000 cases.

FTS5 keeps its index as segments and merges them as they pile up, in the transaction
that wrote the last one. Its default merges a level's segments four at a time; at a
million cases that merging wrote more pages than the rest of a change of a case (56
pages a change against 30 at a thousand cases), so the table merges sixteen at a time
(``automerge``, set by a migration): each entry is rewritten half as often, a change
writes about 32 pages whatever the history, and a search looks through a few more
segments — little next to reading the doclists of its tokens.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import BigInteger, Connection, column, table, text

from core.storage.db import before_commit
from core.storage.prepared import Prepared
from core.storage.schema import SEARCH_TABLE

#: characters of text fields indexed per case (a long description is cut there)
MAX_INDEXED = 4000


_RUN = re.compile(r"[^\W_]+")  # letters and digits: what str.isalnum() accepts


def _runs(value: str) -> list[str]:
    """Maximal runs of letters and digits, case-folded."""
    return _RUN.findall(value.casefold())


@functools.lru_cache(maxsize=65536)  # a company's texts share most of their pairs
def _token(pair: str) -> str:
    return "g" + pair.encode().hex()


@functools.lru_cache(maxsize=65536)
def _triple_token(triple: str) -> str:
    return "t" + triple.encode().hex()


def _grams(run: str) -> tuple[str, ...]:
    return _run_grams(run) if len(run) <= _REMEMBERED_RUN else _grams_of(run)


def _triples(run: str) -> list[str]:
    """The tokens of a run's overlapping triples (none for a run of two)."""
    return [_triple_token(run[i : i + 3]) for i in range(len(run) - 2)]


def _grams_of(run: str) -> tuple[str, ...]:
    """A run's tokens: its overlapping triples, then its last pair (a run of two: the
    pair alone)."""
    return (*_triples(run), _token(run[-2:]))


#: the tokens of short runs (a name, a phone number, a word) are remembered: a case's
#: document is made again on each change from mostly the same runs
_REMEMBERED_RUN = 32
_run_grams = functools.lru_cache(maxsize=65536)(_grams_of)


def _texts(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)


def searched_text(number: str, fields: Mapping[str, Any]) -> str:
    """What a case's document is made of: its number and every text in its fields (a
    change of fields that leaves it alone leaves the document alone)."""
    return " ".join([number, *(s for v in fields.values() for s in _texts(v))])[:MAX_INDEXED]


def text_changed(before: Mapping[str, Any], after: Mapping[str, Any]) -> bool:
    """Whether :func:`searched_text` may differ between the two fields: whether a field
    whose value changed holds other texts now. (A change keeps the fields' order and adds
    new ones last, so texts that stayed field by field stay in the same order.)"""
    missing: list[str] = []
    for name, value in after.items():
        old = before.get(name, missing)
        if old is not value and old != value and list(_texts(old)) != list(_texts(value)):
            return True
    return any(name not in after and any(True for _ in _texts(v)) for name, v in before.items())


def document(company_id: int, number: str, fields: Mapping[str, Any]) -> str:
    """The indexed document of a case: its company token, then the tokens of each run of
    its number and of every text in its fields (see :func:`_grams_of`)."""
    tokens = [f"c{company_id}"]
    for run in _runs(searched_text(number, fields)):
        if len(run) > 1:
            tokens.extend(_grams(run))
    return " ".join(tokens)


def needle_runs(q: str) -> list[str]:
    """The runs of a search text that can be searched (two or more characters)."""
    return [r for r in _runs(q) if len(r) >= 2]


def sqlite_match(company_id: int, runs: list[str]) -> str:
    """The FTS5 query: the company token and each run — of three or more characters its
    triples as a phrase; of two, a triple starting with it (a prefix query) or a run's
    last pair."""
    phrases = " AND ".join(
        f'"{" ".join(_triples(r))}"' if len(r) > 2 else f"({_triple_token(r)}* OR {_token(r)})"
        for r in runs
    )
    return f"c{company_id} AND {phrases}"


def pg_query(company_id: int, runs: list[str]) -> str:
    """The tsquery: the company token and each run, as in :func:`sqlite_match` (triples
    one after another; a run of two: a prefix of a triple, or a last pair)."""
    phrases = " & ".join(
        f"({' <-> '.join(_triples(r))})" if len(r) > 2 else f"({_triple_token(r)}:* | {_token(r)})"
        for r in runs
    )
    return f"c{company_id} & {phrases}"


_SQLITE_DELETE = Prepared(text("DELETE FROM case_search WHERE rowid = :id"))
_SQLITE_INSERT = Prepared(text("INSERT INTO case_search (rowid, doc) VALUES (:id, :doc)"))
_PG_UPSERT = Prepared(
    text(
        "INSERT INTO case_search (case_id, terms) VALUES (:id, to_tsvector('simple', :doc)) "
        "ON CONFLICT (case_id) DO UPDATE SET terms = excluded.terms"
    )
)


_PENDING = "kefu.search.pending"


def index(
    conn: Connection,
    case_id: int,
    company_id: int,
    number: str,
    fields: Any,
    *,
    before: Mapping[str, Any] | None,
) -> None:
    """Write a new case's document (``before`` None), or rewrite a case's document whose
    fields were ``before`` — unless its text is the same — before the caller's
    transaction commits."""
    new = before is None
    if before is not None and not text_changed(before, fields):
        return  # the same text makes the same document
    if before_commit(conn, _PENDING, _write_pending):
        conn.info[_PENDING] = {}
    pending: dict[int, list[Any]] = conn.info[_PENDING]
    if case_id in pending:  # written before in this transaction: still new if it was
        pending[case_id][1:] = [company_id, number, fields]
    else:
        pending[case_id] = [new, company_id, number, fields]


def _write_pending(conn: Connection) -> None:
    pending: dict[int, list[Any]] = conn.info.pop(_PENDING)
    write(conn, ((cid, *args) for cid, args in sorted(pending.items())))


def write(conn: Connection, cases: Iterable[tuple[int, bool, int, str, Any]]) -> None:
    """Write the documents of ``cases`` — (case id, new?, company id, number, fields),
    in case-id order — now, in the caller's transaction."""
    docs = [
        {"id": cid, "doc": document(company_id, number, fields), "new": new}
        for cid, new, company_id, number, fields in cases
    ]
    if conn.dialect.name == "sqlite":
        for d in docs:
            if not d["new"]:  # FTS5 has no upsert; a delete of a missing row costs a flush
                _SQLITE_DELETE.execute(conn, d)
            _SQLITE_INSERT.execute(conn, d)
    else:
        _PG_UPSERT.execute_many(conn, docs)


def matched(dialect: str, company_id: int, q: str) -> tuple[Any, Any, Any] | None:
    """The search for ``q`` as parts of a query: the text index's table, the condition
    matching the company's cases containing every run of ``q``, and the case id column
    to join by and to order by (on SQLite the index's own rowid: FTS5 gives its matches
    in rowid order, newest first, and a page stops reading there); None when ``q`` has
    no run of two or more characters."""
    runs = needle_runs(q)
    if not runs:
        return None
    if dialect == "sqlite":
        fts = table(SEARCH_TABLE, column("rowid", BigInteger))
        match = text(f"{SEARCH_TABLE} MATCH :search_q").bindparams(
            search_q=sqlite_match(company_id, runs)
        )
        return fts, match, fts.c.rowid
    docs = table(SEARCH_TABLE, column("case_id", BigInteger))
    match = text(f"{SEARCH_TABLE}.terms @@ to_tsquery('simple', :search_q)").bindparams(
        search_q=pg_query(company_id, runs)
    )
    return docs, match, docs.c.case_id
