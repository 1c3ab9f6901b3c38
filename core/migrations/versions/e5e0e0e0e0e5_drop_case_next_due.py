"""drop ix_case_next_due: the inbox reads due order from case_assignee
(ix_case_assignee_inbox) and no query orders cases by next_due_at, while every change of
a case's deadlines moved an entry of it

Revision ID: e5e0e0e0e0e5
Revises: e4e0e0e0e0e4
Create Date: 2026-12-04 02:00:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = 'e5e0e0e0e0e5'
down_revision: Union[str, Sequence[str], None] = 'e4e0e0e0e0e4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_next_due')


def downgrade() -> None:
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.create_index('ix_case_next_due', ['company_id', 'next_due_at'], unique=False)
