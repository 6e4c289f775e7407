"""the question board: questions and votes, each event's board mode and whether visitors may read it;
every signup question already given becomes its registrant's first question on the board

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 10:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

#: Registrations read and questions written per round trip.
BATCH = 500


def upgrade():
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('board_mode', sa.String(length=20), server_default='open', nullable=False))
        batch_op.add_column(sa.Column('board_public', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))

    op.create_table('questions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=True),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('display_name', sa.String(length=200), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('pinned', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('merged_into_id', sa.Integer(), nullable=True),
    sa.Column('votes', sa.Integer(), server_default='0', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('votes >= 0', name=op.f('ck_questions_votes_not_negative')),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], name=op.f('fk_questions_event_id_events'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['merged_into_id'], ['questions.id'], name=op.f('fk_questions_merged_into_id_questions'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_questions_registration_id_registrations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_questions'))
    )
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.create_index('ix_questions_event_state', ['event_id', 'state'], unique=False)
        batch_op.create_index('ix_questions_registration_created', ['registration_id', 'created_at'], unique=False)
        batch_op.create_index('uq_questions_one_pinned_per_event', ['event_id'], unique=True,
                              sqlite_where=sa.text('pinned'), postgresql_where=sa.text('pinned'))

    op.create_table('question_votes',
    sa.Column('question_id', sa.Integer(), nullable=False),
    sa.Column('registration_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['question_id'], ['questions.id'], name=op.f('fk_question_votes_question_id_questions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['registration_id'], ['registrations.id'], name=op.f('fk_question_votes_registration_id_registrations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('question_id', 'registration_id', name=op.f('pk_question_votes'))
    )
    with op.batch_alter_table('question_votes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_question_votes_registration_id'), ['registration_id'], unique=False)

    _carry_signup_questions_over()


def _carry_signup_questions_over():
    """Each signup question of a registration still on the event (with an address known to be real:
    confirmed, or waitlisted after confirming it) becomes that person's first question on the board,
    visible, under their name (Anonymous when they gave none), dated when they signed up.

    The same rule the app follows for new signups; registrations.question itself stays as it is.
    """
    conn = op.get_bind()
    registrations = sa.table(
        'registrations', sa.column('id', sa.Integer), sa.column('event_id', sa.Integer),
        sa.column('name', sa.String), sa.column('question', sa.Text), sa.column('state', sa.String),
        sa.column('email_verified_at', sa.DateTime(timezone=True)), sa.column('created_at', sa.DateTime(timezone=True)))
    questions = sa.table(
        'questions', sa.column('event_id', sa.Integer), sa.column('registration_id', sa.Integer),
        sa.column('body', sa.Text), sa.column('display_name', sa.String), sa.column('state', sa.String),
        sa.column('pinned', sa.Boolean), sa.column('votes', sa.Integer),
        sa.column('created_at', sa.DateTime(timezone=True)), sa.column('updated_at', sa.DateTime(timezone=True)))
    real_address = sa.or_(registrations.c.state == 'confirmed',
                          sa.and_(registrations.c.state == 'waitlisted', registrations.c.email_verified_at.isnot(None)))
    last = 0
    while True:
        # Only the columns copied: datetimes go back as they came, in the database's own form.
        rows = conn.execute(
            sa.select(registrations.c.id, registrations.c.event_id, registrations.c.name, registrations.c.question,
                      registrations.c.created_at)
            .where(registrations.c.id > last, registrations.c.question != '', real_address)
            .order_by(registrations.c.id).limit(BATCH)).all()
        if not rows:
            break
        carried = [
            {'event_id': event_id, 'registration_id': row_id, 'body': question, 'display_name': (name or '').strip()[:200],
             'state': 'visible', 'pinned': False, 'votes': 0, 'created_at': created_at, 'updated_at': created_at}
            for row_id, event_id, name, question, created_at in rows if (question or '').strip()
        ]
        if carried:
            conn.execute(questions.insert(), carried)
        last = rows[-1][0]


def downgrade():
    # registrations.question was never changed: dropping the board loses nothing that was there before.
    with op.batch_alter_table('question_votes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_question_votes_registration_id'))
    op.drop_table('question_votes')
    with op.batch_alter_table('questions', schema=None) as batch_op:
        batch_op.drop_index('uq_questions_one_pinned_per_event', sqlite_where=sa.text('pinned'),
                            postgresql_where=sa.text('pinned'))
        batch_op.drop_index('ix_questions_registration_created')
        batch_op.drop_index('ix_questions_event_state')
    op.drop_table('questions')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('board_public')
        batch_op.drop_column('board_mode')
