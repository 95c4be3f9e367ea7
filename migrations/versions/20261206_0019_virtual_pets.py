"""virtual pets

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 02:52:44.340761
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pet_generations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('media_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('hints', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('stage', sa.String(length=24), nullable=False),
    sa.Column('error', sa.String(length=255), nullable=False),
    sa.Column('provider', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=True),
    sa.Column('personality', sa.String(length=16), nullable=False),
    sa.Column('sprite_media_id', sa.BigInteger(), nullable=True),
    sa.Column('thumb_media_id', sa.BigInteger(), nullable=True),
    sa.Column('elapsed_ms', sa.Integer(), nullable=True),
    sa.Column('expires_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('finished_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pet_generations')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_pet_generations_status_expires', 'pet_generations', ['status', 'expires_at'], unique=False)
    op.create_index('ix_pet_generations_user_created', 'pet_generations', ['user_id', 'created_at'], unique=False)
    op.create_table('pet_interactions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('pet_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('item_sku_id', sa.BigInteger(), nullable=True),
    sa.Column('changes', sa.JSON(), nullable=False),
    sa.Column('exp_gained', sa.Integer(), nullable=False),
    sa.Column('level_after', sa.SmallInteger(), nullable=False),
    sa.Column('skill_unlocked', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pet_interactions')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index('ix_pet_interactions_pet', 'pet_interactions', ['pet_id', 'id'], unique=False)
    op.create_table('virtual_pets',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('owner_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('generation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('species', sa.String(length=16), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('personality', sa.String(length=16), nullable=False),
    sa.Column('sprite_media_id', sa.BigInteger(), nullable=True),
    sa.Column('thumb_media_id', sa.BigInteger(), nullable=True),
    sa.Column('mood', sa.Integer(), nullable=False),
    sa.Column('fullness', sa.Integer(), nullable=False),
    sa.Column('cleanliness', sa.Integer(), nullable=False),
    sa.Column('affection', sa.Integer(), nullable=False),
    sa.Column('status_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('level', sa.SmallInteger(), nullable=False),
    sa.Column('exp', sa.Integer(), nullable=False),
    sa.Column('exp_reached_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('cooldowns', sa.JSON(), nullable=False),
    sa.Column('last_interaction_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('hungry_remind_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.Column('hungry_reminded_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('updated_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=False),
    sa.Column('deleted_at', sa.DateTime().with_variant(mysql.DATETIME(fsp=6), 'mariadb').with_variant(mysql.DATETIME(fsp=6), 'mysql'), nullable=True),
    sa.CheckConstraint('exp >= 0 AND level >= 1', name=op.f('ck_virtual_pets_progress_sane')),
    sa.CheckConstraint('mood BETWEEN 0 AND 100000 AND fullness BETWEEN 0 AND 100000 AND cleanliness BETWEEN 0 AND 100000 AND affection BETWEEN 0 AND 100000', name=op.f('ck_virtual_pets_statuses_in_range')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_virtual_pets')),
    sa.UniqueConstraint('generation_id', name=op.f('uq_virtual_pets_generation_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_unicode_520_ci',
    mysql_engine='InnoDB'
    )
    op.create_index(op.f('ix_virtual_pets_hungry_remind_at'), 'virtual_pets', ['hungry_remind_at'], unique=False)
    op.create_index('ix_virtual_pets_level', 'virtual_pets', ['level', 'exp', 'exp_reached_at'], unique=False)
    op.create_index('ix_virtual_pets_owner', 'virtual_pets', ['owner_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_virtual_pets_owner', table_name='virtual_pets')
    op.drop_index('ix_virtual_pets_level', table_name='virtual_pets')
    op.drop_index(op.f('ix_virtual_pets_hungry_remind_at'), table_name='virtual_pets')
    op.drop_table('virtual_pets')
    op.drop_index('ix_pet_interactions_pet', table_name='pet_interactions')
    op.drop_table('pet_interactions')
    op.drop_index('ix_pet_generations_user_created', table_name='pet_generations')
    op.drop_index('ix_pet_generations_status_expires', table_name='pet_generations')
    op.drop_table('pet_generations')
