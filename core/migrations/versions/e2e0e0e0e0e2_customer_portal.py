"""customer portal: used link tokens, portal sessions, rate limits

Revision ID: e2e0e0e0e0e2
Revises: e1d0c0d0d0e1
Create Date: 2026-12-03 16:40:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

import core.storage.schema

revision: str = 'e2e0e0e0e0e2'
down_revision: Union[str, Sequence[str], None] = 'e1d0c0d0d0e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the portal's tables."""
    op.create_table('portal_token_used',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('used_at', core.storage.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['kefu_case.id'], name=op.f('fk_portal_token_used_case_id_kefu_case')),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_portal_token_used_company_id_company')),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_portal_token_used'))
    )
    op.create_table('portal_session',
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('company_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('case_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('actions', sa.JSON().with_variant(postgresql.JSONB(), 'postgresql'), nullable=False),
    sa.Column('expires_at', core.storage.schema.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['kefu_case.id'], name=op.f('fk_portal_session_case_id_kefu_case')),
    sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_portal_session_company_id_company')),
    sa.PrimaryKeyConstraint('digest', name=op.f('pk_portal_session'))
    )
    op.create_index('ix_portal_session_expires', 'portal_session', ['expires_at'], unique=False)
    op.create_table('rate_limit',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', core.storage.schema.UTCDateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_limit'))
    )
    op.create_index('ix_rate_limit_window', 'rate_limit', ['window_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_rate_limit_window', table_name='rate_limit')
    op.drop_table('rate_limit')
    op.drop_index('ix_portal_session_expires', table_name='portal_session')
    op.drop_table('portal_session')
    op.drop_table('portal_token_used')
