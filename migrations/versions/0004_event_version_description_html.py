"""a version per event for the public pages' cache; the description's HTML rendered when saved

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 09:00:00

"""
from alembic import op
import sqlalchemy as sa

from scheduler.text import render_markdown


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

#: Rows rendered and written per round trip.
BATCH = 500


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description_html', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0', nullable=False))
    # Existing descriptions get their HTML now: pages no longer render Markdown when they are shown.
    conn = op.get_bind()
    events = sa.table('events', sa.column('id', sa.Integer), sa.column('description', sa.Text),
                      sa.column('description_html', sa.Text))
    write = events.update().where(events.c.id == sa.bindparam('row_id')).values(
        description_html=sa.bindparam('html'))
    last = 0
    while True:
        rows = conn.execute(sa.select(events.c.id, events.c.description).where(events.c.id > last)
                            .order_by(events.c.id).limit(BATCH)).all()
        if not rows:
            break
        conn.execute(write, [{'row_id': row_id, 'html': render_markdown(source or '')} for row_id, source in rows])
        last = rows[-1][0]


def downgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('version')
        batch_op.drop_column('description_html')
