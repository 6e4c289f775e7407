"""series: recurrence rules, occurrences, whole-series signups

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 12:10:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('series',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=120), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('venue', sa.String(length=300), nullable=False),
    sa.Column('join_url', sa.String(length=500), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('reminder_offsets', sa.Text(), nullable=False),
    sa.Column('double_opt_in', sa.Boolean(), nullable=False),
    sa.Column('tags', sa.Text(), nullable=False),
    sa.Column('speakers', sa.Text(), nullable=False),
    sa.Column('freq', sa.String(length=10), nullable=False),
    sa.Column('interval', sa.Integer(), nullable=False),
    sa.Column('byday', sa.String(length=40), nullable=False),
    sa.Column('bymonthday', sa.Integer(), nullable=True),
    sa.Column('first_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('count', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('root_id', sa.Integer(), nullable=True),
    sa.Column('planned_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('interval >= 1', name=op.f('ck_series_interval_positive')),
    sa.CheckConstraint('duration_minutes > 0', name=op.f('ck_series_duration_positive')),
    sa.CheckConstraint('count IS NULL OR count >= 1', name=op.f('ck_series_count_positive')),
    sa.ForeignKeyConstraint(['root_id'], ['series.id'], name=op.f('fk_series_root_id_series'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series')),
    sa.UniqueConstraint('slug', name=op.f('uq_series_slug'))
    )
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_series_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_series_root_id'), ['root_id'], unique=False)

    op.create_table('series_skips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('recurrence_id', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_series_skips_series_id_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series_skips')),
    sa.UniqueConstraint('series_id', 'recurrence_id', name=op.f('uq_series_skips_series_id_recurrence_id'))
    )

    op.create_table('series_subscriptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('series_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('email_key', sa.String(length=320), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('token_nonce', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=True),
    sa.Column('reminders_opt_out', sa.Boolean(), nullable=False),
    sa.Column('ics_sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['series_id'], ['series.id'], name=op.f('fk_series_subscriptions_series_id_series'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_series_subscriptions')),
    sa.UniqueConstraint('series_id', 'email_key', name=op.f('uq_series_subscriptions_series_id_email_key')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_series_subscriptions_token_hash'))
    )

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('series_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('recurrence_id', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_events_series_id_series'), 'series', ['series_id'], ['id'],
                                    ondelete='SET NULL')
        batch_op.create_unique_constraint(batch_op.f('uq_events_series_id_recurrence_id'),
                                          ['series_id', 'recurrence_id'])
        batch_op.create_index(batch_op.f('ix_events_series_id'), ['series_id'], unique=False)

    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subscription_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_registrations_subscription_id_series_subscriptions'),
                                    'series_subscriptions', ['subscription_id'], ['id'], ondelete='SET NULL')
        batch_op.create_index(batch_op.f('ix_registrations_subscription_id'), ['subscription_id'], unique=False)


def downgrade():
    with op.batch_alter_table('registrations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_registrations_subscription_id'))
        batch_op.drop_constraint(batch_op.f('fk_registrations_subscription_id_series_subscriptions'),
                                 type_='foreignkey')
        batch_op.drop_column('subscription_id')

    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_events_series_id'))
        batch_op.drop_constraint(batch_op.f('uq_events_series_id_recurrence_id'), type_='unique')
        batch_op.drop_constraint(batch_op.f('fk_events_series_id_series'), type_='foreignkey')
        batch_op.drop_column('recurrence_id')
        batch_op.drop_column('series_id')

    op.drop_table('series_subscriptions')
    op.drop_table('series_skips')
    with op.batch_alter_table('series', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_series_root_id'))
        batch_op.drop_index(batch_op.f('ix_series_status'))
    op.drop_table('series')
