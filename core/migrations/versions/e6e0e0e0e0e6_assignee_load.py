"""assignee_load: each queue's open cases, kept by the commit pipeline, so dispatch reads
a person's load in one lookup instead of counting their queue (core.storage.loads)

Revision ID: e6e0e0e0e0e6
Revises: e5e0e0e0e0e5
Create Date: 2026-12-04 10:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

revision: str = 'e6e0e0e0e0e6'
down_revision: Union[str, Sequence[str], None] = 'e5e0e0e0e0e5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

_ca = sa.table(
    'case_assignee',
    sa.column('company_id', sa.Integer()),
    sa.column('kind', sa.String()),
    sa.column('ref', sa.String()),
)


def upgrade() -> None:
    """Create assignee_load and fill it with the count of each queue's rows (case_assignee
    holds rows of open cases only)."""
    load = op.create_table('assignee_load',
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('open_cases', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_assignee_load_company_id_company')),
    sa.PrimaryKeyConstraint('company_id', 'kind', 'ref', name=op.f('pk_assignee_load'))
    )
    op.execute(
        load.insert().from_select(
            ['company_id', 'kind', 'ref', 'open_cases'],
            sa.select(_ca.c.company_id, _ca.c.kind, _ca.c.ref, sa.func.count()).group_by(
                _ca.c.company_id, _ca.c.kind, _ca.c.ref
            ),
        )
    )


def downgrade() -> None:
    op.drop_table('assignee_load')
