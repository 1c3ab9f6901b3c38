"""hardening: login_throttle (sign-in attempts per client address)

Revision ID: e1e0e0e0e0e1
Revises: d3d0d0d0d0d3
Create Date: 2026-12-03 16:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import core.storage.schema

revision: str = 'e1e0e0e0e0e1'
down_revision: Union[str, Sequence[str], None] = 'd3d0d0d0d0d3'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the per-address sign-in counter."""
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', core.storage.schema.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    op.create_index('ix_login_throttle_window', 'login_throttle', ['window_start'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_login_throttle_window', table_name='login_throttle')
    op.drop_table('login_throttle')
