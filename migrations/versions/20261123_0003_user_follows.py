"""user follows

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:37:53.830176
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('user_follows',
    sa.Column('follower_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('followee_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['followee_id'], ['users.id'], name=op.f('fk_user_follows_followee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['follower_id'], ['users.id'], name=op.f('fk_user_follows_follower_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('follower_id', 'followee_id', name=op.f('pk_user_follows')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    with op.batch_alter_table('user_follows', schema=None) as batch_op:
        batch_op.create_index('ix_user_follows_followee_id', ['followee_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('user_follows', schema=None) as batch_op:
        batch_op.drop_index('ix_user_follows_followee_id')

    op.drop_table('user_follows')
