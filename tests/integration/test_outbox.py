"""The outbox and its SMTP sender against a real aiosmtpd server on loopback, SQLite and PostgreSQL.

Time is simulated: the sender is driven with ``send_due(now)`` and a fake
clock, so "ten minutes of refusals" takes milliseconds.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from daemon.demo_servers import ReceivedMessage, SmtpSink, free_port
from daemon.outbox import OutboxConfig, agent_audience, enqueue
from daemon.references import SignedReference, verify_references
from daemon.settings import SmtpSettings
from daemon.smtp_sender import OutboxSender, SendReport
from models import (
    Event,
    OutboxMail,
    Ticket,
    create_database_engine,
    session_factory,
    upgrade_schema,
)

SECRET = b"outbox-test-secret-0123456789abcdef"
DOMAIN = "support.example.com"
LOOP = "complaintd@support.example.com"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
CONFIG = OutboxConfig(
    secret=SECRET,
    domain=DOMAIN,
    loop_value=LOOP,
    from_address="Example Support <support@example.com>",
    own_addresses=frozenset({"support@example.com", "billing@example.com"}),
)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def _database(url: str, *, upgrade: bool = True) -> sessionmaker[Session]:
    engine = create_database_engine(url)
    if upgrade:
        upgrade_schema(engine)  # not thread-safe (Alembic's global context): main thread only
    return session_factory(engine)


@pytest.fixture
def sessions(tmp_db_url: str) -> Iterator[sessionmaker[Session]]:
    factory = _database(tmp_db_url)
    yield factory
    bind = factory.kw["bind"]
    bind.dispose()


def _smtp(host: str, port: int) -> SmtpSettings:
    return SmtpSettings(host=host, port=port, tls="none", from_address="support@example.com")


def _sender(
    sessions: sessionmaker[Session], port: int, clock: FakeClock, **options: Any
) -> OutboxSender:
    options.setdefault("rng", random.Random(7))
    return OutboxSender(sessions, _smtp("127.0.0.1", port), None, clock, **options)


def _send(sender: OutboxSender, now: datetime) -> SendReport:
    return asyncio.run(sender.send_due(now))


def _ticket(session: Session, customer: str = "anna@customer.example") -> Ticket:
    ticket = Ticket(customer_email=customer, subject="Double charge", created_at=T0, updated_at=T0)
    session.add(ticket)
    session.flush()
    return ticket


def _queue(
    sessions: sessionmaker[Session],
    count: int = 1,
    *,
    to: str | tuple[str, str] = "anna@customer.example",
    now: datetime = T0,
    **overrides: Any,
) -> list[OutboxMail]:
    """``count`` acknowledgements on one new ticket, committed."""
    arguments: dict[str, Any] = {
        "kind": "acknowledgement",
        "subject": "We received your complaint [CMP-000001]",
        "text": "Hello,\nwe received your message.\n",
        "audience": "customer",
        "automatic": False,
        "config": CONFIG,
        "now": now,
    }
    arguments.update(overrides)
    with sessions.begin() as session:
        ticket = _ticket(session)
        mails = [enqueue(session, ticket=ticket, to=[to], **arguments) for _ in range(count)]
    assert all(mail is not None for mail in mails)
    return [mail for mail in mails if mail is not None]


def _rows(sessions: sessionmaker[Session]) -> list[OutboxMail]:
    with sessions() as session:
        return list(session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def _events(sessions: sessionmaker[Session], kind: str) -> list[Event]:
    with sessions() as session:
        return list(session.scalars(select(Event).where(Event.kind == kind).order_by(Event.id)))


def _per_message_id(messages: list[ReceivedMessage]) -> Counter[str]:
    return Counter(str(received.message["Message-ID"]) for received in messages)


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


# ------------------------------------------------------------------ delivery


def test_delivers_with_signed_message_id_threading_and_loop_headers(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    subject = "Ihre Beschwerde – Grüße aus Győr [CMP-000001]"
    [queued] = _queue(
        sessions,
        to=("Jürgen Müller-Lüdenscheidt", "Juergen@Customer.example"),
        subject=subject,
        text="Guten Tag,\nwir haben Ihre Nachricht erhalten. Ä Ö Ü ß\n",
        in_reply_to="<original.1@mua.customer.example>",
        references=["<root.0@mua.customer.example>"],
        automatic=True,
    )
    clock = FakeClock()
    report = _send(_sender(sessions, smtp_sink.port, clock), T0)
    assert report == SendReport(claimed=1, sent=1)

    [received] = smtp_sink.wait_for(1)
    message = received.message
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == ("Juergen@customer.example",)
    assert message["Message-ID"] == queued.message_id
    [row] = _rows(sessions)
    assert verify_references(SECRET, [message["Message-ID"]]) == [
        SignedReference(row.ticket_id or 0, "c")
    ]
    assert message["Subject"] == subject
    assert message["From"] == "Example Support <support@example.com>"
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (
        "Jürgen Müller-Lüdenscheidt",
        "Juergen@customer.example",
    )
    assert message["In-Reply-To"] == "<original.1@mua.customer.example>"
    assert message["References"] == (
        "<root.0@mua.customer.example> <original.1@mua.customer.example>"
    )
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Loop"] == LOOP
    assert message["Precedence"] is None
    assert message["MIME-Version"] == "1.0"
    assert message["Date"].datetime == T0
    body = message.get_body(("plain",))
    assert body is not None
    text = body.get_content().replace("\r\n", "\n")  # decoded quoted-printable keeps CRLF
    assert text == "Guten Tag,\nwir haben Ihre Nachricht erhalten. Ä Ö Ü ß\n"
    # 7-bit clean with CRLF line ends: any relay takes it.
    assert received.data.isascii()
    assert b"\n" not in received.data.replace(b"\r\n", b"")

    assert (row.status, row.attempts, row.sent_at, row.claimed_until) == ("sent", 1, T0, None)


def test_agent_notice_is_signed_for_that_agent_and_auto_generated(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(
        sessions,
        to=("Bob Agent", "bob@support-team.example"),
        kind="assignment_notice",
        audience="agent",
        automatic=True,
        html="<p>New ticket</p>",
    )
    _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    [received] = smtp_sink.wait_for(1)
    message = received.message
    [reference] = verify_references(SECRET, [message["Message-ID"]])
    assert reference.audience == agent_audience("Bob@Support-Team.example")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    html = message.get_body(("html",))
    assert html is not None and "<p>New ticket</p>" in html.get_content()


def test_mail_written_by_a_person_has_no_auto_submitted_but_keeps_x_loop(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(sessions, kind="agent_reply", automatic=False)
    _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    [received] = smtp_sink.wait_for(1)
    assert received.message["Auto-Submitted"] is None
    assert received.message["X-Auto-Response-Suppress"] is None
    assert received.message["X-Loop"] == LOOP


def test_rolled_back_change_sends_nothing(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    with sessions() as session:
        ticket = _ticket(session)
        enqueue(
            session, ticket=ticket, kind="acknowledgement", to=["anna@customer.example"],
            subject="x", text="y", audience="customer", automatic=True, config=CONFIG, now=T0,
        )  # fmt: skip
        session.rollback()
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert report.claimed == 0
    assert smtp_sink.messages == []


# ----------------------------------------------------------- retry and failure


def test_refusals_for_ten_minutes_then_acceptance_deliver_each_mail_once(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    queued = _queue(sessions, 25)
    clock = FakeClock()
    sender = _sender(sessions, smtp_sink.port, clock, connections=3, batch_size=10)
    smtp_sink.fail_with = (451, "4.3.0 Try again later")

    first = _send(sender, T0)
    # The first refusal at MAIL FROM defers its batch; no further batch is claimed.
    assert (first.claimed, first.sent, first.retried, first.failed) == (10, 0, 10, 0)
    first = _send(sender, T0)
    assert (first.claimed, first.retried) == (10, 10)
    first = _send(sender, T0)
    assert (first.claimed, first.retried) == (5, 5)
    rows = _rows(sessions)
    assert {row.status for row in rows} == {"pending"}
    for row in rows:
        assert T0 + timedelta(seconds=2.5) <= row.next_attempt_at <= T0 + timedelta(seconds=5)
    assert any("451" in (row.last_error or "") for row in rows)
    # Not due again yet: nothing is tried.
    assert _send(sender, T0 + timedelta(seconds=1)).claimed == 0

    # Ten minutes of refusals, one round per simulated minute.
    for _ in range(10):
        clock.advance(minutes=1)
        report = _send(sender, clock.now)
        assert report.sent == 0 and report.failed == 0
    attempts = [row.attempts for row in _rows(sessions)]
    assert min(attempts) >= 5  # backoff grows: 5, 10, 20, 40, 80 s ... within ten minutes
    assert smtp_sink.messages == []

    smtp_sink.fail_with = None
    clock.advance(minutes=10)  # past the longest backoff (10 min)
    report = _send(sender, clock.now)
    assert report.sent == 25
    assert _send(sender, clock.advance(minutes=30)).claimed == 0

    counts = _per_message_id(smtp_sink.wait_for(25))
    assert len(smtp_sink.messages) == 25
    assert set(counts.values()) == {1}
    # The Message-ID is the one minted at enqueue time, unchanged by the retries.
    assert set(counts) == {mail.message_id for mail in queued}
    assert {row.status for row in _rows(sessions)} == {"sent"}


def test_backoff_doubles_and_is_capped_at_ten_minutes(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(sessions)
    clock = FakeClock()
    sender = _sender(sessions, smtp_sink.port, clock)
    smtp_sink.fail_with = (450, "4.2.0 Mailbox busy")
    delays = []
    for _ in range(12):
        report = _send(sender, clock.now)
        assert report.retried == 1
        [row] = _rows(sessions)
        delays.append((row.next_attempt_at - clock.now).total_seconds())
        clock.now = row.next_attempt_at
    for attempt, delay in enumerate(delays, start=1):
        full = min(600.0, 5.0 * 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert max(delays) <= 600


def test_permanent_refusal_is_recorded_and_never_retried(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(sessions)
    clock = FakeClock()
    sender = _sender(sessions, smtp_sink.port, clock)
    smtp_sink.fail_with = (550, "5.7.1 Relaying denied")

    report = _send(sender, T0)
    assert (report.sent, report.retried, report.failed) == (0, 0, 1)
    [row] = _rows(sessions)
    assert row.status == "failed"
    assert row.last_error is not None and "550" in row.last_error
    assert "Relaying denied" in row.last_error
    [event] = _events(sessions, "mail_failed")
    assert event.ticket_id == row.ticket_id
    assert "550" in event.data["error"]

    smtp_sink.fail_with = None
    assert _send(sender, clock.advance(days=1)).claimed == 0
    assert smtp_sink.messages == []


def test_authentication_required_is_a_configuration_problem_not_a_failure(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(sessions, 3)
    smtp_sink.fail_with = (530, "5.7.0 Authentication required")
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert (report.retried, report.failed) == (3, 0)
    assert {row.status for row in _rows(sessions)} == {"pending"}


def test_gives_up_after_max_age_with_an_event(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    _queue(sessions)
    clock = FakeClock()
    sender = _sender(sessions, smtp_sink.port, clock, max_age=timedelta(hours=1))
    smtp_sink.fail_with = (451, "4.3.0 Try again later")
    assert _send(sender, T0).retried == 1
    report = _send(sender, clock.advance(hours=2))
    assert report.failed == 1
    [row] = _rows(sessions)
    assert row.status == "failed"
    assert row.last_error is not None and row.last_error.startswith("gave up after 2 attempts")
    assert len(_events(sessions, "mail_failed")) == 1


def test_unreachable_server_defers_the_batch_without_trying_each_mail(
    sessions: sessionmaker[Session],
) -> None:
    _queue(sessions, 5)
    closed_port = free_port()
    report = _send(_sender(sessions, closed_port, FakeClock()), T0)
    assert (report.claimed, report.retried, report.failed) == (5, 5, 0)
    errors = sorted(row.last_error or "" for row in _rows(sessions))
    assert "not tried" in errors[-1]  # the others waited for the first one's verdict
    assert {row.status for row in _rows(sessions)} == {"pending"}


def test_expired_lease_of_a_crashed_sender_is_released_and_sent(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    [crashed, live] = _queue(sessions, 2)
    with sessions.begin() as session:
        for mail, until in ((crashed, T0 - timedelta(seconds=1)), (live, T0 + timedelta(hours=1))):
            row = session.get(OutboxMail, mail.id)
            assert row is not None
            row.status, row.claimed_until = "sending", until
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert (report.released, report.sent) == (1, 1)
    [received] = smtp_sink.wait_for(1)
    assert received.message["Message-ID"] == crashed.message_id
    statuses = {row.id: row.status for row in _rows(sessions)}
    assert statuses == {crashed.id: "sent", live.id: "sending"}  # a live lease is respected


# ------------------------------------------------------------------- flood cap


def test_flood_cap_stops_a_loop_with_an_auto_responder(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    """A robot that answers every mail gets at most five automatic mails an hour."""
    clock = FakeClock()
    sender = _sender(sessions, smtp_sink.port, clock)
    robot = "autoresponder@robot.example"
    with sessions.begin() as session:
        ticket_id = _ticket(session, robot).id
    for _ in range(20):
        # The robot answered our last mail; our side (wrongly) acknowledges again.
        with sessions.begin() as session:
            ticket = session.get(Ticket, ticket_id)
            assert ticket is not None
            enqueue(
                session, ticket=ticket, kind="acknowledgement", to=[robot],
                subject="Re: Auto: Re: Auto: we got it", text="Thanks", audience="customer",
                automatic=True, config=CONFIG, now=clock.now,
            )  # fmt: skip
        _send(sender, clock.now)
        clock.advance(minutes=2)

    assert len(smtp_sink.messages) == 5
    rows = _rows(sessions)
    suppressed = [row for row in rows if row.status == "suppressed"]
    assert len(suppressed) == 15
    assert all((row.last_error or "").startswith("flood cap: 5 automatic") for row in suppressed)
    assert len(_events(sessions, "mail_suppressed")) == 15
    assert sum(row.status == "sent" for row in rows) == 5

    # A person's reply is never capped; a new window allows automatic mail again.
    with sessions.begin() as session:
        ticket = session.get(Ticket, ticket_id)
        assert ticket is not None
        human = enqueue(
            session, ticket=ticket, kind="agent_reply", to=[robot], subject="Hi",
            text="Written by Bob", audience="customer", automatic=False, config=CONFIG,
            now=clock.now,
        )  # fmt: skip
        later = enqueue(
            session, ticket=ticket, kind="acknowledgement", to=[robot], subject="Hi",
            text="later", audience="customer", automatic=True, config=CONFIG,
            now=clock.now + timedelta(minutes=61),
        )  # fmt: skip
    assert human is not None and human.status == "pending"
    assert later is not None and later.status == "pending"


def test_flood_cap_counts_mail_queued_in_the_same_transaction(
    sessions: sessionmaker[Session],
) -> None:
    statuses = []
    with sessions.begin() as session:
        ticket = _ticket(session)
        for _ in range(7):
            mail = enqueue(
                session, ticket=ticket, kind="escalation_notice", to=["A@Customer.example"],
                subject="x", text="y", audience="customer", automatic=True, config=CONFIG, now=T0,
            )  # fmt: skip
            assert mail is not None
            statuses.append(mail.status)
    assert statuses == ["pending"] * 5 + ["suppressed"] * 2


def test_automatic_mail_is_never_sent_to_our_own_addresses(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        ticket = _ticket(session)
        nothing = enqueue(
            session, ticket=ticket, kind="acknowledgement", to=["Support@Example.com"],
            subject="x", text="y", audience="customer", automatic=True, config=CONFIG, now=T0,
        )  # fmt: skip
        kept = enqueue(
            session, ticket=ticket, kind="acknowledgement",
            to=["anna@customer.example", "billing@example.com"], cc=["support@example.com"],
            subject="x", text="y", audience="customer", automatic=True, config=CONFIG, now=T0,
        )  # fmt: skip
    assert nothing is None
    assert kept is not None
    assert kept.to_addresses == ["anna@customer.example"] and kept.cc == []
    assert len(_rows(sessions)) == 1
    [not_sent] = _events(sessions, "mail_not_sent")
    assert "our own address" in not_sent.data["reasons"][0]
    assert len(_events(sessions, "mail_recipients_dropped")) == 1


# ------------------------------------------------------------ header injection


def test_header_injection_attempts_do_not_reach_our_headers(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    crlf = "Evil\r\nBcc: victim@x"
    attempts = [
        (crlf, crlf),
        (_encoded_word(crlf), _encoded_word("Hi\r\nBcc: victim@x\r\n\r\nbody")),
        ("=?utf-8?q?Evil=0D=0ABcc:_victim@x?=", "=?UTF-8?Q?Re=3A_x=0D=0ABcc=3A_victim=40x?="),
        ("N" * 10_000, "S" * 10_000),
        ('"Quoted" <victim@x>, other@x', "Tab\tand\x00NUL\x1b[31m and \u202eRLO"),
    ]
    for name, subject in attempts:
        _queue(sessions, to=(name, "anna@customer.example"), subject=subject, automatic=True)
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert report.sent == len(attempts)

    allowed = {
        "message-id", "date", "from", "to", "subject", "x-loop", "auto-submitted",
        "x-auto-response-suppress", "mime-version", "content-type", "content-transfer-encoding",
    }  # fmt: skip
    for received in smtp_sink.wait_for(len(attempts)):
        assert received.rcpt_tos == ("anna@customer.example",)
        raw_headers = received.data.split(b"\r\n\r\n", 1)[0]
        lines = raw_headers.split(b"\r\n")
        assert not any(line.lower().startswith(b"bcc") for line in lines)
        parsed = email.message_from_bytes(received.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert {name.lower() for name in parsed} <= allowed
        assert parsed["Bcc"] is None
        for name, value in parsed.items():
            assert "\r" not in str(value) and "\n" not in str(value), name
        [to] = parsed["To"].addresses
        assert to.addr_spec == "anna@customer.example"
        assert len(to.display_name) <= 78
        assert "\r" not in to.display_name and "\n" not in to.display_name
        subject = str(parsed["Subject"])
        assert len(subject) <= 250
        assert "Bcc:" not in subject or subject.startswith("Evil Bcc:")
        assert "\x00" not in subject and "\u202e" not in subject


# ------------------------------------------------------------- claim and race


@pytest.mark.parametrize("senders", [2])
def test_two_senders_racing_send_each_row_once(
    db_url: str, smtp_sink: SmtpSink, senders: int
) -> None:
    factory = _database(db_url)
    queued = _queue(factory, 120)
    start = threading.Barrier(senders)
    errors: list[BaseException] = []

    def run() -> None:
        # Each thread has its own engine, like a second daemon instance.
        own = _database(db_url, upgrade=False)
        sender = _sender(own, smtp_sink.port, FakeClock(), batch_size=7, connections=2)
        try:
            start.wait()
            while _send(sender, T0).claimed:
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.kw["bind"].dispose()

    threads = [threading.Thread(target=run) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    counts = _per_message_id(smtp_sink.wait_for(120))
    assert len(smtp_sink.messages) == 120
    assert set(counts.values()) == {1}
    assert set(counts) == {mail.message_id for mail in queued}
    assert {row.status for row in _rows(factory)} == {"sent"}
    factory.kw["bind"].dispose()


# ------------------------------------------------- partial refusal and reuse


@dataclass
class _Recorder:
    """aiosmtpd hooks: refuse chosen recipients at RCPT, count EHLOs, keep messages."""

    refuse: dict[str, tuple[int, str]] = field(default_factory=dict)
    ehlo_count: int = 0
    messages: list[ReceivedMessage] = field(default_factory=list)

    async def handle_EHLO(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlo_count += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            code, text = self.refuse[address]
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        raw = envelope.original_content or envelope.content
        self.messages.append(
            ReceivedMessage(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(raw))
        )
        return "250 Accepted"


@pytest.fixture
def recorder() -> Iterator[tuple[_Recorder, int]]:
    handler = _Recorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=15.0)
    controller.start()
    yield handler, port
    controller.stop()


def test_partly_refused_recipients_are_recorded_and_the_mail_is_sent_once(
    sessions: sessionmaker[Session], recorder: tuple[_Recorder, int]
) -> None:
    handler, port = recorder
    handler.refuse["gone@customer.example"] = (550, "5.1.1 No such user")
    with sessions.begin() as session:
        ticket = _ticket(session)
        enqueue(
            session, ticket=ticket, kind="acknowledgement", to=["anna@customer.example"],
            cc=["gone@customer.example"], subject="x", text="y", audience="customer",
            automatic=False, config=CONFIG, now=T0,
        )  # fmt: skip
        enqueue(
            session, ticket=ticket, kind="acknowledgement", to=["gone@customer.example"],
            subject="x", text="y", audience="customer", automatic=False, config=CONFIG, now=T0,
        )  # fmt: skip
    report = _send(_sender(sessions, port, FakeClock()), T0)
    assert (report.sent, report.failed) == (1, 1)
    partly, refused = _rows(sessions)
    assert partly.status == "sent"
    assert partly.last_error is not None and "gone@customer.example: 550" in partly.last_error
    assert refused.status == "failed"
    assert refused.last_error is not None and "all recipients refused" in refused.last_error
    [event] = _events(sessions, "mail_recipients_refused")
    assert "gone@customer.example" in event.data["refused"]
    [received] = handler.messages
    assert received.rcpt_tos == ("anna@customer.example",)


def test_connections_are_reused_across_the_batch(
    sessions: sessionmaker[Session], recorder: tuple[_Recorder, int]
) -> None:
    handler, port = recorder
    _queue(sessions, 40)
    report = _send(_sender(sessions, port, FakeClock(), connections=2, batch_size=15), T0)
    assert report.sent == 40
    assert len(handler.messages) == 40
    assert handler.ehlo_count == 2


# ------------------------------------------------------------------ run loop


def test_run_forever_sends_when_woken_and_stops(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    sender = OutboxSender(
        sessions, _smtp("127.0.0.1", smtp_sink.port), None, lambda: datetime.now(UTC)
    )
    stop, wake = threading.Event(), threading.Event()
    thread = threading.Thread(target=sender.run_forever, args=(stop, wake))
    thread.start()
    try:
        _queue(sessions, 3, now=datetime.now(UTC))
        wake.set()
        smtp_sink.wait_for(3, timeout=10)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert {row.status for row in _rows(sessions)} == {"sent"}


# ------------------------------------------------- authentication and bad rows


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_logs_in_with_the_configured_password_and_a_wrong_one_is_transient(
    sessions: sessionmaker[Session],
) -> None:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            b"outbox",
            b"s3cret-pass",
        )
        return AuthResult(success=ok, handled=False)  # False: aiosmtpd answers 535

    handler = _Recorder()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ready_timeout=15.0,
        authenticator=authenticator, auth_required=True, auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        smtp = SmtpSettings(
            host="127.0.0.1", port=port, tls="none", username="outbox",
            password_env="UNUSED_IN_THIS_TEST", from_address="support@example.com",
        )  # fmt: skip
        _queue(sessions)
        clock = FakeClock()
        wrong = OutboxSender(sessions, smtp, SecretStr("wrong"), clock, rng=random.Random(1))
        report = asyncio.run(wrong.send_due(T0))
        assert report.retried == 1
        [row] = _rows(sessions)
        assert row.last_error is not None and "535" in row.last_error
        assert "wrong" not in row.last_error
        right = OutboxSender(sessions, smtp, SecretStr("s3cret-pass"), clock)
        assert asyncio.run(right.send_due(clock.advance(minutes=1))).sent == 1
        assert len(handler.messages) == 1
    finally:
        controller.stop()


def test_a_row_that_cannot_become_a_message_fails_alone(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    [good, bad] = _queue(sessions, 2)
    with sessions.begin() as session:
        row = session.get(OutboxMail, bad.id)
        assert row is not None
        row.to_addresses = ["not an address"]
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert (report.sent, report.failed) == (1, 1)
    statuses = {row.id: (row.status, row.last_error or "") for row in _rows(sessions)}
    assert statuses[good.id] == ("sent", "")
    assert statuses[bad.id][0] == "failed"
    assert statuses[bad.id][1].startswith("cannot build the message")
    assert len(_events(sessions, "mail_failed")) == 1


def test_failure_of_mail_whose_ticket_was_deleted_is_recorded_without_event(
    sessions: sessionmaker[Session], smtp_sink: SmtpSink
) -> None:
    [mail] = _queue(sessions)
    with sessions.begin() as session:
        ticket = session.get(Ticket, mail.ticket_id)
        session.delete(ticket)
    smtp_sink.fail_with = (550, "5.1.1 No such user")
    report = _send(_sender(sessions, smtp_sink.port, FakeClock()), T0)
    assert report.failed == 1
    [row] = _rows(sessions)
    assert (row.status, row.ticket_id) == ("failed", None)
    assert _events(sessions, "mail_failed") == []
