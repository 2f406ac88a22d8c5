"""Property tests: no input bytes make the parser raise, and its output keeps its promises."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier.textprep import strip_quoted_and_signature
from daemon.parsing import ParsedMessage, parse_message

_SETTINGS = settings(
    max_examples=300,
    deadline=None,  # the first call compiles the reply-stripping patterns
    suppress_health_check=[HealthCheck.too_slow],
)

_HEADER_NAMES = [
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Sender",
    "Return-Path",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "MIME-Version",
    "Auto-Submitted",
    "Precedence",
    "List-Id",
    "X-Loop",
]
_VALUE_PIECES = [
    "=?utf-8?B?",
    "=?iso-8859-1?Q?",
    "?=",
    "<",
    ">",
    "@",
    '"',
    ";",
    ",",
    "(",
    ")",
    "\\",
    "multipart/mixed; boundary=",
    "text/html; charset=",
    "message/rfc822",
    "text/rfc822-headers",
    "multipart/report; report-type=delivery-status",
    "filename*0*=utf-8''",
    "base64",
    "quoted-printable",
    "x-uuencode",
    "\r\n ",
    "\r\n",
    "\x00",
    "Mon, 3 Mar 2025 10:12:00 +0100",
]
_header_value = st.lists(
    st.one_of(
        st.sampled_from(_VALUE_PIECES),
        st.text(max_size=20),
        st.binary(max_size=12).map(lambda b: b.decode("latin-1")),
    ),
    max_size=8,
).map("".join)
_header_block = st.lists(
    st.tuples(st.sampled_from(_HEADER_NAMES), _header_value), min_size=1, max_size=12
).map(
    lambda pairs: "".join(f"{name}: {value}\r\n" for name, value in pairs).encode(
        "utf-8", "surrogatepass"
    )
)
_body_piece = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n",
            b"--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nx\r\n",
            b"--b--\r\n",
            b"begin 644 f.bin\n#86)C\n`\nend\n",
            b"<html><body><p>x</p></body></html>",
            b"> quoted\r\n",
            b"On Mon, 3 Mar 2025, A <a@b.c> wrote:\r\n",
            b"\xff\xfe\x00\x1b$B",
        ]
    ),
)
_body = st.lists(_body_piece, max_size=6).map(b"".join)


def _check_invariants(parsed: ParsedMessage) -> None:
    assert isinstance(parsed, ParsedMessage)
    assert not re.search(r"[\r\n\x00]", parsed.subject)
    assert len(parsed.subject) <= 998
    assert parsed.message_id.startswith("<")
    assert parsed.message_id.endswith(">")
    assert len(parsed.message_id) > 2
    assert not re.search(r"[\s\x00]", parsed.message_id)
    for value in (parsed.text, parsed.full_text):
        assert "\x00" not in value
        assert "\r" not in value
        value.encode("utf-8")  # no lone surrogates
    for address in (parsed.from_addr, *parsed.to, *parsed.cc, *parsed.reply_to):
        if address is None:
            continue
        assert address.email
        assert not re.search(r"[\s\x00<>]", address.email)
        assert address.email == address.email.lower()
        assert not re.search(r"[\r\n\x00]", address.name)
        assert len(address.name) <= 200
    for message_id in (*parsed.in_reply_to, *parsed.references, *parsed.bounced_message_ids):
        assert message_id.startswith("<") and message_id.endswith(">")
    if parsed.date is not None:
        assert parsed.date.tzinfo is not None
    for attachment in parsed.attachments:
        assert attachment.size >= 0
        assert len(attachment.sha256) == 64
        assert attachment.filename
        assert "/" not in attachment.filename and "\\" not in attachment.filename
        assert not re.search(r"[\x00-\x1f]", attachment.filename)
    for defect in parsed.header_defects:
        assert "\n" not in defect


@_SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _check_invariants(parse_message(raw))


@_SETTINGS
@given(_header_block, _body)
def test_plausible_headers_with_arbitrary_bodies_never_raise(headers: bytes, body: bytes) -> None:
    raw = b"From: Someone <someone@example.com>\r\n" + headers + b"\r\n" + body
    _check_invariants(parse_message(raw))


@_SETTINGS
@given(_header_block, _body)
def test_multipart_skeleton_with_junk_never_raises(headers: bytes, body: bytes) -> None:
    raw = (
        headers
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + body
        + b"\r\n--b--\r\n"
    )
    _check_invariants(parse_message(raw))


@_SETTINGS
@given(st.text(max_size=2000))
def test_reply_stripping_never_raises_and_never_empties(text: str) -> None:
    result = strip_quoted_and_signature(text)
    if text.strip():
        assert result.strip()
    assert "\r" not in result
