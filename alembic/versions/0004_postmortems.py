"""post-mortem revisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models


revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('postmortem_revisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('markdown', sa.Text(), nullable=False),
    sa.Column('auto_markdown', sa.Text(), nullable=False),
    sa.Column('author', sa.String(length=256), nullable=False),
    sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_postmortem_revisions_incident_id_incidents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_postmortem_revisions')),
    sa.UniqueConstraint('incident_id', 'revision', name='uq_postmortem_revisions_once')
    )
    with op.batch_alter_table('postmortem_revisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_postmortem_revisions_incident_id'), ['incident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('postmortem_revisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_postmortem_revisions_incident_id'))
    op.drop_table('postmortem_revisions')
