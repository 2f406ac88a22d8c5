"""The intake service against a real SQLite database: tickets, threading, dedup, rejections."""

from __future__ import annotations

from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select

from daemon.app import Application
from daemon.references import make_reference
from daemon.service import IngestOutcome, MailSource
from daemon.views import list_quarantine, list_tickets, show_ticket
from models import MailboxReceipt, Message, Participant, Ticket
from tests.support.app_factory import TEST_SECRET, build_app
from tests.support.mail_factory import complaint, reply_to


@pytest.fixture
def app(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    application = build_app(db_url, monkeypatch)
    yield application
    application.close()


def _count(app: Application, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_new_complaint_becomes_a_ticket_with_history(app: Application) -> None:
    raw = complaint(sender="Anna@Example.com", cc="husband@example.com, support@example.com")
    result = app.service.ingest(raw, MailSource("support", 7, 1))
    assert result.outcome is IngestOutcome.CREATED
    assert result.ticket_ref == "CMP-000001"
    with app.sessions() as session:
        ticket = show_ticket(session, "CMP-000001")
        participants = set(session.scalars(select(Participant.email)))
        receipt = session.scalars(select(MailboxReceipt)).one()
    assert ticket is not None
    assert ticket["customer_email"] == "anna@example.com"
    assert ticket["status"] == "new"
    assert ticket["messages"][0]["text"].startswith("Hello,")
    assert ticket["messages"][0]["uid"] == 1
    assert [event["kind"] for event in ticket["events"]] == ["created", "routed"]
    assert ticket["tier"] == 1 and ticket["team"]
    # Our own address is never a participant; the customer's CC is.
    assert participants == {"anna@example.com", "husband@example.com"}
    assert (receipt.mailbox, receipt.uidvalidity, receipt.uid) == ("support", 7, 1)


def test_same_uid_twice_is_stored_once(app: Application) -> None:
    raw = complaint()
    first = app.service.ingest(raw, MailSource("support", 1, 5))
    again = app.service.ingest(raw, MailSource("support", 1, 5))
    assert first.outcome is IngestOutcome.CREATED
    assert again.outcome is IngestOutcome.ALREADY_STORED
    assert _count(app, Ticket) == 1
    assert _count(app, Message) == 1


def test_same_mail_to_two_addresses_is_one_ticket(app: Application) -> None:
    raw = complaint(to="support@example.com, sales@example.com")
    first = app.service.ingest(raw, MailSource("support", 1, 1))
    second = app.service.ingest(
        b"Delivered-To: sales@example.com\r\n" + raw, MailSource("sales", 9, 1)
    )
    assert first.outcome is IngestOutcome.CREATED
    assert second.outcome is IngestOutcome.DUPLICATE
    assert second.ticket_ref == first.ticket_ref
    assert _count(app, Ticket) == 1
    with app.sessions() as session:
        ticket = show_ticket(session, first.ticket_ref or "")
    assert ticket is not None
    assert [e["kind"] for e in ticket["events"]] == ["created", "routed", "duplicate_delivery"]


def test_reused_message_id_with_other_content_is_not_swallowed(app: Application) -> None:
    one = complaint(message_id="<same@broken.mailer>", subject="First problem")
    two = complaint(message_id="<same@broken.mailer>", subject="Second problem")
    assert app.service.ingest(one).outcome is IngestOutcome.CREATED
    assert app.service.ingest(two).outcome is IngestOutcome.CREATED
    assert _count(app, Ticket) == 2


def test_subject_tag_joins_for_participants_only(app: Application) -> None:
    first = app.service.ingest(complaint(sender="anna@example.com", cc="husband@example.com"))
    ref = first.ticket_ref
    customer = reply_to(b"", sender="anna@example.com", subject=f"Re: broken [{ref}]")
    cc = reply_to(b"", sender="husband@example.com", subject=f"Re: broken [{ref}]")
    stranger = reply_to(b"", sender="mallory@evil.test", subject=f"Re: broken [{ref}]")
    assert app.service.ingest(customer).outcome is IngestOutcome.ADDED
    assert app.service.ingest(cc).outcome is IngestOutcome.ADDED
    outsider = app.service.ingest(stranger)
    assert outsider.outcome is IngestOutcome.CREATED
    assert outsider.ticket_ref != ref
    with app.sessions() as session:
        created = show_ticket(session, outsider.ticket_ref or "")
    assert created is not None
    assert "not a participant" in created["events"][0]["data"]["reason"]


def test_signed_reference_joins_whoever_replies(app: Application) -> None:
    first = app.service.ingest(complaint(sender="anna@example.com"))
    with app.sessions() as session:
        ticket_id = session.scalars(select(Ticket.id)).one()
    signed = make_reference(TEST_SECRET.encode(), ticket_id, "c", "complaintd.invalid")
    colleague = reply_to(
        b"", sender="colleague@example.com", subject="Re: your ticket", references=[signed]
    )
    result = app.service.ingest(colleague)
    assert result.outcome is IngestOutcome.ADDED
    assert result.ticket_ref == first.ticket_ref


def test_forged_signature_does_not_join(app: Application) -> None:
    app.service.ingest(complaint(sender="anna@example.com"))
    forged = make_reference(b"not our secret", 1, "c", "complaintd.invalid")
    mail = reply_to(b"", sender="mallory@evil.test", subject="Re: hi", references=[forged])
    assert app.service.ingest(mail).outcome is IngestOutcome.CREATED
    assert _count(app, Ticket) == 2


def test_reply_referencing_customer_mail_joins_when_participant(app: Application) -> None:
    app.service.ingest(complaint(sender="anna@example.com", message_id="<orig-1@mail.example>"))
    follow = reply_to(
        b"", sender="anna@example.com", subject="forgot", references=["<orig-1@mail.example>"]
    )
    assert app.service.ingest(follow).outcome is IngestOutcome.ADDED


def _auto_reply(references: list[str]) -> bytes:
    message = EmailMessage()
    message["From"] = "anna@example.com"
    message["To"] = "support@example.com"
    message["Subject"] = "Out of office: Re: your complaint"
    message["Auto-Submitted"] = "auto-replied"
    message["Message-ID"] = "<ooo-1@mail.example>"
    message["In-Reply-To"] = references[-1]
    message["References"] = " ".join(references)
    message.set_content("I am away until Monday.")
    return bytes(message)


def test_auto_reply_is_recorded_on_its_ticket_never_a_new_one(app: Application) -> None:
    first = app.service.ingest(complaint(sender="anna@example.com"))
    signed = make_reference(TEST_SECRET.encode(), 1, "c", "complaintd.invalid")
    result = app.service.ingest(_auto_reply([signed]))
    assert result.outcome is IngestOutcome.ADDED
    assert result.ticket_ref == first.ticket_ref
    with app.sessions() as session:
        ticket = show_ticket(session, first.ticket_ref or "")
    assert ticket is not None
    assert ticket["messages"][-1]["kind"] == "auto_reply"
    assert ticket["events"][-1]["kind"] == "auto_reply"


def test_auto_reply_for_nothing_known_is_rejected_not_a_ticket(app: Application) -> None:
    result = app.service.ingest(_auto_reply(["<unknown@nowhere>"]), MailSource("support", 1, 3))
    assert result.outcome is IngestOutcome.REJECTED
    assert _count(app, Ticket) == 0
    with app.sessions() as session:
        entries = list_quarantine(session)
    assert entries[0]["kind"] == "rejected"
    assert "automatic reply" in entries[0]["reason"]
    assert entries[0]["uid"] == 3
    assert entries[0]["raw_kept"] is True


def _bounce(original_message_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        "To: support@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <bounce-1@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nDelivery to anna@example.com failed.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; anna@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: support@example.com\r\nTo: anna@example.com\r\n"
        f"Message-ID: {original_message_id}\r\n"
        "Subject: Re: your complaint\r\n"
        "--B--\r\n"
    ).encode()


def test_bounce_of_our_mail_is_recorded_on_the_ticket(app: Application) -> None:
    first = app.service.ingest(complaint(sender="anna@example.com"))
    signed = make_reference(TEST_SECRET.encode(), 1, "c", "complaintd.invalid")
    result = app.service.ingest(_bounce(signed))
    assert result.outcome is IngestOutcome.ADDED
    assert result.ticket_ref == first.ticket_ref
    with app.sessions() as session:
        ticket = show_ticket(session, first.ticket_ref or "")
    assert ticket is not None
    assert ticket["events"][-1]["kind"] == "bounce"
    assert _count(app, Ticket) == 1


def test_bounce_for_unknown_mail_is_rejected(app: Application) -> None:
    result = app.service.ingest(_bounce("<never-sent@example.com>"))
    assert result.outcome is IngestOutcome.REJECTED
    assert _count(app, Ticket) == 0


def test_our_own_mail_coming_back_is_a_loop(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    app = build_app(
        db_url,
        monkeypatch,
        smtp={"host": "127.0.0.1", "tls": "none", "from_address": "Help <help@example.com>"},
    )
    try:
        from_us = complaint(sender="help@example.com", name="Help")
        looped = complaint(headers={"X-Loop": "complaintd@complaintd.invalid"})
        assert app.service.ingest(from_us).outcome is IngestOutcome.REJECTED
        assert app.service.ingest(looped).outcome is IngestOutcome.REJECTED
        assert _count(app, Ticket) == 0
    finally:
        app.close()


def test_mail_without_any_sender_is_rejected_and_kept(app: Application) -> None:
    raw = b"Subject: hello\r\nMessage-ID: <nofrom@x>\r\n\r\nI have a problem.\r\n"
    result = app.service.ingest(raw, MailSource("support", 1, 9))
    assert result.outcome is IngestOutcome.REJECTED
    with app.sessions() as session:
        entry = list_quarantine(session)[0]
    assert "no sender" in entry["reason"]
    assert entry["raw_kept"]


def test_retry_of_rejected_mail_keeps_it_quarantined(app: Application) -> None:
    rejected = app.service.ingest(_bounce("<never-sent@example.com>"))
    assert rejected.quarantine_id is not None
    again = app.service.retry_quarantined(rejected.quarantine_id)
    assert again.outcome is IngestOutcome.REJECTED
    with app.sessions() as session:
        entry = list_quarantine(session)[0]
    assert entry["attempts"] == 2
    with pytest.raises(LookupError):
        app.service.retry_quarantined(999)


def test_batch_stores_every_mail_and_lists_them(app: Application) -> None:
    mails = [
        (complaint(sender=f"c{i}@example.com"), MailSource("support", 1, i)) for i in range(1, 21)
    ]
    results = app.service.ingest_batch(mails)
    assert [r.outcome for r in results] == [IngestOutcome.CREATED] * 20
    assert [r.source.uid for r in results if r.source] == list(range(1, 21))
    with app.sessions() as session:
        tickets = list_tickets(session)
    assert len(tickets) == 20
    assert tickets[0]["ref"] == "CMP-000020"
    assert set(tickets[0]) == {
        "ref", "status", "customer_email", "subject", "category", "severity",
        "tier", "team", "assignee", "created_at", "message_count", "next_deadline",
    }  # fmt: skip
    assert all(t["message_count"] == 1 for t in tickets)
