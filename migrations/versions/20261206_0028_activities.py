"""activities with registration (issue 14 §2): activities, registrations, their
transitions and the reminders sent

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 19:40:25.171024
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('activities',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('organiser_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('merchant_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('cover_media_id', sa.BigInteger(), nullable=True),
    sa.Column('cover_url', sa.String(length=512), nullable=False),
    sa.Column('place_name', sa.String(length=64), nullable=False),
    sa.Column('place_address', sa.String(length=255), nullable=False),
    sa.Column('lat', sa.Numeric(precision=9, scale=6), nullable=False),
    sa.Column('lng', sa.Numeric(precision=9, scale=6), nullable=False),
    sa.Column('start_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('end_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('registration_opens_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('registration_closes_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('cancel_deadline_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('waitlist_enabled', sa.Boolean(), nullable=False),
    sa.Column('price_type', sa.String(length=8), nullable=False),
    sa.Column('price', sa.Integer(), nullable=False),
    sa.Column('form_fields', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seats_taken', sa.Integer(), nullable=False),
    sa.Column('waitlisted', sa.Integer(), nullable=False),
    sa.Column('checked_in', sa.Integer(), nullable=False),
    sa.Column('cancel_reason', sa.String(length=255), nullable=False),
    sa.Column('published_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('cancelled_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('finished_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['merchant_id'], ['users.id'], name=op.f('fk_activities_merchant_id_users')),
    sa.ForeignKeyConstraint(['organiser_id'], ['users.id'], name=op.f('fk_activities_organiser_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activities')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.create_index('ix_activities_merchant', ['merchant_id', 'id'], unique=False)
        batch_op.create_index('ix_activities_status_end', ['status', 'end_at'], unique=False)
        batch_op.create_index('ix_activities_status_start', ['status', 'start_at'], unique=False)

    op.create_table('activity_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('registration_id', sa.BigInteger(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor_type', sa.String(length=16), nullable=False),
    sa.Column('actor_id', sa.BigInteger(), nullable=True),
    sa.Column('reason', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_activity_events_activity_id_activities'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_events')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.create_index('ix_activity_events_activity', ['activity_id', 'id'], unique=False)
        batch_op.create_index('ix_activity_events_registration', ['registration_id', 'id'], unique=False)

    op.create_table('activity_registrations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('activity_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('live_user_id', sa.BigInteger(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('price_type', sa.String(length=8), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('payment_status', sa.String(length=16), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('check_in_code', sa.String(length=16), nullable=False),
    sa.Column('pay_deadline', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('cancel_reason', sa.String(length=255), nullable=False),
    sa.Column('confirmed_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('checked_in_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('checked_in_by', sa.BigInteger(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['activity_id'], ['activities.id'], name=op.f('fk_activity_registrations_activity_id_activities')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_activity_registrations_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_registrations')),
    sa.UniqueConstraint('activity_id', 'live_user_id', name='uq_activity_registrations_live'),
    sa.UniqueConstraint('check_in_code', name='uq_activity_registrations_code'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('activity_registrations', schema=None) as batch_op:
        batch_op.create_index('ix_activity_registrations_activity', ['activity_id', 'status', 'id'], unique=False)
        batch_op.create_index('ix_activity_registrations_created', ['created_at'], unique=False)
        batch_op.create_index('ix_activity_registrations_deadline', ['status', 'pay_deadline'], unique=False)
        batch_op.create_index('ix_activity_registrations_user', ['user_id', 'id'], unique=False)

    op.create_table('activity_reminders',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('registration_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('sent_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['registration_id'], ['activity_registrations.id'], name=op.f('fk_activity_reminders_registration_id_activity_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_activity_reminders')),
    sa.UniqueConstraint('registration_id', 'kind', name='uq_activity_reminders_registration_kind'),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )


def downgrade() -> None:
    op.drop_table('activity_reminders')
    with op.batch_alter_table('activity_registrations', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_registrations_user')
        batch_op.drop_index('ix_activity_registrations_deadline')
        batch_op.drop_index('ix_activity_registrations_created')
        batch_op.drop_index('ix_activity_registrations_activity')

    op.drop_table('activity_registrations')
    with op.batch_alter_table('activity_events', schema=None) as batch_op:
        batch_op.drop_index('ix_activity_events_registration')
        batch_op.drop_index('ix_activity_events_activity')

    op.drop_table('activity_events')
    with op.batch_alter_table('activities', schema=None) as batch_op:
        batch_op.drop_index('ix_activities_status_start')
        batch_op.drop_index('ix_activities_status_end')
        batch_op.drop_index('ix_activities_merchant')

    op.drop_table('activities')
