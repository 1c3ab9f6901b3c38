"""case_search: the text-search index of cases (core.cases.search)

Revision ID: d2d0d0d0d0d2
Revises: d1d0d0d0d0d1
Create Date: 2026-12-03 14:45:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from core.cases.search import document
from core.migrations import search_documents

revision: str = 'd2d0d0d0d0d2'
down_revision: Union[str, Sequence[str], None] = 'd1d0d0d0d0d1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Create the search table for this database, and index the cases already stored."""
    conn = op.get_bind()
    sqlite = conn.dialect.name == 'sqlite'
    if sqlite:
        op.execute("CREATE VIRTUAL TABLE case_search USING fts5(doc, tokenize='unicode61')")
        insert = sa.text("INSERT INTO case_search (rowid, doc) VALUES (:id, :doc)")
    else:
        # the tsvector is stored: a phrase match rechecks positions on every candidate row,
        # and re-parsing the text there cost 300 ms per search at 10,000 cases
        op.execute(
            "CREATE TABLE case_search (case_id BIGINT PRIMARY KEY "
            "REFERENCES kefu_case (id) ON DELETE CASCADE, doc TEXT NOT NULL, "
            "terms tsvector GENERATED ALWAYS AS (to_tsvector('simple', doc)) STORED)"
        )
        op.execute("CREATE INDEX ix_case_search_doc ON case_search USING gin (terms)")
        insert = sa.text("INSERT INTO case_search (case_id, doc) VALUES (:id, :doc)")
    for batch in search_documents(conn, document):
        conn.execute(insert, batch)


def downgrade() -> None:
    op.execute('DROP TABLE IF EXISTS case_search')
