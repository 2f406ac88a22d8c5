"""The pure mail parser: decoding, body choice, attachments, automatic-mail detection."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

from daemon.parsing import Address, ParsedMessage, parse_message


def _raw(*header_lines: str, body: bytes = b"Hello\r\n") -> bytes:
    return ("\r\n".join(header_lines) + "\r\n\r\n").encode("ascii") + body


def _simple(**headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = headers.pop("from_", "Jane Doe <Jane.Doe@Example.COM>")
    msg["To"] = "support@example.com"
    msg["Subject"] = headers.pop("subject", "Broken kettle")
    msg["Message-ID"] = "<abc@example.com>"
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    return msg


# --- headers ----------------------------------------------------------------


def test_plain_message_basic_fields() -> None:
    msg = _simple(Date="Mon, 03 Mar 2025 10:12:00 +0100")
    msg.set_content("My kettle leaks.\n")
    parsed = parse_message(msg.as_bytes())
    assert isinstance(parsed, ParsedMessage)
    assert parsed.from_addr == Address(email="jane.doe@example.com", name="Jane Doe")
    assert parsed.to == (Address(email="support@example.com"),)
    assert parsed.subject == "Broken kettle"
    assert parsed.message_id == "<abc@example.com>"
    assert parsed.message_id_synthetic is False
    assert parsed.date == datetime(2025, 3, 3, 9, 12, tzinfo=UTC)
    assert parsed.date is not None and parsed.date.utcoffset() == timedelta(hours=1)
    assert parsed.text == "My kettle leaks."
    assert parsed.full_text == "My kettle leaks."
    assert parsed.attachments == ()
    assert parsed.auto_submitted is None
    assert parsed.is_bounce is False
    assert parsed.is_list_mail is False
    assert parsed.loop_marker is None


def test_encoded_words_in_subject_and_names() -> None:
    raw = _raw(
        "From: =?utf-8?B?SsO8cmdlbiBNw7xsbGVy?= <juergen@example.de>",
        "To: =?iso-8859-1?Q?G=FCnther_John_=7C_Example?= <k@example.com>,"
        " =?utf-8?q?Doe=2C_John?= <jd@example.com>",
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= =?utf-8?q?_aus_K=C3=B6ln?= und mehr",
        "Message-ID: <1@example.de>",
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Grüße aus Köln und mehr"
    assert parsed.from_addr == Address("juergen@example.de", "Jürgen Müller")
    assert parsed.to == (
        Address("k@example.com", "Günther John | Example"),
        Address("jd@example.com", "Doe, John"),
    )


def test_encoded_word_with_unknown_charset_falls_back() -> None:
    raw = _raw(
        "From: a@example.com",
        "Subject: =?x-unknown?q?caf=C3=A9?= ok",
        "Message-ID: <2@example.com>",
    )
    assert parse_message(raw).subject == "café ok"


def test_gb2312_label_on_gbk_text_is_decoded_with_the_superset() -> None:
    subject = "內應力產生与注塑工艺"
    encoded = base64.b64encode(subject.encode("gb18030")).decode("ascii")
    raw = _raw("From: a@example.com", f"Subject: =?GB2312?B?{encoded}?=", "Message-ID: <g@x>")
    assert parse_message(raw).subject == subject


def test_eight_bit_utf8_headers() -> None:
    raw = (
        "From: Jürgen Müller <j@example.de>\r\n"
        "Subject: Reklamation: Gerät defekt\r\n"
        "Message-ID: <3@example.de>\r\n\r\nText\r\n"
    ).encode()
    parsed = parse_message(raw)
    assert parsed.subject == "Reklamation: Gerät defekt"
    assert parsed.from_addr == Address("j@example.de", "Jürgen Müller")


def test_eight_bit_latin1_headers_use_the_charset_declared_in_the_body() -> None:
    raw = (
        b"From: H\xe5vard Wilhelmsen <hw@example.no>\r\n"
        b"Subject: Bl\xe5b\xe6rsyltet\xf8y\r\n"
        b"Message-ID: <4@example.no>\r\n"
        b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
        b"Hei p\xe5 deg\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.subject == "Blåbærsyltetøy"
    assert parsed.from_addr == Address("hw@example.no", "Håvard Wilhelmsen")
    assert parsed.full_text == "Hei på deg"
    assert any("8-bit" in defect for defect in parsed.header_defects)


def test_crlf_injection_in_subject_is_flattened() -> None:
    injected = base64.b64encode(b"Refund\r\nBcc: victim@example.com\r\n\r\nbody").decode()
    raw = _raw("From: a@example.com", f"Subject: =?utf-8?B?{injected}?=", "Message-ID: <5@x>")
    parsed = parse_message(raw)
    assert parsed.subject == "Refund Bcc: victim@example.com body"
    assert not re.search(r"[\r\n\x00]", parsed.subject)


def test_subject_control_characters_and_length_cap() -> None:
    long_subject = "a\x00b\x1bc\u202e" + "x" * 2000
    msg = _simple(subject="placeholder")
    msg.replace_header("Subject", long_subject)
    parsed = parse_message(msg.as_bytes())
    assert parsed.subject.startswith("abcxxx")
    assert len(parsed.subject) == 998


def test_display_name_is_capped() -> None:
    raw = _raw(f"From: {'N' * 500} <n@example.com>", "Message-ID: <6@x>")
    parsed = parse_message(raw)
    assert parsed.from_addr is not None
    assert parsed.from_addr.name == "N" * 200


def test_no_from_uses_sender_and_records_a_defect() -> None:
    raw = _raw("Sender: Helper <Helper@Example.com>", "Subject: hi", "Message-ID: <7@x>")
    parsed = parse_message(raw)
    assert parsed.from_addr == Address("helper@example.com", "Helper")
    assert "From missing" in parsed.header_defects
    assert "sender taken from Sender" in parsed.header_defects


def test_no_from_at_all_gives_none() -> None:
    parsed = parse_message(_raw("Subject: hi", "Message-ID: <8@x>"))
    assert parsed.from_addr is None
    assert "From missing" in parsed.header_defects


def test_from_without_address_falls_back_to_return_path() -> None:
    raw = _raw('From: "Nobody"', "Return-Path: <bounce@example.org>", "Message-ID: <9@x>")
    parsed = parse_message(raw)
    assert parsed.from_addr == Address("bounce@example.org")
    assert "sender taken from Return-Path" in parsed.header_defects


def test_apostrophe_in_local_part_is_kept() -> None:
    parsed = parse_message(
        _raw("From: Sean O'Brien <Sean.O'Brien@Example.ie>", "Message-ID: <o@x>")
    )
    assert parsed.from_addr == Address("sean.o'brien@example.ie", "Sean O'Brien")


def test_bare_name_and_address_without_brackets() -> None:
    parsed = parse_message(_raw("From: Test test@example.com", "Message-ID: <10@x>"))
    assert parsed.from_addr == Address("test@example.com", "Test")


def test_missing_message_id_gets_a_stable_synthetic_one() -> None:
    raw = _raw("From: a@example.com", "Subject: no id")
    first, second = parse_message(raw), parse_message(raw)
    expected = f"<{hashlib.sha256(raw).hexdigest()[:32]}@synthetic.complaintd.invalid>"
    assert first.message_id == second.message_id == expected
    assert first.message_id_synthetic is True
    other = parse_message(raw + b"more")
    assert other.message_id != first.message_id


def test_empty_message_id_is_treated_as_missing() -> None:
    parsed = parse_message(_raw("From: a@example.com", "Message-ID: <>"))
    assert parsed.message_id_synthetic is True
    assert parsed.message_id.endswith("@synthetic.complaintd.invalid>")


def test_message_id_without_brackets_is_bracketed() -> None:
    parsed = parse_message(_raw("From: a@example.com", "Message-ID: abc.123@host.example"))
    assert parsed.message_id == "<abc.123@host.example>"
    assert parsed.message_id_synthetic is False


def test_in_reply_to_and_references_tolerate_junk() -> None:
    raw = _raw(
        "From: a@example.com",
        "Message-ID: <m@x>",
        'In-Reply-To: Your message of "Mon, 3 Mar" <parent@example.com> (junk)',
        "References: <root@example.com> junk, <a b@example.com>",
        "\t<parent@example.com> <root@example.com>",
    )
    parsed = parse_message(raw)
    assert parsed.in_reply_to == ("<parent@example.com>",)
    assert parsed.references == (
        "<root@example.com>",
        "<ab@example.com>",
        "<parent@example.com>",
    )


def test_naive_date_is_utc_and_garbage_date_is_none() -> None:
    naive = parse_message(_raw("From: a@x.org", "Message-ID: <d1@x>", "Date: 3 Mar 2025 10:12:00"))
    assert naive.date == datetime(2025, 3, 3, 10, 12, tzinfo=UTC)
    zoned = parse_message(
        _raw("From: a@x.org", "Message-ID: <d2@x>", "Date: Mon, 3 Mar 2025 10:12:00 -0500")
    )
    assert zoned.date is not None and zoned.date.tzinfo == timezone(timedelta(hours=-5))
    garbage = parse_message(_raw("From: a@x.org", "Message-ID: <d3@x>", "Date: yesterday-ish"))
    assert garbage.date is None
    assert "Date header could not be parsed" in garbage.header_defects


# --- bodies -------------------------------------------------------------------


def test_multipart_alternative_prefers_plain() -> None:
    msg = _simple()
    msg.set_content("Plain version of the complaint.\n")
    msg.add_alternative("<html><body><p>HTML <b>version</b></p></body></html>", subtype="html")
    parsed = parse_message(msg.as_bytes())
    assert parsed.full_text == "Plain version of the complaint."


def test_html_only_mail_becomes_readable_text() -> None:
    msg = _simple()
    msg.set_content(
        "<html><head><style>p {color: red}</style></head><body>"
        "<p>Hello support,</p><ul><li>kettle leaks</li><li>lid broken</li></ul>"
        "<p>Order&nbsp;#12345 &amp; receipt attached.</p></body></html>",
        subtype="html",
    )
    parsed = parse_message(msg.as_bytes())
    assert "<" not in parsed.full_text
    assert "color" not in parsed.full_text
    assert "Hello support," in parsed.full_text
    assert "* kettle leaks" in parsed.full_text
    assert "Order #12345 & receipt attached." in parsed.full_text


def test_alternative_with_empty_plain_uses_html() -> None:
    msg = _simple()
    msg.set_content("   \n")
    msg.add_alternative("<p>Only the HTML has words.</p>", subtype="html")
    assert parse_message(msg.as_bytes()).full_text == "Only the HTML has words."


def test_multipart_mixed_concatenates_inline_text_parts() -> None:
    msg = _simple()
    msg.set_content("First part.\n")
    msg.add_attachment("Second part.\n", disposition="inline")
    msg.add_attachment(b"%PDF-1.4 data", maintype="application", subtype="pdf", filename="r.pdf")
    parsed = parse_message(msg.as_bytes())
    assert parsed.full_text == "First part.\n\nSecond part."
    assert [a.filename for a in parsed.attachments] == ["r.pdf"]


def test_wrong_declared_charset_is_detected() -> None:
    text = "Sehr geehrte Damen und Herren, die Lieferung kam beschädigt an. Grüße aus München"
    raw = _raw(
        "From: a@example.de",
        "Message-ID: <w@x>",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        body=text.encode("cp1252"),
    )
    parsed = parse_message(raw)
    assert parsed.full_text == text
    assert any("does not decode" in defect for defect in parsed.header_defects)


def test_unknown_declared_charset_is_detected() -> None:
    raw = _raw(
        "From: a@example.de",
        "Message-ID: <u@x>",
        "Content-Type: text/plain; charset=x-no-such-charset",
        body="Grüße".encode(),
    )
    assert parse_message(raw).full_text == "Grüße"


def test_missing_charset_with_latin1_bytes() -> None:
    text = "Grüße aus München, schöne Grüße und vielen Dank für die schnelle Hilfe"
    raw = _raw("From: a@example.de", "Message-ID: <l@x>", body=text.encode("latin-1"))
    parsed = parse_message(raw)
    assert parsed.full_text == text
    assert "body has 8-bit bytes but no charset; detected" in parsed.header_defects


def test_iso_2022_jp_body_and_windows_extensions() -> None:
    body = b'\x1b$B-!#1ET#38)$N03$H!"\x1b(B\r\n'
    raw = _raw(
        "From: a@example.jp",
        "Message-ID: <j@x>",
        "Content-Type: text/plain; charset=ISO-2022-JP",
        body=body,
    )
    assert parse_message(raw).full_text == "①１都３県の鯵と、"


def test_nul_bytes_are_removed_everywhere() -> None:
    raw = (
        b"From: Nul\x00Name <nul@example.com>\r\nSubject: a\x00b\r\nMessage-ID: <n\x00@x>\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nbefore\x00after\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.subject == "ab"
    assert parsed.full_text == "beforeafter"
    assert parsed.message_id == "<n@x>"
    assert parsed.from_addr is not None and "\x00" not in parsed.from_addr.name
    assert "\x00" not in parsed.text


def test_line_endings_are_normalised() -> None:
    raw = _raw("From: a@x.org", "Message-ID: <le@x>", body=b"one\r\ntwo\rthree\n")
    assert parse_message(raw).full_text == "one\ntwo\nthree"


def test_uuencoded_transfer_encoding_and_inline_uuencode() -> None:
    payload = b"\x89PNG fake image bytes"
    import binascii

    block = b"begin 644 pic.png\n" + binascii.b2a_uu(payload) + b"`\nend\n"
    part_cte = _raw(
        "From: a@x.org",
        "Message-ID: <uu1@x>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: text/plain\r\n\r\nSee file.\r\n"
            b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: x-uuencode\r\n"
            b'Content-Disposition: attachment; filename="pic.png"\r\n\r\n' + block + b"--b--\r\n"
        ),
    )
    parsed = parse_message(part_cte)
    assert parsed.full_text == "See file."
    assert [(a.filename, a.size) for a in parsed.attachments] == [("pic.png", len(payload))]
    assert parsed.attachments[0].sha256 == hashlib.sha256(payload).hexdigest()

    inline = _raw("From: a@x.org", "Message-ID: <uu2@x>", body=b"Notes text.\n\n" + block)
    parsed_inline = parse_message(inline)
    assert parsed_inline.full_text == "Notes text."
    assert [(a.filename, a.content_type) for a in parsed_inline.attachments] == [
        ("pic.png", "image/png")
    ]


def test_base64_with_sloppy_transfer_encoding_value() -> None:
    raw = _raw(
        "From: a@x.org",
        "Message-ID: <b64@x>",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: Base64 ",
        body=base64.b64encode("Grüße".encode()) + b"\r\n",
    )
    assert parse_message(raw).full_text == "Grüße"


# --- attachments ----------------------------------------------------------------


def test_attachment_metadata() -> None:
    msg = _simple()
    msg.set_content("See attached.\n")
    data = bytes(range(256)) * 4
    msg.add_attachment(data, maintype="application", subtype="pdf", filename="invoice.pdf")
    msg.add_attachment(b"\x89PNG...", maintype="image", subtype="png", disposition="inline")
    parsed = parse_message(msg.as_bytes())
    first, second = parsed.attachments
    assert first.filename == "invoice.pdf"
    assert first.content_type == "application/pdf"
    assert first.size == len(data)
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert second.filename == "attachment-2.png"
    assert second.content_type == "image/png"


def test_rfc2231_filename_with_continuations() -> None:
    raw = _raw(
        "From: a@x.org",
        "Message-ID: <r@x>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: text/plain\r\n\r\nBody\r\n"
            b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment;\r\n"
            b" filename*0*=utf-8''Rechnung%20f%C3%BCr%20;\r\n"
            b" filename*1*=M%C3%A4rz.pdf\r\n\r\nxyz\r\n--b--\r\n"
        ),
    )
    parsed = parse_message(raw)
    assert [a.filename for a in parsed.attachments] == ["Rechnung für März.pdf"]


def test_encoded_word_and_eight_bit_filenames() -> None:
    raw = _raw(
        "From: a@x.org",
        "Message-ID: <f@x>",
        'Content-Type: multipart/mixed; boundary="b"',
        body=(
            b"--b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nBody\r\n"
            b'--b\r\nContent-Type: image/jpeg; name="=?utf-8?B?w6TDtsO8LmpwZw==?="\r\n\r\nx\r\n'
            b'--b\r\nContent-Type: image/jpeg\r\nContent-Disposition: attachment; filename="'
            b'Hofj\xe4geralle.jpg"\r\n\r\ny\r\n--b--\r\n'
        ),
    )
    names = [a.filename for a in parse_message(raw).attachments]
    assert names == ["äöü.jpg", "Hofjägeralle.jpg"]


def test_filenames_are_sanitised() -> None:
    msg = _simple()
    msg.set_content("x")
    msg.add_attachment(
        b"1", maintype="application", subtype="octet-stream", filename="..\\..\\C:\\evil\x07.exe"
    )
    msg.add_attachment(b"2", maintype="application", subtype="octet-stream", filename="/etc/passwd")
    names = [a.filename for a in parse_message(msg.as_bytes()).attachments]
    assert names == ["evil.exe", "passwd"]


def test_nested_message_is_an_attachment_named_after_its_subject() -> None:
    inner = _simple(subject="Original/complaint")
    inner.set_content("Inner text that must not be merged.\n")
    outer = _simple(subject="Fwd: Original complaint")
    outer.set_content("Please see the forwarded mail.\n")
    outer.add_attachment(inner)
    parsed = parse_message(outer.as_bytes())
    assert parsed.full_text == "Please see the forwarded mail."
    assert "Inner text" not in parsed.text
    (attachment,) = parsed.attachments
    assert attachment.filename == "Original_complaint.eml"
    assert attachment.content_type == "message/rfc822"
    assert attachment.size > 0


# --- automatic mail -------------------------------------------------------------


_DSN = (
    b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
    b"To: support@example.com\r\n"
    b"Subject: Undelivered Mail Returned to Sender\r\n"
    b"Message-ID: <dsn1@mx.example.com>\r\n"
    b"Auto-Submitted: auto-replied\r\n"
    b'Content-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n\r\n'
    b"--r\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
    b"--r\r\nContent-Type: message/delivery-status\r\n\r\n"
    b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
    b"Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    b"--r\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    b"From: support@example.com\r\nTo: gone@example.org\r\n"
    b"Message-ID: <cmp.42.c.abc@support.example.com>\r\nSubject: [CMP-000042] ack\r\n"
    b"--r--\r\n"
)


def test_dsn_bounce_with_returned_headers() -> None:
    parsed = parse_message(_DSN)
    assert parsed.is_bounce is True
    assert parsed.bounced_message_ids == ("<cmp.42.c.abc@support.example.com>",)
    assert parsed.auto_submitted == "auto-replied"
    assert parsed.full_text == "Your message could not be delivered."
    assert [a.content_type for a in parsed.attachments] == [
        "message/delivery-status",
        "text/rfc822-headers",
    ]


def test_bounce_with_returned_message_and_without_auto_submitted() -> None:
    raw = (
        b"From: postmaster@example.org\r\nSubject: Delivery Status Notification (Failure)\r\n"
        b"Message-ID: <dsn2@x>\r\nReturn-Path: <>\r\n"
        b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        b"--m\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n"
        b"--m\r\nContent-Type: message/rfc822\r\n\r\n"
        b"From: support@example.com\r\nMessage-ID: <ours-1@support.example.com>\r\n"
        b"Subject: Re: order\r\n\r\nOur reply.\r\n--m--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.is_bounce is True
    assert parsed.bounced_message_ids == ("<ours-1@support.example.com>",)
    assert parsed.auto_submitted == "bounce"
    assert [a.filename for a in parsed.attachments] == ["Re_ order.eml"]


def test_qmail_style_bounce_finds_the_id_in_the_text() -> None:
    raw = _raw(
        "From: MAILER-DAEMON@mail.example.net",
        "Subject: failure notice",
        "Message-ID: <q@x>",
        body=(
            b"Hi. This is the qmail-send program.\r\n\r\n--- Below this line is a copy.\r\n\r\n"
            b"Message-ID: <cmp.7.c.zz@support.example.com>\r\nSubject: hello\r\n"
        ),
    )
    parsed = parse_message(raw)
    assert parsed.is_bounce is True
    assert parsed.bounced_message_ids == ("<cmp.7.c.zz@support.example.com>",)


def test_customer_mentioning_delivery_failure_is_not_a_bounce() -> None:
    raw = _raw("From: customer@example.com", "Subject: Delivery failed!", "Message-ID: <c@x>")
    parsed = parse_message(raw)
    assert parsed.is_bounce is False
    assert parsed.auto_submitted is None


def test_read_receipt_is_automatic_not_a_bounce() -> None:
    raw = (
        b"From: customer@example.com\r\nSubject: Read: ack\r\nMessage-ID: <mdn@x>\r\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="d"'
        b"\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nYour message was read.\r\n"
        b"--d\r\nContent-Type: message/disposition-notification\r\n\r\n"
        b"Final-Recipient: rfc822;customer@example.com\r\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--d--\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.auto_submitted == "mdn"
    assert parsed.is_bounce is False


def test_outlook_auto_reply() -> None:
    raw = _raw(
        "From: Kiss Peter <peter@example.hu>",
        "Subject: Automatic reply: [CMP-000123] We received your complaint",
        "Message-ID: <oof@x>",
        "X-Auto-Response-Suppress: All",
        "X-MS-Exchange-Inbox-Rules-Loop: peter@example.hu",
        body=b"I am out of the office until Monday.\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.auto_submitted == "x-auto-response-suppress"
    assert parsed.is_bounce is False


def test_x_auto_response_suppress_alone_is_not_an_auto_reply() -> None:
    raw = _raw(
        "From: a@x.org", "Subject: My order", "Message-ID: <s@x>", "X-Auto-Response-Suppress: All"
    )
    assert parse_message(raw).auto_submitted is None


def test_auto_submitted_and_precedence() -> None:
    no = parse_message(_raw("From: a@x.org", "Message-ID: <a1@x>", "Auto-Submitted: no"))
    assert no.auto_submitted is None
    generated = parse_message(
        _raw("From: a@x.org", "Message-ID: <a2@x>", "Auto-Submitted: auto-generated (failure)")
    )
    assert generated.auto_submitted == "auto-generated"
    bulk = parse_message(_raw("From: a@x.org", "Message-ID: <a3@x>", "Precedence: Bulk"))
    assert bulk.auto_submitted == "precedence:bulk"
    assert bulk.is_list_mail is False
    vacation = parse_message(_raw("From: a@x.org", "Message-ID: <a4@x>", "X-Autoreply: yes"))
    assert vacation.auto_submitted == "x-autoreply"
    mailer = parse_message(_raw("From: a@x.org", "Message-ID: <a5@x>", "X-Mailer: Unix Vacation"))
    assert mailer.auto_submitted == "x-mailer:vacation"


def test_list_mail() -> None:
    raw = _raw(
        "From: list@lists.example.org",
        "Message-ID: <l1@x>",
        "List-Id: Users <users.lists.example.org>",
        "List-Unsubscribe: <mailto:leave@lists.example.org>",
    )
    assert parse_message(raw).is_list_mail is True
    precedence = parse_message(_raw("From: a@x.org", "Message-ID: <l2@x>", "Precedence: list"))
    assert precedence.is_list_mail is True
    assert precedence.auto_submitted == "precedence:list"


def test_loop_marker() -> None:
    raw = _raw(
        "From: a@x.org",
        "Message-ID: <x1@x>",
        "X-Loop: other-system",
        "X-Loop: complaintd@support.example.com",
    )
    assert parse_message(raw).loop_marker == "other-system"
    own = parse_message(raw, own_loop_header_value="complaintd@support.example.com")
    assert own.loop_marker == "complaintd@support.example.com"


# --- quoted history -----------------------------------------------------------


def test_quoted_history_english() -> None:
    msg = _simple(subject="Re: [CMP-000001] Your complaint")
    msg.set_content(
        "It is still broken.\n\nBest regards,\nJane\n\n"
        "On Mon, Mar 3, 2025 at 10:12 AM Support <support@example.com> wrote:\n"
        "> We are sorry to hear that.\n> Please send a photo.\n"
    )
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == "It is still broken."
    assert "> We are sorry to hear that." in parsed.full_text


def test_quoted_history_german_outlook() -> None:
    msg = _simple(subject="AW: Reklamation")
    msg.set_content(
        "Das Gerät ist immer noch defekt.\n\nMit freundlichen Grüßen\nHans Müller\n\n"
        "-----Ursprüngliche Nachricht-----\nVon: Support <support@example.de>\n"
        "Gesendet: Montag, 3. März 2025 10:12\nAn: Hans Müller\nBetreff: Reklamation\n\n"
        "Sehr geehrter Herr Müller,\n"
    )
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == "Das Gerät ist immer noch defekt."
    assert "Sehr geehrter Herr Müller" in parsed.full_text


def test_quoted_history_hungarian() -> None:
    msg = _simple(subject="Re: Panasz")
    msg.set_content(
        "A készülék továbbra sem működik.\n\nÜdvözlettel:\nKiss Péter\n\n"
        "2025. márc. 3., hétfő 10:12 időpontban Ügyfélszolgálat <support@example.hu> ezt írta:\n"
        "> Kedves Kiss Péter!\n"
    )
    parsed = parse_message(msg.as_bytes())
    assert parsed.text == "A készülék továbbra sem működik."


# --- robustness -----------------------------------------------------------------


def test_empty_and_junk_input_never_raise() -> None:
    for raw in (b"", b"\x00" * 100, b"\xff\xfe\xfd", b"::::\r\n\r\n", b"From:\r\n\r\n"):
        parsed = parse_message(raw)
        assert parsed.message_id_synthetic is True
        assert "\x00" not in parsed.full_text


def test_broken_multipart_without_boundary_is_read_as_text() -> None:
    raw = _raw(
        "From: a@x.org",
        "Message-ID: <mb@x>",
        "Content-Type: multipart/mixed",
        body=b"Just some text.\r\n",
    )
    parsed = parse_message(raw)
    assert parsed.full_text == "Just some text."
    assert any("without parts" in defect for defect in parsed.header_defects)


def test_very_large_body_is_capped_with_a_note() -> None:
    body = (b"complaint text line that goes on\n" * 400_000)[: 12 * 1024 * 1024]
    parsed = parse_message(_raw("From: a@x.org", "Message-ID: <big@x>", body=body))
    assert len(parsed.full_text) <= 5_000_000
    assert len(parsed.text) <= 1_000_000
    assert any("cut" in defect for defect in parsed.header_defects)


def test_thousands_of_nested_parts_keep_the_headers() -> None:
    raw = b"From: a@example.com\r\nMessage-ID: <deep@x>\r\nSubject: deep\r\n"
    for level in range(3000):
        raw += f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
    raw += b"Content-Type: text/plain\r\n\r\nlost\r\n"
    parsed = parse_message(raw)
    assert parsed.message_id == "<deep@x>"
    assert parsed.from_addr == Address("a@example.com")
    assert parsed.subject == "deep"
    assert parsed.full_text == ""
    assert "MIME structure too deeply nested to parse; body skipped" in parsed.header_defects


def test_hostile_headers_do_not_make_parsing_quadratic() -> None:
    hostile = (
        b"From: " + b'"a' * 30_000 + b"\r\n"
        b"To: " + b"a@b," * 15_000 + b"\r\n"
        b"Subject: " + b"=?a?q?x " * 8_000 + b"\r\n"
        b"Content-Type: text/plain; " + b"a=b; " * 12_000 + b"\r\n\r\nbody\r\n"
    )
    start = time.perf_counter()
    parsed = parse_message(hostile)
    # Quadratic paths took over 30 s here; the bounded ones well under one.
    assert time.perf_counter() - start < 10
    assert parsed.full_text == "body"
    assert "overlong Content-* header cut before parsing" in parsed.header_defects


def test_encoded_display_name_with_specials_does_not_replace_the_address() -> None:
    raw = (
        b"From: =?utf-8?q?Evil=0D=0ABcc:_victim@example.net?= <evil@example.org>\r\n"
        b"Subject: hi\r\n\r\nbody\r\n"
    )
    parsed = parse_message(raw)
    assert parsed.from_addr is not None
    assert parsed.from_addr.email == "evil@example.org"
    assert "\n" not in parsed.from_addr.name and "\r" not in parsed.from_addr.name


# ---------------------------------------------------------------- who sent it


def _from(value: bytes, extra: bytes = b"") -> str | None:
    parsed = parse_message(
        b"From: " + value + b"\r\n" + extra + b"To: support@example.com\r\nSubject: x\r\n\r\nhi\r\n"
    )
    return parsed.from_addr.email if parsed.from_addr else None


def test_the_address_in_angle_brackets_is_the_sender_whatever_the_text_before_it_says() -> None:
    # Mail servers and DMARC vouch for the angle address; lenient parsers read the text.
    forged = b"carla@shop.example <mallory@evil.example>"
    assert _from(forged) == "mallory@evil.example"
    # Padded past the lenient parser's reach: never Carla (here: no usable sender).
    for padding in (b" " * 3000, b"\r\n " * 1100, b" (" + b"x" * 3000 + b") "):
        assert _from(b"carla@shop.example" + padding + b"<mallory@evil.example>") != (
            "carla@shop.example"
        )
    assert _from(b"<carla@shop.example> <mallory@evil.example>") is None  # ambiguous
    assert _from(b"carla@shop.example, <mallory@evil.example>") is None  # two authors, no Sender
    two_authors = b"Carla <carla@shop.example>, Bob <bob@shop.example>"
    assert _from(two_authors, b"Sender: Bob <bob@shop.example>\r\n") == "bob@shop.example"


def test_ordinary_and_odd_but_valid_senders_are_read_as_before() -> None:
    assert _from(b'Jane <"jane"@example.com>') == "jane@example.com"
    assert _from(b"jane@example.com (formerly <old@example.org>)") == "jane@example.com"
    assert _from(b"Jane Doe <jane@example.com> (via <list@example.org>)") == "jane@example.com"
    assert _from(b'"carla@shop.example" <carla@shop.example>') == "carla@shop.example"
    assert _from(b"Jane@Home <jane@example.com>") == "jane@example.com"
    assert _from(b"Jane <@relay.example:jane@example.com>") == "jane@example.com"
    assert _from(b'"Broken " <>, "Shop" <shop@example.com>') == "shop@example.com"


def test_header_comments_never_hide_or_fake_an_automatic_mail() -> None:
    def auto(header: bytes) -> str | None:
        return parse_message(
            b"From: a@example.com\r\n" + header + b"\r\nSubject: x\r\n\r\nhi\r\n"
        ).auto_submitted

    assert auto(b"Auto-Submitted: (by exim) auto-replied") == "auto-replied"
    assert auto(b"Auto-Submitted: no (sent by a person") is None
    assert auto(b"Precedence: bulk (newsletter") == "precedence:bulk"
