"""hardening: login_throttle (sign-in attempts per client address); journal.state and
journal.key_id (entries coded under a key, the case row's state they vouch for)

Revision ID: e1e0e0e0e0e1
Revises: d4d0d0d0d0d4
Create Date: 2026-12-03 16:00:00

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa

import core.storage.schema

revision: str = 'e1e0e0e0e0e1'
down_revision: Union[str, Sequence[str], None] = 'd4d0d0d0d0d4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the per-address sign-in counter and the journal's state and key id (existing
    entries keep NULL: they were made as plain SHA-256 codes and verify as such)."""
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('window_start', core.storage.schema.UTCDateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    op.create_index('ix_login_throttle_window', 'login_throttle', ['window_start'], unique=False)
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.add_column(sa.Column('state', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('key_id', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('journal', schema=None) as batch_op:
        batch_op.drop_column('key_id')
        batch_op.drop_column('state')
    op.drop_index('ix_login_throttle_window', table_name='login_throttle')
    op.drop_table('login_throttle')
