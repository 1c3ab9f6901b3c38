"""cases by last change: ix_case_updated for reports and list filters over a period

Revision ID: d4d0d0d0d0d4
Revises: d3d0d0d0d0d3
Create Date: 2026-12-03 16:20:00

"""
from typing import Sequence, Union

from alembic import op

revision: str = 'd4d0d0d0d0d4'
down_revision: Union[str, Sequence[str], None] = 'd3d0d0d0d0d3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Index a company's cases by their last change (company, updated_at, id)."""
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.create_index(
            'ix_case_updated', ['company_id', 'updated_at', 'id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_updated')
