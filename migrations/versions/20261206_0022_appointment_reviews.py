"""appointment reviews (one per appointment) and the staff's rating summary

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 02:48:40.178757
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appointment_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('appointment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('provider_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('staff_id', sa.BigInteger(), nullable=True),
    sa.Column('service_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('rating', sa.SmallInteger(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('media_ids', sa.JSON(), nullable=False),
    sa.Column('has_images', sa.Boolean(), nullable=False),
    sa.Column('anonymous', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=255), nullable=False),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('reply_text', sa.String(length=500), nullable=False),
    sa.Column('reply_by', sa.BigInteger(), nullable=True),
    sa.Column('replied_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('merchant_notified_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_appointment_reviews_rating_range')),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'], name=op.f('fk_appointment_reviews_appointment_id_appointments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_appointment_reviews_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointment_reviews')),
    sa.UniqueConstraint('appointment_id', name=op.f('uq_appointment_reviews_appointment_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_appointment_reviews_provider_status', 'appointment_reviews', ['provider_id', 'status', 'id'], unique=False)
    op.create_index('ix_appointment_reviews_provider_status_rating', 'appointment_reviews', ['provider_id', 'status', 'rating', 'id'], unique=False)
    op.create_index('ix_appointment_reviews_staff_status', 'appointment_reviews', ['staff_id', 'status', 'id'], unique=False)
    op.create_index('ix_appointment_reviews_user', 'appointment_reviews', ['user_id', 'id'], unique=False)
    op.add_column('booking_staff', sa.Column('rating_count', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('booking_staff', sa.Column('rating_sum', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    op.drop_column('booking_staff', 'rating_sum')
    op.drop_column('booking_staff', 'rating_count')
    op.drop_index('ix_appointment_reviews_user', table_name='appointment_reviews')
    op.drop_index('ix_appointment_reviews_staff_status', table_name='appointment_reviews')
    op.drop_index('ix_appointment_reviews_provider_status_rating', table_name='appointment_reviews')
    op.drop_index('ix_appointment_reviews_provider_status', table_name='appointment_reviews')
    op.drop_table('appointment_reviews')
