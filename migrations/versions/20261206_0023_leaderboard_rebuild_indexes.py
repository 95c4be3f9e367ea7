"""Indexes for the leaderboard rebuild read a range of users at a time (the weekly pet board
by user and time) and for its "who changed while it read" (created_at, updated_at)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 07:26:13.738229
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql


revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_pet_interactions_created', 'pet_interactions', ['created_at'], unique=False)
    op.create_index('ix_pet_interactions_user_created', 'pet_interactions', ['user_id', 'created_at'], unique=False)
    op.create_index('ix_points_ledger_created_at', 'points_ledger', ['created_at'], unique=False)
    op.create_index('ix_virtual_pets_updated', 'virtual_pets', ['updated_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_virtual_pets_updated', table_name='virtual_pets')
    op.drop_index('ix_points_ledger_created_at', table_name='points_ledger')
    op.drop_index('ix_pet_interactions_user_created', table_name='pet_interactions')
    op.drop_index('ix_pet_interactions_created', table_name='pet_interactions')
