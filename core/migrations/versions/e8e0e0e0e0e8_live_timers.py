"""ix_timer_due holds the live timers only (pending or claimed), by due instant: a timer
cancelled or fired leaves the index instead of moving inside it (core.cases.timers.live)

Revision ID: e8e0e0e0e0e8
Revises: e7e0e0e0e0e7
Create Date: 2026-12-04 11:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'e8e0e0e0e0e8'
down_revision: Union[str, Sequence[str], None] = 'e7e0e0e0e0e7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIVE = "status IN ('pending', 'claimed')"


def upgrade() -> None:
    with op.batch_alter_table('timer', schema=None) as batch_op:
        batch_op.drop_index('ix_timer_due')
        batch_op.create_index(
            'ix_timer_due',
            ['due_at', 'id'],
            unique=False,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade() -> None:
    with op.batch_alter_table('timer', schema=None) as batch_op:
        batch_op.drop_index('ix_timer_due')
        batch_op.create_index('ix_timer_due', ['status', 'due_at'], unique=False)
