"""series: recurrence rules, occurrences, whole-series signups (placeholder: filled in by the work that needs it)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:10:00

"""


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
