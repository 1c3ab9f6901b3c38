"""inbox queues: case_assignee carries the procedure and the case's next due instant

Revision ID: d1d0d0d0d0d1
Revises: c3c0c0c0c0c3
Create Date: 2026-12-03 14:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import core.storage.schema
from core.storage.schema import NO_DUE

revision: str = 'd1d0d0d0d0d1'
down_revision: Union[str, Sequence[str], None] = 'c3c0c0c0c0c3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ca = sa.table(
    'case_assignee',
    sa.column('case_id', sa.Integer()),
    sa.column('procedure', sa.String()),
    sa.column('due_at', core.storage.schema.UTCDateTime()),
)
_case = sa.table(
    'kefu_case',
    sa.column('id', sa.Integer()),
    sa.column('procedure', sa.String()),
    sa.column('status', sa.String()),
    sa.column('next_due_at', core.storage.schema.UTCDateTime()),
)


def upgrade() -> None:
    """Add procedure and due_at to case_assignee, fill them, and drop rows of closed cases."""
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.add_column(sa.Column('procedure', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('due_at', core.storage.schema.UTCDateTime(), nullable=True))
    closed = sa.select(_case.c.id).where(_case.c.status == 'closed').scalar_subquery()
    op.execute(_ca.delete().where(_ca.c.case_id.in_(closed)))
    of_case = _case.c.id == _ca.c.case_id
    op.execute(
        _ca.update().values(
            procedure=sa.select(_case.c.procedure).where(of_case).scalar_subquery(),
            due_at=sa.func.coalesce(
                sa.select(_case.c.next_due_at).where(of_case).scalar_subquery(),
                sa.literal(NO_DUE, core.storage.schema.UTCDateTime()),
            ),
        )
    )
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.alter_column('procedure', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column(
            'due_at', existing_type=core.storage.schema.UTCDateTime(), nullable=False
        )
        batch_op.drop_index('ix_case_assignee_lookup')
        batch_op.create_index(
            'ix_case_assignee_inbox',
            ['company_id', 'kind', 'ref', 'procedure', 'due_at', 'case_id'],
            unique=False,
        )
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.create_index('ix_case_created', ['company_id', 'created_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('kefu_case', schema=None) as batch_op:
        batch_op.drop_index('ix_case_created')
    with op.batch_alter_table('case_assignee', schema=None) as batch_op:
        batch_op.drop_index('ix_case_assignee_inbox')
        batch_op.create_index('ix_case_assignee_lookup', ['company_id', 'kind', 'ref'], unique=False)
        batch_op.drop_column('due_at')
        batch_op.drop_column('procedure')
