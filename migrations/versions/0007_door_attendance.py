"""the door: when each event's personal join links open (seconds before the start), and the first and
last time each registrant and each speaker came through an open door (attendance)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('door_offset', sa.Integer(), server_default='900', nullable=False))
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('door_first_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('door_last_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('event_speakers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('door_first_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('door_last_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('event_speakers', schema=None) as batch_op:
        batch_op.drop_column('door_last_at')
        batch_op.drop_column('door_first_at')
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('door_last_at')
        batch_op.drop_column('door_first_at')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('door_offset')
