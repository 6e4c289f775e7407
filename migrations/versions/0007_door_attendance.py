"""the door: personal join links and attendance (placeholder: filled in by the work that needs it)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 12:10:00

"""


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
