"""SLAs, deadlines and company calendars

Revision ID: c2b0b0b0b0b2
Revises: c1a0a0a0a0a1
Create Date: 2026-11-22 23:00:00

"""
from typing import Sequence, Union

revision: str = 'c2b0b0b0b0b2'
down_revision: Union[str, Sequence[str], None] = 'c1a0a0a0a0a1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema (nothing yet)."""


def downgrade() -> None:
    """Downgrade schema (nothing yet)."""
