"""case_search: every document written anew as its runs' triples and last pairs, on both
databases (core.cases.search; SQLite's held pairs, PostgreSQL's pairs and triples); on
PostgreSQL the table keeps the terms alone, no longer the text they were made of

Revision ID: eae0e0e0e0ea
Revises: e9e0e0e0e0e9
Create Date: 2026-12-04 17:00:00

"""
from typing import Any, Callable, Mapping, Sequence, Union

from alembic import op
import sqlalchemy as sa

from core.cases.search import _runs, document, searched_text
from core.migrations import search_documents

revision: str = 'eae0e0e0e0ea'
down_revision: Union[str, Sequence[str], None] = 'e9e0e0e0e0e9'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _rebuild(make: Callable[[int, str, Mapping[str, Any]], str], *, slim: bool) -> None:
    """Write every case's document with ``make``, into an emptied table, in case-id order
    (at a million cases: 45 s on SQLite; the index is built in one pass, where updating
    each document in place would rewrite it a million times). On PostgreSQL the table
    is made again: ``slim``, it keeps the terms alone (a search reads each row it
    checks, and with the text beside them rows were twice as long), else the text and
    the terms made from it, as before."""
    conn = op.get_bind()
    if conn.dialect.name == 'sqlite':
        # an FTS5 table is emptied fastest by making it again (a DELETE reads every
        # document back to find its tokens); its settings go with it
        op.execute("DROP TABLE case_search")
        op.execute("CREATE VIRTUAL TABLE case_search USING fts5(doc, tokenize='unicode61')")
        op.execute("INSERT INTO case_search(case_search, rank) VALUES('automerge', 16)")
        insert = sa.text("INSERT INTO case_search (rowid, doc) VALUES (:id, :doc)")
    else:
        op.execute("DROP TABLE case_search")
        key = "case_id BIGINT PRIMARY KEY REFERENCES kefu_case (id) ON DELETE CASCADE"
        if slim:
            op.execute(f"CREATE TABLE case_search ({key}, terms tsvector NOT NULL)")
            insert = sa.text(
                "INSERT INTO case_search (case_id, terms) "
                "VALUES (:id, to_tsvector('simple', :doc))"
            )
        else:
            op.execute(
                f"CREATE TABLE case_search ({key}, doc TEXT NOT NULL, "
                "terms tsvector GENERATED ALWAYS AS (to_tsvector('simple', doc)) STORED)"
            )
            insert = sa.text("INSERT INTO case_search (case_id, doc) VALUES (:id, :doc)")
    for batch in search_documents(conn, make):
        conn.execute(insert, batch)
    if conn.dialect.name != 'sqlite':  # built once, over every row
        op.execute("CREATE INDEX ix_case_search_doc ON case_search USING gin (terms)")
        op.execute("ANALYZE case_search")


def upgrade() -> None:
    _rebuild(document, slim=True)


def _earlier(company_id: int, number: str, fields: Mapping[str, Any]) -> str:
    """A document as revision e9 wrote it: the company token, then each run's pairs after
    a gap token ``x``; on PostgreSQL then each run's triples the same way."""
    runs = [r for r in _runs(searched_text(number, fields)) if len(r) > 1]
    tokens = [f"c{company_id}"]
    for size, mark in ((2, 'g'), (3, 't')) if _on_postgresql() else ((2, 'g'),):
        for run in runs:
            tokens.append('x')
            tokens.extend(
                mark + run[i : i + size].encode().hex() for i in range(len(run) - size + 1)
            )
    return " ".join(tokens)


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name != 'sqlite'


def downgrade() -> None:
    _rebuild(_earlier, slim=False)
