"""the outbox by state, newest first: the admin's outbox page filtered by state reads an index, not the table

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:45:00

"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_outbox_state_id', 'outbox', ['state', 'id'], unique=False)


def downgrade():
    op.drop_index('ix_outbox_state_id', table_name='outbox')
