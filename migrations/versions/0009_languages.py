"""languages: each registrant's, series subscriber's and speaker's language (the Babel code their mail is written in)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='en', nullable=False))
    with op.batch_alter_table('speakers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='en', nullable=False))
    with op.batch_alter_table('series_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('language', sa.String(length=16), server_default='en', nullable=False))


def downgrade():
    with op.batch_alter_table('series_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('speakers', schema=None) as batch_op:
        batch_op.drop_column('language')
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_column('language')
