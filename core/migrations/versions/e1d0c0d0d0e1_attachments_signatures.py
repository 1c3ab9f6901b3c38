"""attachments and signatures; a case's linked cases by index

Revision ID: e1d0c0d0d0e1
Revises: e1e0e0e0e0e1
Create Date: 2026-12-03 16:30:00

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import core.storage.schema

revision: str = 'e1d0c0d0d0e1'
down_revision: Union[str, Sequence[str], None] = 'e1e0e0e0e0e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    """Uploaded files (content in the attachment store), signatures on cases, and the
    index a record reads a case's linked cases through."""
    op.create_table(
        'attachment',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('company_id', Id, nullable=False),
        sa.Column('case_id', Id, nullable=True),
        sa.Column('procedure', sa.String(length=64), nullable=False),
        sa.Column('field', sa.String(length=64), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('size', sa.BigInteger(), nullable=False),
        sa.Column('media_type', sa.String(length=200), nullable=False),
        sa.Column('filename', sa.String(length=255), nullable=False),
        sa.Column('uploaded_by', sa.String(length=64), nullable=False),
        sa.Column('uploaded_at', core.storage.schema.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['case_id'], ['kefu_case.id'], name=op.f('fk_attachment_case_id_kefu_case')),
        sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_attachment_company_id_company')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attachment')),
    )
    op.create_index('ix_attachment_case', 'attachment', ['company_id', 'case_id'], unique=False)
    op.create_index('ix_attachment_blob', 'attachment', ['company_id', 'sha256'], unique=False)
    op.create_index('ix_attachment_unclaimed', 'attachment', ['case_id', 'uploaded_at'], unique=False)
    op.create_table(
        'signature',
        sa.Column('id', Id, autoincrement=True, nullable=False),
        sa.Column('company_id', Id, nullable=False),
        sa.Column('case_id', Id, nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('role', sa.String(length=64), nullable=False),
        sa.Column('username', sa.String(length=64), nullable=False),
        sa.Column('signed_at', core.storage.schema.UTCDateTime(timezone=True), nullable=False),
        sa.Column('fields_hash', sa.String(length=64), nullable=False),
        sa.Column('journal_seq', sa.BigInteger(), nullable=False),
        sa.Column('void_at', core.storage.schema.UTCDateTime(timezone=True), nullable=True),
        sa.Column('void_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['case_id'], ['kefu_case.id'], name=op.f('fk_signature_case_id_kefu_case')),
        sa.ForeignKeyConstraint(['company_id'], ['company.id'], name=op.f('fk_signature_company_id_company')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_signature')),
    )
    op.create_index('ix_signature_case', 'signature', ['company_id', 'case_id', 'name'], unique=False)
    op.create_index('ix_case_link_from', 'case_link', ['company_id', 'from_case_id'], unique=False)
    op.create_index('ix_case_link_to', 'case_link', ['company_id', 'to_case_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_case_link_to', table_name='case_link')
    op.drop_index('ix_case_link_from', table_name='case_link')
    op.drop_index('ix_signature_case', table_name='signature')
    op.drop_table('signature')
    op.drop_index('ix_attachment_unclaimed', table_name='attachment')
    op.drop_index('ix_attachment_blob', table_name='attachment')
    op.drop_index('ix_attachment_case', table_name='attachment')
    op.drop_table('attachment')
