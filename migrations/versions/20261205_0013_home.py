"""mall home content: banners, pop-ups, product slots

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05 20:45:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql')
TABLE_ARGS = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_unicode_520_ci',
                  mysql_engine='InnoDB')


def _content_columns() -> list[sa.Column]:
    return [
        sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
        sa.Column('title', sa.String(length=64), nullable=False),
        sa.Column('image_url', sa.String(length=512), nullable=False),
        sa.Column('link_type', sa.String(length=16), nullable=False),
        sa.Column('link_value', sa.String(length=512), nullable=False),
    ]


def _tail_columns() -> list[sa.Column]:
    return [
        sa.Column('sort', sa.Integer(), nullable=False),
        sa.Column('starts_at', UTC_DATETIME, nullable=True),
        sa.Column('ends_at', UTC_DATETIME, nullable=True),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('updated_at', UTC_DATETIME, nullable=False),
    ]


def upgrade() -> None:
    op.create_table('home_banners', *_content_columns(), *_tail_columns(),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_home_banners')), **TABLE_ARGS)
    op.create_table('home_popups', *_content_columns(),
                    sa.Column('rule', sa.String(length=16), nullable=False), *_tail_columns(),
                    sa.PrimaryKeyConstraint('id', name=op.f('pk_home_popups')), **TABLE_ARGS)
    op.create_table('home_slot_items',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('slot', sa.String(length=16), nullable=False),
    sa.Column('product_id', BIG_ID, nullable=False),
    sa.Column('sort', sa.Integer(), nullable=False),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_home_slot_items_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_home_slot_items')),
    sa.UniqueConstraint('slot', 'product_id', name=op.f('uq_home_slot_items_slot_product_id')),
    **TABLE_ARGS
    )
    op.create_index('ix_home_slot_items_slot_sort', 'home_slot_items', ['slot', 'sort'], unique=False)


def downgrade() -> None:
    op.drop_table('home_slot_items')
    op.drop_table('home_popups')
    op.drop_table('home_banners')
