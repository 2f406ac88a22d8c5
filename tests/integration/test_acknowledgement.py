"""Routing and acknowledgement end to end: IMAP in, real SMTP (aiosmtpd) out, no loops."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest
from sqlalchemy import select

from daemon.app import Application
from daemon.demo_servers import SmtpSink
from daemon.references import verify_references
from models import OutboxMail, Ticket
from tests.support.app_factory import TEST_SECRET, build_app, mailbox_settings
from tests.support.imap_tools import ImapAccount, append_many
from tests.support.mail_factory import complaint


def _app(
    mailbox: ImapAccount, sink: SmtpSink, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Application:
    return build_app(
        db_url,
        monkeypatch,
        mailboxes=[(mailbox, mailbox_settings(mailbox))],
        smtp={
            "host": sink.host,
            "port": sink.port,
            "tls": "none",
            "from_address": "Example Support <support@example.com>",
        },
    )


def _received(sink: SmtpSink) -> list[EmailMessage]:
    return [message_from_bytes(item.data, policy=policy.default) for item in sink.messages]  # type: ignore[misc]


def _acks(sink: SmtpSink) -> list[EmailMessage]:
    return [m for m in _received(sink) if m["Auto-Submitted"] == "auto-replied"]


def test_complaint_is_acknowledged_in_the_customers_language_and_the_agent_notified(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    german = complaint(
        sender="juergen@kunde.example",
        name="Jürgen Bäcker",
        subject="Paket seit 12 Tagen unterwegs",
        body="Guten Tag,\n\nmeine Bestellung 88231 ist seit zwölf Tagen unterwegs und niemand "
        "kann mir sagen, wo das Paket ist. Bitte helfen Sie mir.\n\nMit freundlichen Grüßen\n",
        message_id="<order-88231@kunde.example>",
    )
    append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, [german])
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    try:
        app.run_once()
        with app.sessions() as session:
            ticket = session.scalars(select(Ticket)).one()
    finally:
        app.close()
    assert ticket.language == "de"
    assert ticket.tier == 1 and ticket.team and ticket.first_response_due_at is not None
    [ack] = _acks(smtp_sink)
    assert ack["To"].addresses[0].addr_spec == "juergen@kunde.example"
    assert ack["Subject"] == f"Re: Paket seit 12 Tagen unterwegs [{ticket.ref}]"
    assert ack["In-Reply-To"] == "<order-88231@kunde.example>"
    assert ack["X-Loop"]
    body = ack.get_content()
    assert "vielen Dank für Ihre Nachricht" in body
    assert ticket.ref in body
    # The acknowledgement's Message-ID is a reference only we can mint, for this ticket.
    [signed] = verify_references(TEST_SECRET.encode(), [ack["Message-ID"]])
    assert signed.ticket_id == ticket.id
    notices = [m for m in _received(smtp_sink) if m["Auto-Submitted"] == "auto-generated"]
    assert len(notices) == 1
    assert "88231" in notices[0].get_content()


def test_no_acknowledgement_for_automatic_list_or_own_mail(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mails = [
        complaint(sender="ooo@example.org", headers={"Auto-Submitted": "auto-replied"}),
        complaint(sender="list@example.org", headers={"List-Id": "<users.lists.example.org>"}),
        complaint(sender="bulk@example.org", headers={"Precedence": "bulk"}),
        complaint(sender="support@example.com", name="Us"),
        complaint(headers={"X-Loop": "complaintd@complaintd.invalid"}),
        (
            b"From: MAILER-DAEMON@mx.example.org\r\nTo: support@example.com\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx>\r\n"
            b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
            b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--\r\n"
        ),
    ]
    append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, mails)
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    try:
        app.run_once()
        with app.sessions() as session:
            tickets = session.scalars(select(Ticket)).all()
            rows = session.scalars(select(OutboxMail)).all()
    finally:
        app.close()
    # Only the list mail opens a ticket; it is not acknowledged.
    assert [t.customer_email for t in tickets] == ["list@example.org"]
    assert _acks(smtp_sink) == []
    assert all(row.kind != "acknowledgement" for row in rows)


def test_a_misbehaving_auto_responder_gets_at_most_the_cap(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A robot that sends a new mail (without any auto headers) for each of ours."""
    robot = [complaint(sender="robot@example.org", subject=f"Your request #{n}") for n in range(12)]
    append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, robot)
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    try:
        app.run_once()
        with app.sessions() as session:
            rows = session.scalars(
                select(OutboxMail).where(OutboxMail.kind == "acknowledgement")
            ).all()
    finally:
        app.close()
    assert len(_acks(smtp_sink)) == 5
    assert sum(row.status == "suppressed" for row in rows) == 7


def test_customer_text_never_reaches_our_headers(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = (
        b"From: =?utf-8?q?Evil=0D=0ABcc:_victim@example.net?= <evil@example.org>\r\n"
        b"To: support@example.com\r\n"
        b"Subject: =?utf-8?q?Hello=0D=0ABcc:_victim2@example.net?=\r\n"
        b"Message-ID: <evil-1@example.org>\r\n\r\nplease help\r\n"
    )
    append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, [evil])
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    try:
        app.run_once()
    finally:
        app.close()
    [ack] = _acks(smtp_sink)
    raw = next(item.data for item in smtp_sink.messages if b"auto-replied" in item.data)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in head and b"\nBcc:" not in head
    assert ack["Bcc"] is None
    assert all(rcpt == "evil@example.org" for item in smtp_sink.messages
               if b"auto-replied" in item.data for rcpt in item.rcpt_tos)  # fmt: skip
