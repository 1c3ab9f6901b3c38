"""SLAs, deadlines and company calendars

Revision ID: c2b0b0b0b0b2
Revises: c1a0a0a0a0a1
Create Date: 2026-11-22 23:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import core.storage.schema

revision: str = 'c2b0b0b0b0b2'
down_revision: Union[str, Sequence[str], None] = 'c1a0a0a0a0a1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """kefu_case.next_due_at: the earliest running deadline, for the inbox order."""
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_due_at', core.storage.schema.UTCDateTime(), nullable=True))
        batch_op.create_index('ix_case_next_due', ['company_id', 'next_due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_next_due')
        batch_op.drop_column('next_due_at')
