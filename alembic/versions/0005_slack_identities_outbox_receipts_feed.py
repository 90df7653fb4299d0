"""slack identities, outbox, receipts, feed

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('slack_feed',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_slack_feed'))
    )
    op.create_table('slack_identities',
    sa.Column('slack_user_id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('slack_user_id', name=op.f('pk_slack_identities'))
    )
    with op.batch_alter_table('slack_identities', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_identities_name'), ['name'], unique=False)

    op.create_table('slack_messages',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=False),
    sa.Column('op', sa.String(length=16), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('channel', sa.String(length=80), nullable=True),
    sa.Column('thread_ts', sa.String(length=32), nullable=True),
    sa.Column('user', sa.String(length=32), nullable=True),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ts', sa.String(length=32), nullable=True),
    sa.Column('created_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', core.models.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slack_messages')),
    sa.UniqueConstraint('key', name=op.f('uq_slack_messages_key'))
    )
    with op.batch_alter_table('slack_messages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_messages_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_slack_messages_status'), ['status'], unique=False)

    op.create_table('slack_receipts',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('received_at', core.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_slack_receipts'))
    )
    with op.batch_alter_table('slack_receipts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_slack_receipts_received_at'), ['received_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('slack_receipts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_receipts_received_at'))

    op.drop_table('slack_receipts')
    with op.batch_alter_table('slack_messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_messages_status'))
        batch_op.drop_index(batch_op.f('ix_slack_messages_incident_id'))

    op.drop_table('slack_messages')
    with op.batch_alter_table('slack_identities', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_slack_identities_name'))

    op.drop_table('slack_identities')
    op.drop_table('slack_feed')
