"""Routing and acknowledgement end to end: IMAP in, real SMTP (aiosmtpd) out, no loops."""

from __future__ import annotations

import os
import signal
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

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
    return [message_from_bytes(item.data, policy=policy.default) for item in sink.messages]  # type: ignore[misc, unused-ignore]


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


def test_the_flood_cap_counts_mail_of_earlier_batches_and_of_the_same_batch(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cap's counts are read once per batch and kept current while the batch queues mail."""
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    account = (mailbox.host, mailbox.port, mailbox.username, mailbox.password)
    try:
        append_many(*account, [complaint(sender="Robot@Example.org") for _ in range(3)])
        app.run_once()
        assert len(_acks(smtp_sink)) == 3
        # Upper-case or not, it is one address; three were sent before this batch.
        append_many(*account, [complaint(sender="robot@example.ORG") for _ in range(5)])
        app.run_once()
        with app.sessions() as session:
            statuses = session.scalars(
                select(OutboxMail.status)
                .where(OutboxMail.kind == "acknowledgement")
                .order_by(OutboxMail.id)
            ).all()
    finally:
        app.close()
    assert statuses == ["sent"] * 5 + ["suppressed"] * 3
    assert len(_acks(smtp_sink)) == 5


def test_the_assignment_notice_lists_the_customers_earlier_tickets_only(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = (mailbox.host, mailbox.port, mailbox.username, mailbox.password)
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    try:
        append_many(*account, [complaint(sender="olga@example.net", subject="Old one")])
        app.run_once()
        # Two in one batch: the first must not list the second, which came after it.
        subjects = ["Second thing", "Third thing"]
        append_many(*account, [complaint(sender="olga@example.net", subject=s) for s in subjects])
        app.run_once()
        with app.sessions() as session:
            refs = [str(ref) for ref in session.scalars(select(Ticket.ref).order_by(Ticket.id))]
    finally:
        app.close()
    notices = {
        str(m["Subject"]).split("]")[0].lstrip("["): m.get_content()
        for m in _received(smtp_sink)
        if m["Auto-Submitted"] == "auto-generated"
    }
    first, second, third = refs
    assert "This is the customer's first ticket." in notices[first]
    assert first in notices[second] and third not in notices[second]
    assert first in notices[third] and second in notices[third]
    assert f"{third} (" not in notices[third]


def _sender_children() -> list[int]:
    """Our child processes running the outbox sender."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
        if parent == os.getpid() and b"daemon.sender_process" in command:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_the_running_daemon_sends_from_a_process_of_its_own(
    mailbox: ImapAccount, smtp_sink: SmtpSink, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(mailbox, smtp_sink, tmp_db_url, monkeypatch)
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    try:
        time.sleep(0.5)  # let the worker reach IDLE
        append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, [complaint()])
        smtp_sink.wait_for(2, timeout=30)  # the acknowledgement and the notice
        [child] = _sender_children()
        # A sender that dies is started again; what intake queues meanwhile waits for it.
        os.kill(child, signal.SIGKILL)
        append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, [complaint()])
        smtp_sink.wait_for(4, timeout=30)
        assert [pid for pid in _sender_children() if pid != child]
    finally:
        stop.set()
        runner.join(timeout=60)
        app.close()
    assert not runner.is_alive()
    assert _sender_children() == []  # stopped with the daemon
    assert len(_acks(smtp_sink)) == 2
