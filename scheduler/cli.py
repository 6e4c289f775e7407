"""Flask commands: create-admin, seed-demo (and the scheduler's, registered by jobs)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import click
from flask import Flask
from sqlalchemy import func, select

from .domain import board
from .domain import events as event_rules
from .domain.queries import lock_event
from .domain.seats import take_seat
from .models import Event, Registration, User
from .services import unit_of_work
from .tokens import new_nonce

DEMO_SLUG = "pytorch-a-foundation-for-open-source-ai-ml"
DEMO_ZONE = "America/Los_Angeles"


def next_thursday_9am(now: datetime) -> datetime:
    """The next Thursday 09:00 in Los Angeles strictly after now (a week later if it is Thursday past 9)."""
    local = now.astimezone(ZoneInfo(DEMO_ZONE))
    days = (3 - local.weekday()) % 7
    candidate = datetime.combine(local.date() + timedelta(days=days), datetime.min.time().replace(hour=9),
                                 tzinfo=ZoneInfo(DEMO_ZONE))
    if candidate <= local:
        candidate += timedelta(days=7)
    return candidate


def seed_demo(session, *, now: datetime) -> tuple[Event, bool]:
    """Create the PyTorch live discussion with its two speakers; returns (event, created)."""
    existing = session.scalar(select(Event).where(Event.slug == DEMO_SLUG))
    if existing is not None:
        return existing, False
    start = next_thursday_9am(now)
    event = event_rules.create_event(
        session, now=now, slug=DEMO_SLUG, tags=["PyTorch", "Linux Foundation"],
        title="PyTorch: A Foundation for Open Source AI/ML",
        summary="A live discussion on PyTorch joining the Linux Foundation, and what it means for open source AI.",
        description=(
            "PyTorch has joined the Linux Foundation. Join **Soumith Chintala**, co-creator of PyTorch, and "
            "**Dr. Ibrahim Haddad**, Executive Director of the PyTorch Foundation, for a live conversation "
            "about open governance, the road ahead, and how you can take part.\n\n"
            "Send your questions when you sign up: the speakers will see them before going live."
        ),
        kind="live discussion", timezone=DEMO_ZONE,
        starts_at=start.astimezone(ZoneInfo("UTC")), ends_at=(start + timedelta(hours=1)).astimezone(ZoneInfo("UTC")),
        join_url="https://zoom.example.org/j/pytorch-foundation", capacity=500, double_opt_in=False,
        reminder_offsets=[86400, 3600], board_mode="open", board_public=True,
    )
    people = [
        ("Soumith Chintala", "soumith@example.org", "Meta", "Co-creator of PyTorch.", "speaker"),
        ("Dr. Ibrahim Haddad", "ibrahim@example.org", "PyTorch Foundation",
         "Executive Director of the PyTorch Foundation at the Linux Foundation.", "host"),
    ]
    for name, email, affiliation, bio, role in people:
        speaker = event_rules.create_speaker(session, now=now, name=name, email=email, affiliation=affiliation,
                                             bio=bio)
        event_rules.add_speaker(session, event, speaker, role=role, now=now)
    event_rules.publish_event(session, event, now=now)
    seed_board(session, event, now=now)
    return event, True


#: (name, question or None, anonymous, the questions they vote for by number): the demo's question board.
DEMO_PEOPLE = [
    ("Grace", "How will the foundation decide which projects join the PyTorch ecosystem?", False, [2, 3]),
    ("Linus", "Will the governing board include individual contributors, not only companies?", True, [1]),
    ("Margaret", "What changes for someone sending their first pull request after the move?", False, [2]),
    ("Guido", None, False, [1, 2]),
]


def seed_board(session, event: Event, *, now: datetime) -> None:
    """A few registrants with questions and votes, so a first run shows a live board.

    They hold seats like anyone but are never mailed: no signup signals (their addresses are
    example.org's), and no reminders.
    """
    event = lock_event(session, event.id)
    people = []
    for name, _, _, _ in DEMO_PEOPLE:
        email = f"{name.lower()}@example.org"
        person = Registration(event_id=event.id, name=name, email=email, email_key=email, question="",
                              timezone=event.timezone, token_nonce=new_nonce(), reminders_opt_out=True,
                              consent_at=now, email_verified_at=now, created_at=now, updated_at=now)
        session.add(person)
        take_seat(event, person, now=now, hold_hours=0)
        people.append(person)
    session.flush()
    asked = {}
    for number, (person, (_, question, anonymous, _)) in enumerate(zip(people, DEMO_PEOPLE, strict=True), start=1):
        if question:
            asked[number] = board.ask(session, event, board.Actor(registration=person), body=question,
                                      anonymous=anonymous, now=now)
    for person, (_, _, _, votes) in zip(people, DEMO_PEOPLE, strict=True):
        for number in votes:
            board.vote(session, event, board.Actor(registration=person), asked[number].id, up=True, now=now)


def init_app(app: Flask) -> None:
    from . import cli_series, cli_tokens

    cli_tokens.init_app(app)
    cli_series.init_app(app)

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Create the demo live discussion (once; running it again changes nothing)."""
        with unit_of_work() as uow:
            event, created = seed_demo(uow.session, now=uow.now)
            when = event.starts_at.astimezone(ZoneInfo(event.timezone))
            verb = "Created" if created else "Already there:"
            said = f"{verb} “{event.title}” on {when:%A %d %B %Y %H:%M %Z} — /events/{event.slug}"
        click.echo(said)

    @app.cli.command("create-admin")
    @click.option("--email", prompt=True)
    @click.option("--name", default="")
    @click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
    def create_admin(email: str, name: str, password: str):
        """Create an organiser account, or reset its password."""
        email = email.strip()
        if "@" not in email or len(email) > 320:
            raise click.BadParameter("that does not look like an email address", param_hint="--email")
        if len(password) < 8:
            raise click.BadParameter("use at least 8 characters", param_hint="--password")
        with unit_of_work() as uow:
            user = uow.session.scalar(select(User).where(func.lower(User.email) == email.lower()))
            created = user is None
            if created:
                user = User(email=email, name=name or email.split("@")[0], created_at=uow.now)
                uow.session.add(user)
            user.set_password(password)
        click.echo(("Created" if created else "Updated password of") + f" admin {email}")
