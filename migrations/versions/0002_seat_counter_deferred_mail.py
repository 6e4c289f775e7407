"""seat counter on events; outbox rows composed at delivery

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 11:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('seats_taken', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('waitlist_last', sa.Integer(), server_default='0', nullable=False))
        batch_op.create_check_constraint(op.f('ck_events_seats_taken_not_negative'), 'seats_taken >= 0')
    # Existing registrations: the counters start from what the rows say.
    op.execute("UPDATE events SET seats_taken = (SELECT count(*) FROM registrations r WHERE r.event_id = events.id "
               "AND r.state IN ('confirmed', 'pending')), waitlist_last = (SELECT coalesce(max(r.waitlist_seq), 0) "
               "FROM registrations r WHERE r.event_id = events.id)")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context', sa.Text(), nullable=True))
        batch_op.alter_column('subject', existing_type=sa.String(length=300), nullable=True)
        batch_op.alter_column('body_text', existing_type=sa.Text(), nullable=True)
        batch_op.alter_column('body_html', existing_type=sa.Text(), nullable=True)


def downgrade():
    # The old schema cannot hold a message that is still to be composed: refuse rather than drop it.
    waiting = op.get_bind().scalar(sa.text(
        "SELECT count(*) FROM outbox WHERE body_text IS NULL AND state IN ('queued', 'sending', 'failed')"))
    if waiting:
        raise RuntimeError(f"{waiting} queued or failed message(s) are composed at delivery, which the previous "
                           "schema cannot hold: let `flask scheduler run` deliver them (retry or delete failed "
                           "ones), then downgrade")
    op.execute("UPDATE outbox SET subject = coalesce(subject, kind), body_text = coalesce(body_text, ''), "
               "body_html = coalesce(body_html, '') WHERE body_text IS NULL")
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.alter_column('body_html', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('body_text', existing_type=sa.Text(), nullable=False)
        batch_op.alter_column('subject', existing_type=sa.String(length=300), nullable=False)
        batch_op.drop_column('context')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_events_seats_taken_not_negative'), type_='check')
        batch_op.drop_column('waitlist_last')
        batch_op.drop_column('seats_taken')
