"""who came through their door, by event and state: the admin event page counts attendance from an index

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 23:50:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

CAME = sa.text('door_first_at IS NOT NULL')


def upgrade():
    op.create_index('ix_registrations_came', 'registrations', ['event_id', 'state'], unique=False,
                    sqlite_where=CAME, postgresql_where=CAME)


def downgrade():
    op.drop_index('ix_registrations_came', table_name='registrations', sqlite_where=CAME, postgresql_where=CAME)
