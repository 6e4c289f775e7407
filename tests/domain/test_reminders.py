"""Planned jobs: planning, moving, cancelling, firing, skipping after the start, late registrants."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select, update

from scheduler import dispatch
from scheduler.domain import events as event_rules
from scheduler.domain import reminders, signups
from scheduler.extensions import db
from scheduler.mail.compose import build_message
from scheduler.models import OutboxMessage, PlannedJob, Registration
from scheduler.urls import door_url, speaker_door_url
from tests.support import beat, statements


def jobs_of(event) -> dict[tuple[str, int], PlannedJob]:
    db.session.expire_all()
    return {(j.kind, j.offset_seconds): j for j in reminders.event_jobs(db.session, event.id)}


def sign_up(event, email: str, *, now, zone: str = "America/New_York", question: str = "") -> Registration:
    result = signups.sign_up(db.session, event, name=email.split("@")[0].title(), email=email, question=question,
                             timezone=zone, now=now, secret="test-secret-key")
    db.session.commit()
    return result.registration


def outbox(kind: str) -> list[OutboxMessage]:
    db.session.expire_all()
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == kind).order_by(OutboxMessage.id)))


def fire(job: PlannedJob, at, worker: str = "worker-1", **kwargs) -> dispatch.Firing:
    return dispatch.fire(db.session, job.id, worker=worker, clock=lambda: at, **kwargs)


def test_publish_plans_reminders_and_speaker_jobs(create_event, now):
    start = now + timedelta(days=5)
    event = create_event(starts_at=start, reminder_offsets=[86400, 3600])
    jobs = jobs_of(event)
    assert {key: (job.due_at, job.state) for key, job in jobs.items()} == {
        ("reminder", 86400): (start - timedelta(days=1), "planned"),
        ("reminder", 3600): (start - timedelta(hours=1), "planned"),
        ("briefing", 3 * 86400): (start - timedelta(days=3), "planned"),
        ("nudge", 900): (start - timedelta(minutes=15), "planned"),
        ("thanks", 3600): (start + timedelta(hours=2), "planned"),
    }


def test_moving_event_replans_reminders_and_speaker_jobs(create_event, now):
    start = now + timedelta(days=5)
    event = create_event(starts_at=start, reminder_offsets=[3600], briefing_enabled=False)
    reminder = jobs_of(event)[("reminder", 3600)]
    db.session.execute(update(PlannedJob).where(PlannedJob.id == reminder.id).values(state="done", messages_queued=7))
    db.session.commit()
    later = start + timedelta(days=1)
    event_rules.update_event(db.session, event, now=now, starts_at=later, ends_at=later + timedelta(hours=1),
                             nudge_offset=600)
    db.session.commit()
    jobs = jobs_of(event)
    assert {key: (job.due_at, job.state, job.messages_queued) for key, job in jobs.items()} == {
        ("reminder", 3600): (later - timedelta(hours=1), "planned", 0),
        ("nudge", 900): (start - timedelta(minutes=15), "cancelled", 0),
        ("nudge", 600): (later - timedelta(minutes=10), "planned", 0),
        ("thanks", 3600): (later + timedelta(hours=2), "planned", 0),
    }
    assert jobs[("nudge", 900)].reason == "no longer in the event's plan"


def test_cancelling_event_cancels_its_jobs(create_event, now):
    event = create_event(starts_at=now + timedelta(days=5), reminder_offsets=[86400, 3600])
    event_rules.cancel_event(db.session, event, now=now)
    db.session.commit()
    assert {(k, j.state, j.reason) for k, j in jobs_of(event).items()} == {
        (("reminder", 86400), "cancelled", "event cancelled"), (("reminder", 3600), "cancelled", "event cancelled"),
        (("briefing", 259200), "cancelled", "event cancelled"), (("nudge", 900), "cancelled", "event cancelled"),
        (("thanks", 3600), "cancelled", "event cancelled"),
    }
    assert reminders.next_due(db.session, now=now) == []


def test_reminder_queues_one_message_per_confirmed_registration_not_opted_out(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600], capacity=3)
    people = [sign_up(event, f"person{i}@example.org", now=now) for i in range(4)]  # the 4th is waitlisted
    signups.set_reminders(db.session, people[1], opt_out=True, now=now)
    db.session.commit()
    job = jobs_of(event)[("reminder", 3600)]
    result = fire(job, job.due_at + timedelta(milliseconds=300))
    assert (result.outcome, result.queued) == ("done", 2)
    rows = outbox("reminder")
    assert [r.to_addr for r in rows] == ["person0@example.org", "person2@example.org"]
    stamp = int(job.due_at.timestamp())
    assert [r.dedupe_key for r in rows] == [f"reminder:{event.id}:3600:{stamp}:{people[0].id}",
                                            f"reminder:{event.id}:3600:{stamp}:{people[2].id}"]
    assert rows[0].subject == f"Reminder: {event.title} starts in 1 hour"
    assert "(America/New_York)" in rows[0].body_text
    # Each person's own door, never the raw join URL (it is shown only through an open door).
    door = door_url(people[0])
    assert door in rows[0].body_text and door in rows[0].body_html
    assert event.join_url not in rows[0].body_text + rows[0].body_html
    job = jobs_of(event)[("reminder", 3600)]
    assert (job.state, job.messages_queued, job.claimed_by) == ("done", 2, None)
    # Firing again (a second process, or APScheduler firing twice) is a no-op.
    assert fire(job, job.due_at + timedelta(seconds=1), worker="worker-2").outcome == "busy"
    assert len(outbox("reminder")) == 2


def test_reminder_carries_one_click_unsubscribe(create_event, now, app):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    sign_up(event, "ada@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    row = outbox("reminder")[0]
    message = build_message(row, app.config, now=now)
    assert message["List-Unsubscribe"] == f"<{row.unsubscribe_url}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert row.unsubscribe_url.startswith("http://townhall.test/r/") and row.unsubscribe_url.endswith("/unsubscribe")


def test_reminder_after_event_started_is_skipped_with_reason(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    sign_up(event, "late@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    result = fire(job, event.starts_at + timedelta(seconds=5))
    assert result.outcome == "skipped"
    job = jobs_of(event)[("reminder", 3600)]
    assert job.state == "skipped"
    assert job.reason.startswith("not sent: the event had already started when the job ran")
    assert outbox("reminder") == []


def test_reminder_fired_late_but_before_start_still_sends(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    sign_up(event, "ada@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    result = fire(job, event.starts_at - timedelta(minutes=20))
    assert (result.outcome, result.queued) == ("done", 1)
    assert outbox("reminder")[0].subject == f"Reminder: {event.title} starts in 20 minutes"


def test_moved_event_reminder_is_sent_again_under_a_new_key(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    sign_up(event, "ada@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    later = event.starts_at + timedelta(hours=2)
    event_rules.update_event(db.session, event, now=now, starts_at=later, ends_at=later + timedelta(hours=1))
    db.session.commit()
    job = jobs_of(event)[("reminder", 3600)]
    assert job.state == "planned"
    assert fire(job, job.due_at).queued == 1
    assert len({r.dedupe_key for r in outbox("reminder")}) == 2


def test_abandoned_fan_out_resumes_after_lease_without_duplicates(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    for i in range(60):
        sign_up(event, f"p{i}@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    # The first worker dies after its first chunk: simulate by stopping it there.
    chunks = []
    first = fire(job, job.due_at, worker="dead", on_chunk=lambda: chunks.append(1),
                 stopping=lambda: len(chunks) == 1 and not chunks.append(0))
    assert first.outcome == "released"
    db.session.execute(update(PlannedJob).where(PlannedJob.id == job.id)
                       .values(claimed_by="dead", claimed_at=job.due_at))
    db.session.commit()
    assert fire(job, job.due_at + timedelta(seconds=10), worker="other").outcome == "busy"  # lease still held
    resumed = fire(job, job.due_at + timedelta(seconds=61), worker="other")
    assert (resumed.outcome, resumed.queued) == ("done", 60 - dispatch.FIRST_CHUNK)
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)
                             .where(OutboxMessage.kind == "reminder")) == 60
    assert jobs_of(event)[("reminder", 3600)].messages_queued == 60


def test_late_registrant_gets_one_starting_soon_message(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    sign_up(event, "early@example.org", now=now)
    assert outbox("starting_soon") == []
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    late_at = job.due_at + timedelta(minutes=30)
    late = sign_up(event, "late@example.org", now=late_at, zone="Asia/Tokyo")
    rows = outbox("starting_soon")
    assert [(r.to_addr, r.registration_id) for r in rows] == [("late@example.org", late.id)]
    assert rows[0].subject == f"Starting soon: {event.title}"
    assert "starts in 30 minutes" in rows[0].body_text and "(Asia/Tokyo)" in rows[0].body_text
    assert rows[0].unsubscribe_url is not None
    # Signing up again (repeat) or confirming again queues nothing more.
    sign_up(event, "late@example.org", now=late_at + timedelta(minutes=1))
    assert len(outbox("starting_soon")) == 1


def test_registrant_before_last_reminder_gets_no_starting_soon(create_event, now):
    event = create_event(starts_at=now + timedelta(days=2), reminder_offsets=[86400, 3600])
    job = jobs_of(event)[("reminder", 86400)]
    fire(job, job.due_at)
    sign_up(event, "between@example.org", now=job.due_at + timedelta(hours=1))
    assert outbox("starting_soon") == []


def test_speaker_briefing_has_counts_questions_and_run_of_show(create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), capacity=2, reminder_offsets=[3600],
                         speakers=[("Soumith Chintala", "speaker"), ("Ibrahim Haddad", "host")])
    sign_up(event, "a@example.org", now=now, question="Will <b>governance</b> change?")
    sign_up(event, "b@example.org", now=now)
    sign_up(event, "c@example.org", now=now, question="What about compilers?")  # waitlisted
    job = jobs_of(event)[("briefing", 3 * 86400)]
    result = fire(job, job.due_at)
    assert (result.outcome, result.queued) == ("done", 2)
    rows = outbox("speaker_briefing")
    assert [r.to_addr for r in rows] == ["soumith@speakers.test", "ibrahim@speakers.test"]
    text = rows[0].body_text
    assert "Registrations: 2 confirmed, 1 on the waitlist (capacity 2)." in text
    assert "- A: Will <b>governance</b> change?" in text and "- C: What about compilers?" in text
    assert "Attendees get their 1 hour reminder" in text
    assert "Live: Soumith Chintala (speaker), Ibrahim Haddad (host)" in text
    assert "Will &lt;b&gt;governance&lt;/b&gt; change?" in rows[0].body_html
    assert speaker_door_url(event.speakers[0]) in text and event.join_url not in text


def test_speaker_nudge_and_thanks(create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), speakers=[("Soumith Chintala", "speaker")])
    sign_up(event, "a@example.org", now=now)
    jobs = jobs_of(event)
    fire(jobs[("nudge", 900)], jobs[("nudge", 900)].due_at)
    nudge = outbox("speaker_nudge")[0]
    assert nudge.subject == f"Going live in 15 minutes: {event.title}"
    assert f"Join now: {speaker_door_url(event.speakers[0])}" in nudge.body_text
    assert event.join_url not in nudge.body_text
    thanks_job = jobs[("thanks", 3600)]
    assert fire(thanks_job, thanks_job.due_at).outcome == "done"
    thanks = outbox("speaker_thanks")[0]
    assert "- 1 registered and confirmed" in thanks.body_text


def test_speaker_jobs_switched_off_are_not_planned(create_event, now):
    event = create_event(starts_at=now + timedelta(days=4), reminder_offsets=[], briefing_enabled=False,
                         nudge_enabled=False, thanks_enabled=False)
    assert jobs_of(event) == {}


def test_sent_log_counts_messages_by_kind(create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    for i in range(3):
        sign_up(event, f"p{i}@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    log = {(row["kind"], row["state"]): row["count"] for row in reminders.sent_log(db.session, event.id)}
    assert log[("reminder", "queued")] == 3


def test_reminder_rendered_per_zone_equals_rendering_each_message(create_event, now, app):
    from scheduler.languages import speaking
    from scheduler.mail import outbox as outbox_module
    from scheduler.mail.reminders import attendee_links
    from scheduler.timefmt import format_lead, format_range

    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    hostile = 'Zoë <script>alert("x")</script> & O\'Brien'
    # Zones and languages crossed: rendered once per language, the time put in once per zone.
    people = [("Asia/Tokyo", "en"), ("Asia/Tokyo", "en"), ("America/Los_Angeles", "en"), ("Asia/Tokyo", "de"),
              ("America/Los_Angeles", "de")]
    for i, (zone, language) in enumerate(people):
        reg = sign_up(event, f"p{i}@example.org", now=now, zone=zone)
        reg.name = hostile if i == 0 else f"Person {i}"
        reg.language = language
    db.session.commit()
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    rows = outbox("reminder")
    assert len(rows) == 5
    for row in rows:
        reg = db.session.get(Registration, row.registration_id)
        manage_url, unsubscribe_url = attendee_links(app.config["SECRET_KEY"], reg)
        with speaking(reg.language):
            expected = outbox_module.message_row(
                kind="reminder", to_addr=reg.email, dedupe_key="k", now=now, unsubscribe_url=unsubscribe_url,
                event=event, name=reg.name, when=format_range(event.starts_at, event.ends_at, reg.timezone),
                starts_in=format_lead(3600), manage_url=manage_url, door_url=door_url(reg))
        assert (row.subject, row.body_text, row.body_html) == (expected["subject"], expected["body_text"],
                                                               expected["body_html"])
        assert row.unsubscribe_url == unsubscribe_url and unsubscribe_url in row.body_text
    assert "Zoë &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; O&#39;Brien" in rows[0].body_html
    assert rows[3].subject != rows[0].subject and rows[3].body_text != rows[4].body_text  # German, two zones


def test_reminder_message_parses_back_with_both_parts_and_unicode_addresses(create_event, now, app):
    from email import message_from_bytes, policy
    from email.message import EmailMessage

    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    for email in ("zoë.ada@example.org", "ada@exämple.org"):
        reg = sign_up(event, email, now=now)
        reg.name = "Zoë O'Brien"
    db.session.commit()
    job = jobs_of(event)[("reminder", 3600)]
    fire(job, job.due_at)
    rows = {row.to_addr: row for row in outbox("reminder")}
    row = rows["ada@exämple.org"]  # the fast path: IDNA domain, encoded display name
    message = message_from_bytes(build_message(row, app.config, now=now).as_bytes(), policy=policy.default)
    assert (message["To"].addresses[0].display_name, message["To"].addresses[0].domain) == (
        "Zoë O'Brien", "xn--exmple-cua.org")
    assert message.get_body(("plain",)).get_content() == row.body_text
    assert message.get_body(("html",)).get_content() == row.body_html
    assert message["List-Unsubscribe"] == f"<{row.unsubscribe_url}>"
    unicode_local = build_message(rows["zoë.ada@example.org"], app.config, now=now)  # needs SMTPUTF8
    assert isinstance(unicode_local, EmailMessage)
    assert unicode_local["To"].addresses[0].username == "zoë.ada"


# --- claims kept alive by a heartbeat; the sweep that ends a fan-out; fair order --------------

def _half_done(event, job, now, worker: str = "slow"):
    """`worker` fired the job, queued its first chunk, and holds the claim (as a process still at work would)."""
    chunks = []
    fire(job, job.due_at, worker=worker, on_chunk=lambda: chunks.append(1),
         stopping=lambda: len(chunks) == 1 and not chunks.append(0))
    db.session.execute(update(PlannedJob).where(PlannedJob.id == job.id)
                       .values(state="running", claimed_by=worker, claimed_at=job.due_at))
    db.session.commit()


def test_a_live_scheduler_keeps_its_fan_out_however_slow_and_a_silent_one_loses_it_after_ten_seconds(
        create_event, now):
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600])
    for i in range(dispatch.FIRST_CHUNK + 5):  # more than the first chunk: the job is half done after it
        sign_up(event, f"p{i}@example.org", now=now)
    job = jobs_of(event)[("reminder", 3600)]
    _half_done(event, job, now)
    # Long past the lease (60 s), but its heartbeat is fresh: it is slow, not dead.
    late = job.due_at + timedelta(seconds=90)
    beat("slow", late - timedelta(seconds=2))
    assert fire(job, late, worker="other").outcome == "busy"
    assert reminders.work_due(db.session, now=late, horizon=timedelta(0)) == []
    # It stops beating: 10 s after its last beat another scheduler takes over, well before any lease.
    beat("slow", job.due_at)
    assert reminders.work_due(db.session, now=job.due_at + timedelta(seconds=9), horizon=timedelta(0)) == []
    taken = job.due_at + timedelta(seconds=11)
    assert reminders.work_due(db.session, now=taken, horizon=timedelta(0)) == [(job.id, taken)]
    resumed = fire(job, taken, worker="other")
    assert (resumed.outcome, resumed.queued) == ("done", 5)
    assert len(outbox("reminder")) == dispatch.FIRST_CHUNK + 5


def test_someone_confirmed_during_a_fan_out_below_its_position_gets_the_reminder_not_starting_soon(
        create_event, now):
    """Their row (lower id) was pending when the fan-out passed it; the sweep under the event's lock finds it."""
    event = create_event(starts_at=now + timedelta(hours=3), reminder_offsets=[3600], double_opt_in=True)
    late = sign_up(event, "late@example.org", now=now)  # pending: no reminder for now
    people = [f"p{i}@example.org" for i in range(dispatch.FIRST_CHUNK + 2)]  # the first chunk leaves two
    for email in people:
        confirmed = sign_up(event, email, now=now)
        signups.confirm_email(db.session, confirmed, now=now)
        db.session.commit()
    job = jobs_of(event)[("reminder", 3600)]
    first = fire(job, job.due_at, chunks=1)
    assert first.outcome == "more"
    # While the fan-out runs (past the late registrant's id), they confirm their address.
    signups.confirm_email(db.session, late, now=job.due_at + timedelta(seconds=1))
    db.session.commit()
    assert outbox("starting_soon") == []  # the running fan-out will include them
    rest = dispatch.resume(db.session, job.id, after=first.after, worker="worker-1",
                           clock=lambda: job.due_at + timedelta(seconds=2))
    assert rest.outcome == "done"
    assert sorted(m.to_addr for m in outbox("reminder")) == sorted(["late@example.org", *people])
    assert outbox("starting_soon") == []
    # After the job is done, a newcomer gets "starting soon" instead.
    sign_up(event, "newcomer@example.org", now=job.due_at + timedelta(seconds=3))
    newcomer = db.session.scalar(select(Registration).where(Registration.email == "newcomer@example.org"))
    signups.confirm_email(db.session, newcomer, now=job.due_at + timedelta(seconds=3))
    db.session.commit()
    assert [m.to_addr for m in outbox("starting_soon")] == ["newcomer@example.org"]


def test_reminders_due_together_are_delivered_in_turns(create_event, now):
    """The n-th recipient of each event comes before the (n+1)-th of any: every event's first message goes early."""
    from scheduler.mail import outbox as mail

    start = now + timedelta(hours=3)
    events = [create_event(starts_at=start, reminder_offsets=[3600]) for _ in range(3)]
    for event in events:
        for i in range(3):
            sign_up(event, f"p{i}@e{event.id}.example.org", now=now)
    for event in events:
        job = jobs_of(event)[("reminder", 3600)]
        assert fire(job, job.due_at).outcome == "done"
    claimed = mail.claim(db.session, worker="w", now=start - timedelta(minutes=59), limit=100)
    order = [row.event_id for row in claimed if row.kind == "reminder"]
    assert order == [event.id for event in events] * 3


def test_reminders_due_together_are_fired_together(create_event, now):
    """One claim for all of them and one transaction for their first pages: the last event's first message is
    queued as early as the first's. A larger event gets its first chunk and goes on by itself."""
    start = now + timedelta(hours=3)
    events = [create_event(starts_at=start, reminder_offsets=[3600]) for _ in range(4)]
    for event in events[:3]:
        for i in range(2):
            sign_up(event, f"p{i}@e{event.id}.example.org", now=now)
    for i in range(dispatch.FIRST_CHUNK + 1):
        sign_up(events[3], f"p{i}@e{events[3].id}.example.org", now=now)
    jobs = [jobs_of(event)[("reminder", 3600)] for event in events]
    due = jobs[0].due_at

    with statements() as seen:
        firings = dispatch.fire_many(db.session, [job.id for job in jobs], worker="w", clock=lambda: due, chunks=1)

    assert [(f.outcome, f.queued) for f in firings] == [("done", 2)] * 3 + [("more", dispatch.FIRST_CHUNK)]
    claims = [s for s in seen if s.startswith("UPDATE planned_jobs") and "fired_at=coalesce" in s]
    inserts = [s for s in seen if s.startswith("INSERT INTO outbox")]
    assert len(claims) == 1 and len(inserts) == 4  # one claim; each event's rows in one statement
    assert {job.state for job in [jobs_of(event)[("reminder", 3600)] for event in events[:3]]} == {"done"}
    first = [m for m in outbox("reminder") if m.to_addr.startswith("p0@")]
    assert sorted(m.event_id for m in first) == sorted(e.id for e in events)
    assert len({m.next_attempt_at for m in first}) == 1  # the same place in the queue: first in turn

    rest = dispatch.resume(db.session, jobs[3].id, after=firings[3].after, worker="w", clock=lambda: due)
    assert (rest.outcome, rest.queued) == ("done", 1)
    assert jobs_of(events[3])[("reminder", 3600)].messages_queued == dispatch.FIRST_CHUNK + 1


def test_more_reminders_due_together_than_a_group_get_every_first_recipient_queued_first(create_event, now,
                                                                                          monkeypatch):
    """Before any group's pages, one transaction queues each event's first recipient: the last group's events
    get their first message as early as the first group's. The pages then skip them, and every job counts
    its messages once."""
    monkeypatch.setattr(dispatch, "FIRST_GROUP", 2)  # five events: the heads, then three groups
    start = now + timedelta(hours=3)
    events = [create_event(starts_at=start, reminder_offsets=[3600]) for _ in range(5)]
    firsts = {}
    for event in events:
        firsts[event.id] = sign_up(event, f"p0@e{event.id}.example.org", now=now).id
        for i in range(1, 3):
            sign_up(event, f"p{i}@e{event.id}.example.org", now=now)
    jobs = [jobs_of(event)[("reminder", 3600)] for event in events]
    due = jobs[0].due_at
    committed = []

    def on_chunk():  # what another connection sees after each commit
        with db.engine.connect() as connection:
            committed.append(connection.execute(select(OutboxMessage.event_id, OutboxMessage.registration_id)
                                                .where(OutboxMessage.kind == "reminder")).all())

    firings = dispatch.fire_many(db.session, [job.id for job in jobs], worker="w", clock=lambda: due,
                                 on_chunk=on_chunk)

    assert sorted(committed[0]) == sorted(firsts.items())  # the heads alone, one per event
    assert [len(rows) for rows in committed] == [5, 5 + 2 * 2, 5 + 4 * 2, 15]
    assert [(f.outcome, f.queued) for f in firings] == [("done", 3)] * 5
    rows = outbox("reminder")
    assert sorted((m.event_id, m.to_addr) for m in rows) == sorted(
        (event.id, f"p{i}@e{event.id}.example.org") for event in events for i in range(3))
    # Each event's n-th recipient in the n-th place of the queue, the head first.
    places = sorted({m.next_attempt_at for m in rows})
    assert len(places) == 3
    assert {m.event_id: m.next_attempt_at for m in rows if m.registration_id == firsts[m.event_id]} == {
        event.id: places[0] for event in events}
    assert [(job.state, job.messages_queued) for job in (jobs_of(event)[("reminder", 3600)] for event in events)] == [
        ("done", 3)] * 5


def test_a_resumed_firing_among_many_due_together_sends_nobody_twice(create_event, now, monkeypatch):
    """A reminder whose first holder queued part of its recipients and died, fired again with four others:
    its head and pages skip whoever has the message, and its count goes on from the first holder's."""
    monkeypatch.setattr(dispatch, "FIRST_GROUP", 2)
    start = now + timedelta(hours=3)
    events = [create_event(starts_at=start, reminder_offsets=[3600]) for _ in range(5)]
    for event in events:
        for i in range(3):
            sign_up(event, f"p{i}@e{event.id}.example.org", now=now)
    jobs = [jobs_of(event)[("reminder", 3600)] for event in events]
    due = jobs[0].due_at
    # The dead holder of the first job had queued its first two recipients.
    assert fire(jobs[0], due, worker="dead").outcome == "done"
    db.session.delete(outbox("reminder")[2])
    db.session.execute(update(PlannedJob).where(PlannedJob.id == jobs[0].id).values(
        state="running", claimed_by="dead", claimed_at=due, messages_queued=2))
    db.session.commit()

    later = due + timedelta(minutes=2)
    firings = dispatch.fire_many(db.session, [job.id for job in jobs], worker="w", clock=lambda: later)

    assert [(f.outcome, f.queued) for f in firings] == [("done", 1)] + [("done", 3)] * 4
    rows = outbox("reminder")
    assert len(rows) == 15 and len({m.dedupe_key for m in rows}) == 15
    assert [job.messages_queued for job in (jobs_of(event)[("reminder", 3600)] for event in events)] == [3] * 5


def test_a_job_fired_together_with_others_is_claimed_once(create_event, now):
    """Fired together by one scheduler and alone by another: each job is claimed by only one."""
    start = now + timedelta(hours=3)
    events = [create_event(starts_at=start, reminder_offsets=[3600]) for _ in range(3)]
    for event in events:
        sign_up(event, f"p@e{event.id}.example.org", now=now)
    jobs = [jobs_of(event)[("reminder", 3600)] for event in events]
    due = jobs[0].due_at
    alone = fire(jobs[1], due, worker="other")
    together = dispatch.fire_many(db.session, [job.id for job in jobs], worker="w", clock=lambda: due)
    assert alone.outcome == "done"
    assert [f.outcome for f in together] == ["done", "busy", "done"]
    assert len(outbox("reminder")) == 3


def test_two_reminders_of_one_event_due_together_each_reach_everyone_once(create_event, now):
    """Both offsets overdue at once (a scheduler back after downtime): fired together, their sweeps are one
    statement, each firing's own key decides who it misses, and each job counts its own messages."""
    event = create_event(starts_at=now + timedelta(days=2), reminder_offsets=[86400, 10800])
    for n in range(3):
        sign_up(event, f"p{n}@example.org", now=now)
    jobs = jobs_of(event)
    day, hours = jobs[("reminder", 86400)], jobs[("reminder", 10800)]
    late = event.starts_at - timedelta(hours=2)
    firings = dispatch.fire_many(db.session, [day.id, hours.id], worker="w", clock=lambda: late)
    assert {f.outcome for f in firings} == {"done"} and [f.queued for f in firings] == [3, 3]
    rows = outbox("reminder")
    assert sorted((row.dedupe_key.rsplit(":", 1)[0], row.to_addr) for row in rows) == sorted(
        (reminders.job_key(job), f"p{n}@example.org") for job in (day, hours) for n in range(3))
    db.session.expire_all()
    assert [(j.state, j.messages_queued) for j in (db.session.get(PlannedJob, day.id),
                                                   db.session.get(PlannedJob, hours.id))] == [("done", 3), ("done", 3)]
    # The sweep by key: one message of the first firing gone, nothing of a third key yet.
    db.session.delete(rows[0])
    db.session.commit()
    missed = reminders.missed_recipients(db.session, [(event.id, reminders.job_key(day)), (event.id, "other"),
                                                      (event.id, reminders.job_key(hours))])
    assert [[r.email for r in found] for found in missed] == [
        [rows[0].to_addr], [f"p{n}@example.org" for n in range(3)], []]
