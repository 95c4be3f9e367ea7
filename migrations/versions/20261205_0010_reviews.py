"""product reviews and the counts per star

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05 19:30:00
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC_DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(
    mysql.DATETIME(fsp=6), 'mysql')
TABLE_ARGS = dict(mysql_charset='utf8mb4', mysql_collate='utf8mb4_unicode_520_ci',
                  mysql_engine='InnoDB')


def upgrade() -> None:
    op.create_table('product_reviews',
    sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
    sa.Column('order_item_id', BIG_ID, nullable=False),
    sa.Column('order_id', sa.BigInteger(), nullable=False),
    sa.Column('product_id', sa.BigInteger(), nullable=False),
    sa.Column('sku_id', sa.BigInteger(), nullable=False),
    sa.Column('merchant_id', sa.BigInteger(), nullable=False),
    sa.Column('user_id', BIG_ID, nullable=False),
    sa.Column('spec_text', sa.String(length=255), nullable=False),
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
    sa.Column('replied_at', UTC_DATETIME, nullable=True),
    sa.Column('merchant_notified_at', UTC_DATETIME, nullable=True),
    sa.Column('created_at', UTC_DATETIME, nullable=False),
    sa.Column('updated_at', UTC_DATETIME, nullable=False),
    sa.CheckConstraint('rating BETWEEN 1 AND 5', name=op.f('ck_product_reviews_rating_range')),
    sa.ForeignKeyConstraint(['order_item_id'], ['order_items.id'], name=op.f('fk_product_reviews_order_item_id_order_items'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_product_reviews_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_product_reviews')),
    sa.UniqueConstraint('order_item_id', name=op.f('uq_product_reviews_order_item_id')),
    **TABLE_ARGS
    )
    op.create_index('ix_product_reviews_product_status', 'product_reviews', ['product_id', 'status', 'id'], unique=False)
    op.create_index('ix_product_reviews_product_status_rating', 'product_reviews', ['product_id', 'status', 'rating', 'id'], unique=False)
    op.create_index('ix_product_reviews_product_status_images', 'product_reviews', ['product_id', 'status', 'has_images', 'id'], unique=False)
    op.create_index('ix_product_reviews_user', 'product_reviews', ['user_id', 'id'], unique=False)
    op.create_index('ix_product_reviews_merchant_status', 'product_reviews', ['merchant_id', 'status', 'id'], unique=False)
    op.create_table('product_rating_stats',
    sa.Column('product_id', BIG_ID, autoincrement=False, nullable=False),
    sa.Column('star_1', sa.Integer(), nullable=False),
    sa.Column('star_2', sa.Integer(), nullable=False),
    sa.Column('star_3', sa.Integer(), nullable=False),
    sa.Column('star_4', sa.Integer(), nullable=False),
    sa.Column('star_5', sa.Integer(), nullable=False),
    sa.Column('with_images', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_rating_stats_product_id_products'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('product_id', name=op.f('pk_product_rating_stats')),
    **TABLE_ARGS
    )


def downgrade() -> None:
    op.drop_table('product_rating_stats')
    op.drop_table('product_reviews')
