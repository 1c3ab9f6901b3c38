"""SQLite's text index merges its segments sixteen at a time (FTS5 automerge=16, was 4):
a change of a case writes about half the pages at a million cases

Revision ID: e7e0e0e0e0e7
Revises: e6e0e0e0e0e6
Create Date: 2026-12-04 10:30:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = 'e7e0e0e0e0e7'
down_revision: Union[str, Sequence[str], None] = 'e6e0e0e0e0e6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def _automerge(n: int) -> None:
    # an FTS5 table's settings are written into it (its _config shadow table) by
    # inserting a command into the column named after the table; PostgreSQL's search
    # table is an ordinary table with a GIN index, which has no such setting
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f"INSERT INTO case_search(case_search, rank) VALUES('automerge', {n})")


def upgrade() -> None:
    _automerge(16)


def downgrade() -> None:
    _automerge(4)
