"""Hostile and broken mail against a real database (SQLite and PostgreSQL).

Every mail is stored as a ticket or message, or recorded as a rejection with
its reason: nothing escapes intake, nothing blocks the mails after it, nothing
is lost. And nobody gets in through a forged sender, a fake bounce or a
later Reply-To.
"""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from daemon.app import Application
from daemon.parsing import parse_message
from daemon.service import IngestOutcome, MailSource
from models import Attachment, Message, OutboxMail, RawMessage, Ticket
from tests.support.app_factory import build_app
from tests.support.mail_factory import complaint

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Application]:
    application = build_app(db_url, monkeypatch, clock=lambda: MONDAY, base_dir=tmp_path)
    yield application
    application.close()


def _raw(headers: bytes, body: bytes = b"hello\r\n") -> bytes:
    return headers + b"\r\n" + body


_RANDOM = random.Random(1)
_CJK = "".join(chr(_RANDOM.randrange(0x4E00, 0x9FFF)) for _ in range(990)).encode()
_LONG_NAME = base64.b64encode(("\U0001f600" * 300).encode())
_BASE = b"To: support@example.com\r\nSubject: x\r\n"

# name -> (mail, what must become of it)
HOSTILE: dict[str, tuple[bytes, set[IngestOutcome]]] = {
    # Index entries have a size limit (PostgreSQL: 2,704 bytes); 990 CJK characters
    # are 2,970 bytes. Once this blocked the whole mailbox on every pass.
    "long_non_ascii_message_id": (
        _raw(b"From: a@example.com\r\n" + _BASE + b"Message-ID: <" + _CJK + b"@x>\r\n"),
        {IngestOutcome.CREATED},
    ),
    "long_non_ascii_references": (
        _raw(
            b"From: b@example.com\r\n" + _BASE + b"Message-ID: <lr@x>\r\nReferences: <"
            + _CJK + b"@x>\r\nIn-Reply-To: <" + _CJK + b"@y>\r\n"
        ),
        {IngestOutcome.CREATED},
    ),
    "date_past_the_end_of_time": (
        _raw(b"From: h@example.com\r\n" + _BASE + b"Message-ID: <hy@x>\r\n"
             b"Date: 9999-12-31T23:59:59-23:59\r\n"),
        {IngestOutcome.CREATED},
    ),
    "date_before_the_start_of_time": (
        _raw(b"From: i@example.com\r\n" + _BASE + b"Message-ID: <ty@x>\r\n"
             b"Date: 0001-01-01T00:00:00+14:00\r\n"),
        {IngestOutcome.CREATED},
    ),
    "overlong_attachment_content_type": (
        _raw(
            b"From: c@example.com\r\n" + _BASE + b"Message-ID: <ct@x>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n",
            b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/"
            + b"x" * 400
            + b"; name=a.bin\r\nContent-Disposition: attachment; filename=a.bin\r\n\r\n"
            b"AAAA\r\n--b--\r\n",
        ),
        {IngestOutcome.CREATED},
    ),
    "nul_bytes_everywhere": (
        _raw(
            b"From: a\x00b <a\x00b@ex\x00ample.com>\r\nTo: support@example.com\r\n"
            b"Subject: s\x00t\r\nMessage-ID: <n\x00ul@x>\r\n"
            b"Content-Type: text/pl\x00ain; charset=utf-8\r\n",
            b"bo\x00dy\r\n",
        ),
        {IngestOutcome.CREATED},
    ),
    "huge_header": (
        _raw(b"From: e@example.com\r\n" + _BASE + b"Message-ID: <hh@x>\r\nX-Junk: "
             + b"a" * 2_000_000 + b"\r\n"),
        {IngestOutcome.CREATED},
    ),
    "twenty_thousand_references": (
        _raw(b"From: f@example.com\r\n" + _BASE + b"Message-ID: <mr@x>\r\nReferences: "
             + b" ".join(b"<r%d@x>" % i for i in range(20_000)) + b"\r\n"),
        {IngestOutcome.CREATED},
    ),
    "long_address_and_name": (
        _raw(b"From: =?utf-8?b?" + _LONG_NAME + b"?= <" + b"a" * 400 + b"@example.com>\r\n"
             + _BASE + b"Message-ID: <le@x>\r\n"),
        {IngestOutcome.CREATED},
    ),
    "no_from": (_raw(_BASE + b"Message-ID: <nf@x>\r\n"), {IngestOutcome.REJECTED}),
    "group_only_from": (
        _raw(b"From: undisclosed-recipients:;\r\n" + _BASE + b"Message-ID: <gf@x>\r\n"),
        {IngestOutcome.REJECTED},
    ),
    "empty": (b"", {IngestOutcome.REJECTED}),
    "binary_garbage": (bytes(range(256)) * 10, {IngestOutcome.REJECTED, IngestOutcome.CREATED}),
}  # fmt: skip


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_mail_is_stored_or_rejected_and_never_blocks_the_next(
    app: Application, name: str
) -> None:
    raw, expected = HOSTILE[name]
    good = complaint(sender="next@example.com")
    results = app.service.ingest_batch(
        [(raw, MailSource("support", 1, 1)), (good, MailSource("support", 1, 2))]
    )
    assert [r.outcome in expected for r in results[:1]] == [True], results[0]
    assert results[1].outcome is IngestOutcome.CREATED
    with app.sessions() as session:
        # Every mail's raw bytes are kept, whatever became of it.
        assert session.scalar(select(func.count()).select_from(RawMessage)) in (1, 2)


def test_a_forged_display_name_does_not_make_a_stranger_a_participant(app: Application) -> None:
    victim = app.service.ingest(complaint(sender="carla@shop.example", subject="Refund"))
    # Mail servers and DMARC vouch for the address in angle brackets: Mallory's.
    forged = app.service.ingest(
        _raw(
            b"From: carla@shop.example <mallory@evil.example>\r\nTo: support@example.com\r\n"
            b"Subject: Re: Refund [" + str(victim.ticket_ref).encode() + b"]\r\n"
            b"Message-ID: <forged-1@evil.example>\r\n",
            b"Please cancel my complaint.\r\n",
        )
    )
    assert forged.ticket_ref != victim.ticket_ref
    with app.sessions() as session:
        senders = session.scalars(
            select(Message.from_email).join(Ticket).where(Ticket.ref == victim.ticket_ref)
        ).all()
    assert senders == ["carla@shop.example"]


@pytest.mark.parametrize(
    ("sender", "extra"),
    [
        (b"m@evil.example", b"Content-Type: multipart/report; report-type=delivery-status; "
                            b"boundary=b\r\n"),
        (b"m@evil.example", b"Return-Path: <>\r\nContent-Type: text/plain\r\n"),
        (b"MAILER-DAEMON@evil.example", b"Content-Type: text/plain\r\n"),
    ],
    ids=["dsn", "null-return-path", "mailer-daemon"],
)  # fmt: skip
def test_a_fake_bounce_naming_a_customers_message_id_joins_nothing(
    app: Application, sender: bytes, extra: bytes
) -> None:
    victim = app.service.ingest(
        complaint(sender="carla@shop.example", message_id="<carla-1@shop.example>")
    )
    body = b"Hi, this is mallory, call me about your refund\r\n"
    if b"multipart" in extra:
        body = b"--b\r\nContent-Type: text/plain\r\n\r\n" + body + b"--b--\r\n"
    fake = app.service.ingest(
        _raw(
            b"From: " + sender + b"\r\nTo: support@example.com\r\n"
            b"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <m-1@evil.example>\r\n"
            b"References: <carla-1@shop.example>\r\n" + extra + b"MIME-Version: 1.0\r\n",
            body,
        )
    )
    assert fake.ticket_ref != victim.ticket_ref
    with app.sessions() as session:
        on_victim = session.scalar(
            select(func.count()).select_from(Message).join(Ticket)
            .where(Ticket.ref == victim.ticket_ref)
        )  # fmt: skip
    assert on_victim == 1


@pytest.mark.parametrize(
    ("headers", "outcome"),
    [
        # No automatic answer may go to these, but a person may have written them.
        (b"From: robot@tickets.example\r\nReturn-Path: <>\r\n", IngestOutcome.CREATED),
        (b"From: Postmaster <postmaster@small-shop.example>\r\n", IngestOutcome.CREATED),
        # Automatic replies: recorded, never a ticket.
        (b"From: robot@tickets.example\r\nAuto-Submitted: (by exim) auto-replied\r\n",
         IngestOutcome.REJECTED),
    ],
    ids=["null-return-path", "postmaster", "auto-submitted-with-comment"],
)  # fmt: skip
def test_automatic_senders_are_never_acknowledged(
    app: Application, headers: bytes, outcome: IngestOutcome
) -> None:
    result = app.service.ingest(
        _raw(headers + b"To: support@example.com\r\nSubject: Your request\r\n"
             b"Message-ID: <auto-1@tickets.example>\r\n")
    )  # fmt: skip
    assert result.outcome is outcome
    assert "acknowledgement" not in _outbox_kinds(app)


def test_a_stale_empty_return_path_below_the_real_one_is_ignored(app: Application) -> None:
    result = app.service.ingest(
        _raw(b"Return-Path: <carla@shop.example>\r\nFrom: carla@shop.example\r\n"
             b"Return-Path: <>\r\nTo: support@example.com\r\nSubject: Refund\r\n"
             b"Message-ID: <rp-1@shop.example>\r\n")
    )  # fmt: skip
    assert result.outcome is IngestOutcome.CREATED
    assert "acknowledgement" in _outbox_kinds(app)


def _outbox_kinds(app: Application) -> list[str]:
    with app.sessions() as session:
        return list(session.scalars(select(OutboxMail.kind)).all())


def test_a_later_reply_to_does_not_redirect_the_customers_mail(app: Application) -> None:
    opened = app.service.ingest(
        complaint(sender="carla@shop.example", subject="Broken blender", cc="bob@shop.example")
    )
    ref = opened.ticket_ref
    follow_up = EmailMessage()
    follow_up["From"] = "bob@shop.example"  # a participant (Cc of the first mail)
    follow_up["Reply-To"] = "mallory@evil.example"
    follow_up["To"] = "support@example.com"
    follow_up["Subject"] = f"Re: Broken blender [{ref}]"
    follow_up["Date"] = format_datetime(MONDAY)
    follow_up["Message-ID"] = "<fu-1@shop.example>"
    follow_up.set_content("Any news?\n")
    assert app.service.ingest(bytes(follow_up)).ticket_ref == ref
    assert app.sweep is not None
    with app.sessions() as session:
        due = session.scalars(select(Ticket.first_response_due_at).where(Ticket.ref == ref)).one()
    assert due is not None
    app.sweep.run(due + timedelta(minutes=1))
    with app.sessions() as session:
        notes = session.scalars(
            select(OutboxMail.to_addresses).where(OutboxMail.kind == "customer_escalation_note")
        ).all()
    assert [[parseaddr(a)[1] for a in to] for to in notes] == [["carla@shop.example"]]


def _with_attachment(name: str, content: bytes) -> bytes:
    mail = EmailMessage()
    mail["From"] = "carla@shop.example"
    mail["To"] = "support@example.com"
    mail["Subject"] = "Invoice wrong"
    mail["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    mail["Message-ID"] = "<inv-1@shop.example>"
    mail.set_content("See the attached invoice.\n")
    mail.add_attachment(content, maintype="application", subtype="pdf", filename=name)
    return bytes(mail)


def test_a_reused_message_id_with_another_attachment_is_kept(app: Application) -> None:
    first = app.service.ingest(_with_attachment("a.pdf", b"%PDF-A"), MailSource("s", 1, 1))
    again = app.service.ingest(_with_attachment("a.pdf", b"%PDF-A"), MailSource("s", 1, 2))
    other = app.service.ingest(_with_attachment("b.pdf", b"%PDF-B"), MailSource("s", 1, 3))
    assert first.outcome is IngestOutcome.CREATED
    assert again.outcome is IngestOutcome.DUPLICATE
    assert other.outcome is not IngestOutcome.DUPLICATE
    with app.sessions() as session:
        names = sorted(session.scalars(select(Attachment.filename)).all())
    assert names == ["a.pdf", "b.pdf"]


def test_mail_stored_before_attachments_counted_is_still_a_duplicate(app: Application) -> None:
    raw = _with_attachment("a.pdf", b"%PDF-A")
    first = app.service.ingest(raw, MailSource("support", 1, 1))
    parsed = parse_message(raw)
    assert parsed.from_addr is not None and parsed.date is not None
    legacy = "\x1f".join(
        (parsed.from_addr.email, parsed.subject, parsed.date.isoformat(), parsed.full_text)
    )
    with app.sessions.begin() as session:  # what releases before 2026-12 stored
        session.execute(
            update(Message).values(fingerprint=hashlib.sha256(legacy.encode()).hexdigest())
        )
    # The same mail again: at the second support address, or after a UIDVALIDITY change.
    again = app.service.ingest(raw, MailSource("sales", 7, 1))
    assert (first.outcome, again.outcome) == (IngestOutcome.CREATED, IngestOutcome.DUPLICATE)
