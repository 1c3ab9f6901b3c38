"""case_assignee carries the case's opening instant: "my cases", newest first, read
queue by queue from ix_case_assignee_mine (core.cases.queries)

Revision ID: e4e0e0e0e0e4
Revises: e3e0e0e0e0e3
Create Date: 2026-12-04 02:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import core.storage.schema

revision: str = 'e4e0e0e0e0e4'
down_revision: Union[str, Sequence[str], None] = 'e3e0e0e0e0e3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ca = sa.table(
    'case_assignee',
    sa.column('case_id', sa.Integer()),
    sa.column('created_at', core.storage.schema.UTCDateTime()),
)
_case = sa.table(
    'kefu_case',
    sa.column('id', sa.Integer()),
    sa.column('created_at', core.storage.schema.UTCDateTime()),
)


def upgrade() -> None:
    """Add created_at to case_assignee (rows of open cases only), copied from the case."""
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('created_at', core.storage.schema.UTCDateTime(), nullable=True)
        )
    op.execute(
        _ca.update().values(
            created_at=sa.select(_case.c.created_at)
            .where(_case.c.id == _ca.c.case_id)
            .scalar_subquery()
        )
    )
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.alter_column(
            'created_at', existing_type=core.storage.schema.UTCDateTime(), nullable=False
        )
        batch_op.create_index(
            'ix_case_assignee_mine',
            ['company_id', 'kind', 'ref', 'procedure', 'created_at', 'case_id'],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.drop_index('ix_case_assignee_mine')
        batch_op.drop_column('created_at')
