"""The escalation flow on a real database with an injected clock.

A complaint nobody answers climbs tier 1 → 2 → 3 → 4 at the right business
times (Europe/Berlin, Mon-Fri 09:00-17:00), each tier is mailed, the previous
owner and the customer are told, and the admins hear of the breach once.
Pausing, resolving, reopening and the customer's triggers move the clocks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import Application
from daemon.lifecycle import TicketStateError
from daemon.service import IngestOutcome
from models import Event, OutboxMail, Ticket
from routing import RoutingConfig, default_routing_config
from tests.support.app_factory import activate_model, build_app, train_small_model
from tests.support.mail_factory import complaint, reply_to

# Monday 23 November 2026, 10:00 in Berlin (09:00 UTC): a working day.
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(MONDAY)


@pytest.fixture
def app(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> Iterator[Application]:
    application = build_app(db_url, monkeypatch, clock=clock, base_dir=tmp_path)
    yield application
    application.close()


def _ticket(app: Application, ref: str | None) -> Ticket:
    with app.sessions() as session:
        return session.scalars(select(Ticket).where(Ticket.ref == ref)).one()


def _mails(app: Application, ref: str | None, kind: str | None = None) -> list[OutboxMail]:
    with app.sessions() as session:
        ticket_id = session.scalars(select(Ticket.id).where(Ticket.ref == ref)).one()
        query = select(OutboxMail).where(OutboxMail.ticket_id == ticket_id)
        if kind is not None:
            query = query.where(OutboxMail.kind == kind)
        return list(session.scalars(query.order_by(OutboxMail.id)))


def _events(app: Application, ref: str | None, kind: str) -> list[Event]:
    with app.sessions() as session:
        ticket_id = session.scalars(select(Ticket.id).where(Ticket.ref == ref)).one()
        return list(
            session.scalars(select(Event).where(Event.ticket_id == ticket_id, Event.kind == kind))
        )


def _address(recipients: list[str]) -> str:
    [only] = recipients
    return parseaddr(only)[1]


def _sweep(app: Application, at: datetime) -> dict[str, list[str]]:
    assert app.sweep is not None
    return app.sweep.run(at).actions


def _critical_follow_up(app: Application, ref: str | None) -> None:
    app.service.ingest(
        reply_to(
            b"",
            sender="carla@shop.example",
            subject=f"Re: [{ref}]",
            body="The charger you sold me caught fire last night and burned my hand. My lawyer "
            "will contact you and I am reporting this to the consumer safety authority.\n",
        )
    )


def _open(app: Application, clock: Clock) -> str:
    result = app.service.ingest(
        complaint(sender="carla@shop.example", name="Carla Diaz", subject="Broken blender")
    )
    assert result.outcome is IngestOutcome.CREATED and result.ticket_ref is not None
    return result.ticket_ref


def _berlin(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    # November and December 2026 are CET (UTC+1).
    return datetime(2026, month, day, hour - 1, minute, tzinfo=UTC)


def test_unanswered_ticket_climbs_every_tier_at_business_times_then_admins_told_once(
    app: Application, clock: Clock
) -> None:
    ref = _open(app, clock)
    ticket = _ticket(app, ref)
    # No model in this test: unclassified, medium → triage team at tier 1; the
    # medium policy owes a first response within 8 business hours.
    assert (ticket.tier, ticket.team) == (1, "triage")
    assert ticket.first_response_due_at == _berlin(24, 10)  # Mon 10-17 is 7 h, +1 h Tuesday
    assert ticket.sla_check_at == _berlin(23, 16, 24)  # the warning at 80 %: 6 h 24 min

    assert _sweep(app, _berlin(23, 16, 23)) == {}
    assert _sweep(app, _berlin(23, 16, 25)) == {ref: ["warning:first_response"]}
    assert _sweep(app, _berlin(23, 16, 30)) == {}  # warned once
    [warning] = _mails(app, ref, "sla_warning")
    assert ticket.assignee == "dora@example.com"  # round robin in the triage team
    assert _address(warning.to_addresses) == "dora@example.com"

    # Overnight nothing happens: the deadline is in business time.
    assert _sweep(app, _berlin(24, 9, 59)) == {}
    expected = [
        (_berlin(24, 10), 2, "customer-relations", "maya@example.com"),
        (_berlin(25, 10), 3, "supervisors", "nora@example.com"),
        (_berlin(26, 10), 4, "resolution-lead", "petra@example.com"),
    ]
    for at, tier, team, assignee in expected:
        assert _sweep(app, at) == {ref: ["escalated:first_response"]}
        ticket = _ticket(app, ref)
        assert (ticket.tier, ticket.team, ticket.assignee) == (tier, team, assignee)
        # The new level gets a full budget on its own calendar: one working day.
        assert ticket.first_response_due_at == at + timedelta(days=1)
        notice = _mails(app, ref, "escalation_notice")[-1]
        assert f"tier {tier}" in notice.subject
        assert "a deadline passed" in notice.body_text
        assert "Broken blender" in notice.body_text
        # It warns at 80 % of the new level's time, too.
        assert _sweep(app, at + timedelta(hours=6, minutes=25)) == {ref: ["warning:first_response"]}

    previous = _mails(app, ref, "previous_owner_notice")
    assert [_address(m.to_addresses) for m in previous] == [
        "dora@example.com",
        "maya@example.com",
        "nora@example.com",
    ]
    assert len(_mails(app, ref, "customer_escalation_note")) == 3  # flood cap is 5 per hour
    assert _sweep(app, _berlin(27, 10)) == {ref: ["breach:first_response"]}
    [report] = _mails(app, ref, "breach_report")
    assert _address(report.to_addresses) == "admin@example.com"
    assert "SLA breach" in report.subject
    # The breached clock never fires again; a later deadline is recorded, not re-reported.
    assert _sweep(app, _berlin(27, 12)) == {}
    assert _sweep(app, _berlin(7, 9, 59, month=12)) == {ref: ["warning:resolution"]}
    # Resolution (10 working days of 8 h) ran on since Monday 23 November 10:00.
    assert _sweep(app, _berlin(7, 10, month=12)) == {ref: ["breach:resolution"]}
    assert len(_mails(app, ref, "breach_report")) == 1
    escalations = _events(app, ref, "escalated")
    assert [(e.data["from_tier"], e.data["to_tier"]) for e in escalations] == [
        (1, 2),
        (2, 3),
        (3, 4),
    ]
    assert all(e.data["trigger"] == "deadline" for e in escalations)
    assert len(_events(app, ref, "breach")) == 2


def test_waiting_on_the_customer_pauses_the_clocks_and_their_reply_resumes_them(
    app: Application, clock: Clock
) -> None:
    assert app.lifecycle is not None
    ref = _open(app, clock)
    with app.sessions.begin() as session:  # an hour in, the agent asks the customer something
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.wait_on_customer(session, ticket, _berlin(23, 11), "anna@example.com")
    ticket = _ticket(app, ref)
    assert ticket.status == "pending"
    assert ticket.sla_check_at is None and ticket.first_response_due_at is None
    assert _sweep(app, _berlin(26, 12)) == {}  # days later: nothing escalates while paused

    clock.now = _berlin(25, 14)  # Wednesday 14:00 the customer answers
    result = app.service.ingest(
        reply_to(b"", sender="carla@shop.example", subject=f"Re: Broken blender [{ref}]")
    )
    assert result.outcome is IngestOutcome.ADDED
    ticket = _ticket(app, ref)
    assert ticket.status == "open"
    # One business hour was used before the pause; seven remain from Wednesday 14:00.
    assert ticket.first_response_due_at == _berlin(26, 13)
    assert [e.kind for e in _events(app, ref, "resumed")] == ["resumed"]
    # The owner hears of the customer's answer.
    [notice] = _mails(app, ref, "follow_up_notice")
    assert _address(notice.to_addresses) == "dora@example.com"


def test_agent_answer_stops_response_clock_and_follow_up_starts_next_response(
    app: Application, clock: Clock
) -> None:
    assert app.lifecycle is not None
    ref = _open(app, clock)
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.agent_replied(session, ticket, _berlin(23, 12), "anna@example.com")
    ticket = _ticket(app, ref)
    assert ticket.first_response_due_at is None and ticket.first_responded_at is not None
    assert ticket.resolution_due_at is not None  # resolution still runs
    clock.now = _berlin(24, 9)
    app.service.ingest(
        reply_to(b"", sender="carla@shop.example", subject=f"Re: Broken blender [{ref}]")
    )
    ticket = _ticket(app, ref)
    # Medium: the next response within one working day (8 h) of Tuesday 09:00.
    assert ticket.next_response_due_at == _berlin(24, 17)
    assert ticket.unanswered_count == 1


def test_resolve_stops_clocks_reply_within_window_reopens_later_reply_opens_new_ticket(
    app: Application, clock: Clock
) -> None:
    assert app.lifecycle is not None
    ref = _open(app, clock)
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.resolve(session, ticket, _berlin(23, 15), "anna@example.com")
    ticket = _ticket(app, ref)
    assert ticket.status == "resolved" and ticket.sla_check_at is None
    assert _sweep(app, _berlin(30, 12)) == {}

    clock.now = _berlin(30, 12)  # a week later: within the 14-day window
    again = app.service.ingest(
        reply_to(b"", sender="carla@shop.example", subject=f"Re: Broken blender [{ref}]")
    )
    assert (again.outcome, again.ticket_ref) == (IngestOutcome.ADDED, ref)
    ticket = _ticket(app, ref)
    assert ticket.status == "open" and ticket.next_response_due_at is not None
    assert len(_events(app, ref, "reopened")) == 1

    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.resolve(session, ticket, _berlin(30, 13), "anna@example.com")
    clock.now = _berlin(30, 13) + timedelta(days=20)
    late = app.service.ingest(
        reply_to(b"", sender="carla@shop.example", subject=f"Re: Broken blender [{ref}]")
    )
    assert late.outcome is IngestOutcome.CREATED and late.ticket_ref != ref
    [created] = _events(app, late.ticket_ref, "created")
    assert ref in created.data["reason"]


def test_housekeeping_closes_resolved_tickets_after_the_reopen_window(
    app: Application, clock: Clock
) -> None:
    assert app.lifecycle is not None
    ref = _open(app, clock)
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.resolve(session, ticket, MONDAY, "anna@example.com")
    with app.sessions.begin() as session:
        assert app.lifecycle.close_resolved(session, MONDAY + timedelta(days=13)) == 0
    with app.sessions.begin() as session:
        assert app.lifecycle.close_resolved(session, MONDAY + timedelta(days=15)) == 1
    assert _ticket(app, ref).status == "closed"


def test_unanswered_customer_messages_escalate_one_level(app: Application, clock: Clock) -> None:
    ref = _open(app, clock)
    for minute in (5, 10):  # the second and third message without an answer
        clock.now = MONDAY + timedelta(minutes=minute)
        app.service.ingest(
            reply_to(b"", sender="carla@shop.example", subject=f"Re: Broken blender [{ref}]")
        )
    ticket = _ticket(app, ref)
    assert ticket.tier == 2
    [escalation] = _events(app, ref, "escalated")
    assert escalation.data["trigger"] == "unanswered"
    assert escalation.actor == "carla@shop.example"
    # The first follow-up told the owner; the escalation notice replaces the second.
    assert len(_mails(app, ref, "follow_up_notice")) == 1
    assert len(_mails(app, ref, "escalation_notice")) == 1


def test_a_stranger_using_the_subject_tag_moves_no_clock(app: Application, clock: Clock) -> None:
    ref = _open(app, clock)
    before = _ticket(app, ref)
    stranger = app.service.ingest(
        reply_to(b"", sender="mallory@evil.example", subject=f"Re: Broken blender [{ref}]")
    )
    assert stranger.ticket_ref != ref
    after = _ticket(app, ref)
    assert (after.unanswered_count, after.tier) == (before.unanswered_count, before.tier)


def test_admin_escalation_from_the_cli_functions(app: Application, clock: Clock) -> None:
    assert app.lifecycle is not None
    ref = _open(app, clock)
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.escalate(session, ticket, MONDAY, "lead@example.com", "VIP is furious")
    ticket = _ticket(app, ref)
    assert ticket.tier == 2
    [event] = _events(app, ref, "escalated")
    assert event.data["trigger"] == "agent_request" and "VIP is furious" in event.data["reason"]
    [notice] = _mails(app, ref, "escalation_notice")
    assert "VIP is furious" in notice.body_text


def _at_tier_four(app: Application, ref: str | None) -> None:
    assert app.lifecycle is not None
    for _ in range(3):  # an admin moves it up by hand: tier 1 → 4
        with app.sessions.begin() as session:
            ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
            app.lifecycle.escalate(session, ticket, MONDAY, "lead@example.com", "VIP")
    assert _ticket(app, ref).tier == 4


def test_at_tier_four_unanswered_mail_reaches_the_owner_and_only_a_deadline_is_a_breach(
    app: Application, clock: Clock
) -> None:
    ref = _open(app, clock)
    _at_tier_four(app, ref)
    for minute, body in ((5, "Hello?\n"), (10, "Third mail: my kitchen is flooded, call me\n")):
        clock.now = MONDAY + timedelta(minutes=minute)
        app.service.ingest(
            reply_to(b"", sender="carla@shop.example", subject=f"Re: [{ref}]", body=body)
        )
    # Nobody is above tier 4: the unanswered mails stay with the resolution lead.
    notices = _mails(app, ref, "follow_up_notice")
    assert len(notices) == 2 and "kitchen is flooded" in notices[-1].body_text
    assert _mails(app, ref, "breach_report") == [] and _events(app, ref, "breach") == []
    assert _ticket(app, ref).breach_reported_at is None
    # An explicit escalation has nowhere to go either, and says so.
    assert app.lifecycle is not None
    with app.sessions.begin() as session, pytest.raises(TicketStateError, match="last level"):
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.escalate(session, ticket, clock.now, "lead@example.com", "help")
    # The real breach, when the deadline passes, is reported to the admins once.
    due = _ticket(app, ref).first_response_due_at
    assert due is not None
    assert _sweep(app, due + timedelta(minutes=1)) == {ref: ["breach:first_response"]}
    assert len(_mails(app, ref, "breach_report")) == 1
    [breach] = _events(app, ref, "breach")
    assert breach.data["trigger"] == "deadline" and breach.data["reported_to"]


def test_replies_from_the_reply_to_address_are_the_customers(
    app: Application, clock: Clock
) -> None:
    # A web form sends the mail itself; the customer is in Reply-To.
    opened = app.service.ingest(
        complaint(
            sender="forms@webform.example",
            name="Shop contact form",
            subject="Broken blender",
            headers={"Reply-To": "Carla Diaz <carla@home.example>"},
        )
    )
    ref = opened.ticket_ref
    [ack] = _mails(app, ref, "acknowledgement")
    assert _address(ack.to_addresses) == "carla@home.example"
    assert app.lifecycle is not None
    with app.sessions.begin() as session:
        ticket = session.scalars(select(Ticket).where(Ticket.ref == ref)).one()
        app.lifecycle.resolve(session, ticket, MONDAY + timedelta(hours=1), "dora@example.com")
    clock.now = MONDAY + timedelta(days=2)
    answer = app.service.ingest(
        reply_to(
            b"",
            sender="carla@home.example",
            subject=f"Re: Broken blender [{ref}]",
            body="It is broken again!\n",
            references=[ack.message_id],
        )
    )
    assert answer.ticket_ref == ref
    ticket = _ticket(app, ref)
    assert ticket.status == "open" and ticket.next_response_due_at is not None
    assert len(_events(app, ref, "reopened")) == 1
    # Mail to the customer goes where the acknowledgement went.
    due = ticket.first_response_due_at or ticket.next_response_due_at
    assert due is not None
    _sweep(app, due + timedelta(minutes=1))
    [note] = _mails(app, ref, "customer_escalation_note")
    assert _address(note.to_addresses) == "carla@home.example"


def test_a_ticket_without_a_severity_that_turns_critical_gets_the_critical_policy(
    model_ready_app: Application, clock: Clock, small_model: object, tmp_path: Path
) -> None:
    app = model_ready_app
    ref = _open(app, clock)  # no model yet: no prediction
    assert _ticket(app, ref).severity is None
    activate_model(app, small_model, tmp_path / "models")
    clock.now = MONDAY + timedelta(hours=1)
    _critical_follow_up(app, ref)
    ticket = _ticket(app, ref)
    assert (ticket.severity, ticket.tier, ticket.sla_policy) == ("critical", 3, "critical")
    assert ticket.first_response_due_at == clock.now + timedelta(hours=1)
    [change] = _events(app, ref, "sla_policy_changed")
    assert change.data["to"] == "critical"


def _app_with_templates(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, clock: Clock, **files: str
) -> Application:
    folder = tmp_path / "templates"
    folder.mkdir()
    for name, text in files.items():
        (folder / f"{name}.en.j2").write_text(text, encoding="utf-8")
    document = default_routing_config().model_dump()
    document["templates"] = {"folder": str(folder)}
    return build_app(
        db_url,
        monkeypatch,
        clock=clock,
        base_dir=tmp_path,
        routing_config=RoutingConfig.model_validate(document),
    )


def test_a_custom_template_that_fails_for_one_ticket_costs_only_that_mail(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    app = _app_with_templates(
        tmp_path,
        db_url,
        monkeypatch,
        clock,
        # Fine for a named sender; an error for one without a display name.
        acknowledgement="{% block subject %}Re: {{ subject }} [{{ ref }}]{% endblock %}"
        "{% block body %}Dear {{ customer_name.split()[0] }},\nwe got it.{% endblock %}",
        # Arithmetic on a confidence an unclassified ticket does not have.
        escalation_notice="{% block subject %}[{{ ref }}] tier {{ to_tier }}{% endblock %}"
        "{% block body %}{{ (category_confidence * 100)|round }} % sure{% endblock %}",
    )
    try:
        named = app.service.ingest(complaint(sender="carla@shop.example", name="Carla Diaz"))
        bare = app.service.ingest(complaint(sender="bob@shop.example", name=""))
        assert [m.kind for m in _mails(app, named.ticket_ref, "acknowledgement")] == [
            "acknowledgement"
        ]
        ticket = _ticket(app, bare.ticket_ref)
        # Routed, owned and on the clock all the same; only its acknowledgement is missing.
        assert ticket.tier == 1 and ticket.assignee and ticket.sla_check_at is not None
        assert [m.kind for m in _mails(app, bare.ticket_ref)] == ["assignment_notice"]
        [skipped] = _events(app, bare.ticket_ref, "mail_not_sent")
        assert skipped.data["kind"] == "acknowledgement"
        # The escalation happens even though its notice cannot be written.
        assert ticket.first_response_due_at is not None
        actions = _sweep(app, ticket.first_response_due_at + timedelta(minutes=1))
        assert actions.get(ticket.ref or "") == ["escalated:first_response"]
        assert _ticket(app, bare.ticket_ref).tier == 2
        kinds = {e.data["kind"] for e in _events(app, bare.ticket_ref, "mail_not_sent")}
        assert kinds == {"acknowledgement", "escalation_notice"}
    finally:
        app.close()


# -- triggers that need the classifier's signals ------------------------------------


@pytest.fixture(scope="module")
def small_model() -> object:
    return train_small_model()


@pytest.fixture
def model_ready_app(
    tmp_path: Path, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> Iterator[Application]:
    """An application with a model folder but no model yet."""
    application = build_app(
        tmp_db_url,
        monkeypatch,
        clock=clock,
        base_dir=tmp_path,
        classifier={"train_on_first_run": False, "model_dir": str(tmp_path / "models")},
    )
    yield application
    application.close()


@pytest.fixture
def classified_app(
    model_ready_app: Application, tmp_path: Path, small_model: object
) -> Application:
    activate_model(model_ready_app, small_model, tmp_path / "models")
    return model_ready_app


@pytest.mark.parametrize(
    "text",
    [
        "This is taking far too long. I want to speak to a manager today.\n",
        "Das dauert viel zu lange. Ich möchte sofort mit Ihrem Vorgesetzten sprechen.\n",
        "Ez már túl sokáig tart. Kérem, kapcsolja a felettesét, vele akarok beszélni.\n",
    ],
    ids=["en", "de", "hu"],
)
def test_customer_asking_for_a_manager_goes_to_supervisors(
    classified_app: Application, clock: Clock, text: str
) -> None:
    app = classified_app
    result = app.service.ingest(
        complaint(
            sender="carla@shop.example",
            subject="Blender broken",
            body="Hello,\n\nthe blender I bought stopped working after two days.\n",
        )
    )
    ref = result.ticket_ref
    assert _ticket(app, ref).tier in (1, 2)
    clock.now = MONDAY + timedelta(hours=1)
    app.service.ingest(
        reply_to(b"", sender="carla@shop.example", subject=f"Re: [{ref}]", body=text)
    )
    ticket = _ticket(app, ref)
    assert ticket.tier == 3 and ticket.team == "supervisors"
    [event] = _events(app, ref, "escalated")
    assert event.data["trigger"] == "customer_request"
    assert "escalation_request" in ticket.signals


def test_severity_rising_to_critical_goes_to_supervisors_under_the_critical_policy(
    classified_app: Application, clock: Clock
) -> None:
    app = classified_app
    result = app.service.ingest(
        complaint(
            sender="carla@shop.example",
            subject="Question about my invoice",
            body="Hi, could you tell me when the November invoice will be sent? Thanks.\n",
        )
    )
    ref = result.ticket_ref
    before = _ticket(app, ref)
    assert before.severity != "critical"
    clock.now = MONDAY + timedelta(hours=1)
    _critical_follow_up(app, ref)
    ticket = _ticket(app, ref)
    assert ticket.severity == "critical"
    assert ticket.tier == 3
    [event] = _events(app, ref, "escalated")
    assert event.data["trigger"] in ("severity_critical", "customer_request")
    assert ticket.sla_policy == "critical"
    # The critical policy is 24x7 with a 1-hour first response; the supervisors get it in full.
    assert ticket.first_response_due_at == clock.now + timedelta(hours=1)
