"""A cancelled timer is deleted (core.cases.timers): the rows of those cancelled before
are deleted too

Revision ID: e9e0e0e0e0e9
Revises: e8e0e0e0e0e8
Create Date: 2026-12-04 14:20:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = 'e9e0e0e0e0e9'
down_revision: Union[str, Sequence[str], None] = 'e8e0e0e0e0e8'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    # a cancelled timer recorded nothing that happened: scheduling its key again made it
    # pending anew, as an insert now does
    op.execute("DELETE FROM timer WHERE status = 'cancelled'")


def downgrade() -> None:
    pass  # the deleted rows said only that a timer was not needed: nothing to restore
