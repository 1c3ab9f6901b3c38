"""plugins: settings, dispatch, numbering, surveys

Revision ID: c3c0c0c0c0c3
Revises: c2b0b0b0b0b2
Create Date: 2026-11-22 23:00:00

"""
from typing import Sequence, Union

revision: str = 'c3c0c0c0c0c3'
down_revision: Union[str, Sequence[str], None] = 'c2b0b0b0b0b2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Upgrade schema (nothing yet)."""


def downgrade() -> None:
    """Downgrade schema (nothing yet)."""
