"""after the event and announcements: recording, feedback, announcements (placeholder: filled in by the work that needs it)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:10:00

"""


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
