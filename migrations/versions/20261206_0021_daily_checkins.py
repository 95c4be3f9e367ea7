"""daily check-ins and check-in reminders (virtual pet, issue 13)

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 02:56:40.850236
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('checkin_reminders',
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('hour', sa.SmallInteger(), nullable=False),
    sa.Column('last_sent_on', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.CheckConstraint('hour BETWEEN 0 AND 23', name=op.f('ck_checkin_reminders_hour_of_day')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_checkin_reminders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_checkin_reminders')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_checkin_reminders_due', 'checkin_reminders', ['enabled', 'hour', 'last_sent_on'], unique=False)
    op.create_table('daily_checkins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('streak', sa.Integer(), nullable=False),
    sa.Column('makeup', sa.Boolean(), nullable=False),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('bonus', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.CheckConstraint('streak >= 1', name=op.f('ck_daily_checkins_streak_positive')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_daily_checkins_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_daily_checkins')),
    sa.UniqueConstraint('user_id', 'day', name='uq_daily_checkins_user_day'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )


def downgrade() -> None:
    op.drop_table('daily_checkins')
    op.drop_index('ix_checkin_reminders_due', table_name='checkin_reminders')
    op.drop_table('checkin_reminders')
