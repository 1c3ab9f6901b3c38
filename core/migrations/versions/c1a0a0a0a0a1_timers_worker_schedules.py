"""timers, worker and schedules

Revision ID: c1a0a0a0a0a1
Revises: 77fbbaa7e734
Create Date: 2026-11-22 23:00:00

"""
from typing import Sequence, Union

revision: str = 'c1a0a0a0a0a1'
down_revision: Union[str, Sequence[str], None] = '77fbbaa7e734'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema (nothing yet)."""


def downgrade() -> None:
    """Downgrade schema (nothing yet)."""
