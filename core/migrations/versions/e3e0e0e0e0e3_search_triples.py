"""case_search: runs kept apart in every document; on PostgreSQL also each run's triples
(core.cases.search)

Revision ID: e3e0e0e0e0e3
Revises: e2e0e0e0e0e2
Create Date: 2026-12-03 19:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

from core.cases.search import document
from core.migrations import search_documents

revision: str = 'e3e0e0e0e0e3'
down_revision: Union[str, Sequence[str], None] = 'e2e0e0e0e0e2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Rewrite every search document, 5,000 cases at a time in case-id order (about a
    minute per 100,000 cases): a gap token between runs (a search for 1391 found the text
    "13 39 91"), and on PostgreSQL the triples."""
    conn = op.get_bind()
    # documents are made as the code of today makes them (revision ea writes them all
    # again, as triples and last pairs, on both databases)
    if conn.dialect.name == 'sqlite':
        update = sa.text("UPDATE case_search SET doc = :doc WHERE rowid = :id")
    else:
        update = sa.text("UPDATE case_search SET doc = :doc WHERE case_id = :id")
    for batch in search_documents(conn, document):
        conn.execute(update, batch)


def downgrade() -> None:
    """The earlier searches still work on these documents: nothing to undo."""
