"""booking deposits

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 02:48:18.909719
"""
from alembic import op
import sqlalchemy as sa

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('booking_services', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deposit', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.create_check_constraint(op.f('ck_booking_services_deposit_within_price'),
                                         'deposit >= 0 AND deposit <= price')
    with op.batch_alter_table('appointment_holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deposit', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('remark', sa.String(length=255), server_default='',
                                      nullable=False))
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deposit', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('deposit_hold_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('deposit_status', sa.String(length=16),
                                      server_default='none', nullable=False))
        batch_op.add_column(sa.Column('deposit_refunded', sa.BigInteger(), server_default='0',
                                      nullable=False))
        batch_op.create_unique_constraint(op.f('uq_appointments_deposit_hold_id'),
                                          ['deposit_hold_id'])


def downgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('uq_appointments_deposit_hold_id'), type_='unique')
        batch_op.drop_column('deposit_refunded')
        batch_op.drop_column('deposit_status')
        batch_op.drop_column('deposit_hold_id')
        batch_op.drop_column('deposit')
    with op.batch_alter_table('appointment_holds', schema=None) as batch_op:
        batch_op.drop_column('remark')
        batch_op.drop_column('deposit')
    with op.batch_alter_table('booking_services', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_booking_services_deposit_within_price'),
                                 type_='check')
        batch_op.drop_column('deposit')
