"""a session version per organiser: logging out or a new password ends every earlier session

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 20:40:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    # Sessions signed in before this upgrade carry a plain user id, which no longer names a session:
    # their organisers log in once more.
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), server_default='1', nullable=False))


def downgrade():
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('session_version')
