"""points expiry: earnings are found by when they lapse (the nightly expiry job).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05 19:45:00
"""
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('points_ledger', schema=None) as batch_op:
        batch_op.create_index('ix_points_ledger_expires_at', ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('points_ledger', schema=None) as batch_op:
        batch_op.drop_index('ix_points_ledger_expires_at')
