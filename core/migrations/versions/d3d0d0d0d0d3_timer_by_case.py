"""timers by case: ix_timer_case for re-planning one case's timers

Revision ID: d3d0d0d0d0d3
Revises: d2d0d0d0d0d2
Create Date: 2026-12-03 14:55:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = 'd3d0d0d0d0d3'
down_revision: Union[str, Sequence[str], None] = 'd2d0d0d0d0d2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Index the timers of a case (case, kind, status)."""
    with op.batch_alter_table('timer', schema=None) as batch_op:
        batch_op.create_index('ix_timer_case', ['case_id', 'kind', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('timer', schema=None) as batch_op:
        batch_op.drop_index('ix_timer_case')
