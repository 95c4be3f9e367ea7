"""anonymous posts and mentions

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 19:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('boards') as batch:
        batch.add_column(sa.Column('allow_anonymous', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table('posts') as batch:
        batch.add_column(sa.Column('is_anonymous', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    # 求助 (help): owners ask about what they would rather not sign (seed 003's anonymous posts).
    op.execute("UPDATE boards SET allow_anonymous = 1 WHERE slug = 'help'")
    op.create_table('mentions',
    sa.Column('source_type', sa.String(length=16), nullable=False),
    sa.Column('source_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('author_id', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('notified_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_mentions_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_type', 'source_id', 'user_id', name=op.f('pk_mentions')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_mentions_user_created', 'mentions', ['user_id', 'created_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_mentions_user_created', table_name='mentions')
    op.drop_table('mentions')
    with op.batch_alter_table('posts') as batch:
        batch.drop_column('is_anonymous')
    with op.batch_alter_table('boards') as batch:
        batch.drop_column('allow_anonymous')
