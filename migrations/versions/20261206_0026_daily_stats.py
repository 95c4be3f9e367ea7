"""daily statistics: one row per day and metric, the daily active-user sketches, and the
created_at (paid_at, succeeded_at) indexes the daily counts read

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 15:40:44.286885
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('active_user_sketches',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('sketch', sa.LargeBinary(), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_active_user_sketches')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_table('daily_stats',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('metric', sa.String(length=48), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('computed_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('day', 'metric', name=op.f('pk_daily_stats')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_appointments_created_at', 'appointments', ['created_at'], unique=False)
    op.create_index('ix_comments_created_at', 'comments', ['created_at'], unique=False)
    op.create_index('ix_likes_created_at', 'likes', ['created_at'], unique=False)
    op.create_index('ix_orders_created_at', 'orders', ['created_at'], unique=False)
    op.create_index('ix_orders_paid_at', 'orders', ['paid_at', 'payable_amount'], unique=False)
    op.create_index('ix_payment_refunds_succeeded_at', 'payment_refunds', ['succeeded_at', 'amount'], unique=False)
    op.create_index('ix_pet_generations_created_at', 'pet_generations', ['created_at'], unique=False)
    op.create_index('ix_posts_created_at', 'posts', ['created_at'], unique=False)
    op.create_index('ix_users_created_at', 'users', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_users_created_at', table_name='users')
    op.drop_index('ix_posts_created_at', table_name='posts')
    op.drop_index('ix_pet_generations_created_at', table_name='pet_generations')
    op.drop_index('ix_payment_refunds_succeeded_at', table_name='payment_refunds')
    op.drop_index('ix_orders_paid_at', table_name='orders')
    op.drop_index('ix_orders_created_at', table_name='orders')
    op.drop_index('ix_likes_created_at', table_name='likes')
    op.drop_index('ix_comments_created_at', table_name='comments')
    op.drop_index('ix_appointments_created_at', table_name='appointments')
    op.drop_table('daily_stats')
    op.drop_table('active_user_sketches')
