"""appointment notices: when each timeline entry's `appointment` notification was written

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 02:47:50.460670
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('appointment_events', sa.Column('notified_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True))
    op.create_index(op.f('ix_appointment_events_notified_at'), 'appointment_events', ['notified_at'], unique=False)
    # Entries written before notifications existed are not announced now.
    op.execute("UPDATE appointment_events SET notified_at = created_at")


def downgrade() -> None:
    op.drop_index(op.f('ix_appointment_events_notified_at'), table_name='appointment_events')
    op.drop_column('appointment_events', 'notified_at')
