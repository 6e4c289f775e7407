"""languages: each registrant's and speaker's language (placeholder: filled in by the work that needs it)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 12:10:00

"""


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
