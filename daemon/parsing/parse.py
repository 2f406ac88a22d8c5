"""Raw mail bytes to a :class:`ParsedMessage`; pure and total (never raises)."""

from __future__ import annotations

import email
import hashlib
import re
from datetime import datetime
from email.message import Message
from email.parser import BytesHeaderParser

from classifier.textprep import strip_quoted_and_signature
from daemon.parsing._auto import AutoInfo, classify_automatic
from daemon.parsing._body import MAX_PROCESSED, BodyResult, extract_body
from daemon.parsing._charset import usable_charset
from daemon.parsing._clean import single_line
from daemon.parsing._headers import (
    MAX_SUBJECT,
    RawHeaders,
    message_ids,
    parse_date,
    unfold,
)
from daemon.parsing._policy import bound_mime_headers, parsing_policy
from daemon.parsing.model import Address, ParsedMessage

__all__ = ["parse_message"]

_SYNTHETIC_DOMAIN = "synthetic.complaintd.invalid"
_FROM_FALLBACKS = (("sender", "Sender"), ("reply-to", "Reply-To"), ("return-path", "Return-Path"))
_ENCODED_WORD_CHARSET_RE = re.compile(r"=\?([^?*\s]{1,40})[?*]")
_REPORT_TYPE_RE = re.compile(r"""report-type\s*=\s*["']?([\w.-]+)""", re.IGNORECASE)
_MAX_DEFECTS = 50
_MAX_DEFECT_LEN = 300


def parse_message(raw: bytes, *, own_loop_header_value: str | None = None) -> ParsedMessage:
    """Parse one raw RFC 5322 message.

    Never raises: whatever is malformed is repaired or left out, and a note is added
    to ``header_defects``. ``own_loop_header_value`` is the value our own outgoing mail
    puts in its ``X-Loop`` header; when the mail carries it, ``loop_marker`` is it.
    """
    data = _to_bytes(raw)
    defects: list[str] = []
    try:
        return _parse(data, own_loop_header_value, defects)
    except Exception as exc:  # the caller's loop must never see a parse error
        defects.append(f"parser failure ({type(exc).__name__}); minimal result returned")
        return _minimal(data, defects)


def _to_bytes(raw: object) -> bytes:
    if isinstance(raw, bytes):
        return raw
    if isinstance(raw, bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def _synthetic_id(data: bytes) -> str:
    return f"<{hashlib.sha256(data).hexdigest()[:32]}@{_SYNTHETIC_DOMAIN}>"


def _parse(data: bytes, own_loop: str | None, defects: list[str]) -> ParsedMessage:
    bounded, cut = bound_mime_headers(data)
    if cut:
        defects.append("overlong Content-* header cut before parsing")
    # policy.default, with MIME structure headers parsed once (see _policy).
    try:
        msg = email.message_from_bytes(bounded, policy=parsing_policy())
    except RecursionError:
        # Thousands of nested parts exhaust the parser's recursion. The headers
        # still identify the mail; its body is given up.
        defects.append("MIME structure too deeply nested to parse; body skipped")
        msg = BytesHeaderParser(policy=parsing_policy()).parsebytes(bounded)
        msg.set_payload("")
    hint = _charset_hint(msg)
    headers = RawHeaders(msg, hint)

    ids = message_ids(headers.first("message-id"), single=True)
    synthetic = not ids
    if synthetic:
        defects.append("Message-ID missing or empty; synthetic id derived from the raw bytes")
    message_id = ids[0] if ids else _synthetic_id(data)

    subject = single_line(headers.text("subject", defects) or "", MAX_SUBJECT)
    from_addr = _sender(headers, defects)
    date = parse_date(headers.first("date"))
    if date is None and headers.has("date"):
        defects.append("Date header could not be parsed")

    body = extract_body(msg, hint)
    defects.extend(body.defects)
    full_text = body.full_text
    if len(full_text) > MAX_PROCESSED:
        defects.append(f"only the first {MAX_PROCESSED} characters were reply-stripped")
    try:
        text = strip_quoted_and_signature(full_text[:MAX_PROCESSED])
    except Exception as exc:  # the whole body beats no parse at all
        defects.append(f"reply stripping failed ({type(exc).__name__}); full text kept")
        text = full_text[:MAX_PROCESSED]

    content_type, report_type = _top_content_type(msg, headers)
    auto = classify_automatic(
        headers,
        content_type=content_type,
        report_type=report_type,
        body=body,
        from_addr=from_addr,
        subject=subject,
        own_message_id=message_id,
        own_loop_header_value=own_loop,
    )
    defects.extend(_library_defects(msg))
    return _build(
        message_id=message_id,
        synthetic=synthetic,
        from_addr=from_addr,
        headers=headers,
        subject=subject,
        date=date,
        text=text,
        body=body,
        auto=auto,
        defects=defects,
    )


def _build(
    *,
    message_id: str,
    synthetic: bool,
    from_addr: Address | None,
    headers: RawHeaders,
    subject: str,
    date: datetime | None,
    text: str,
    body: BodyResult,
    auto: AutoInfo,
    defects: list[str],
) -> ParsedMessage:
    references = message_ids(" ".join(headers.all("references")))
    in_reply_to = message_ids(headers.first("in-reply-to"))
    return ParsedMessage(
        message_id=message_id,
        message_id_synthetic=synthetic,
        from_addr=from_addr,
        reply_to=tuple(headers.addresses("reply-to", defects)),
        to=tuple(headers.addresses("to", defects)),
        cc=tuple(headers.addresses("cc", defects)),
        subject=subject,
        date=date,
        in_reply_to=tuple(in_reply_to),
        references=tuple(references),
        text=text,
        full_text=body.full_text,
        attachments=tuple(body.attachments),
        auto_submitted=auto.auto_submitted,
        is_bounce=auto.is_bounce,
        bounced_message_ids=auto.bounced_message_ids,
        is_list_mail=auto.is_list_mail,
        machine_sender=auto.machine_sender,
        loop_marker=auto.loop_marker,
        header_defects=_tidy_defects(defects),
    )


def _sender(headers: RawHeaders, defects: list[str]) -> Address | None:
    """From, or the first header that can stand in for a missing or unusable From.

    A From without a domain (``MAILER-DAEMON``) is kept only when no other header
    offers a complete address.
    """
    found = headers.addresses("from", defects)
    if len(found) > 1:
        # Several authors must name the one who sent it (RFC 5322 Sender); taking
        # the first would let ``carla@…, <mallory@…>`` act as Carla.
        agents = [a for a in headers.addresses("sender", defects) if "@" in a.email]
        if agents:
            defects.append("From has several addresses; the Sender header's is used")
            return agents[0]
        defects.append("From has several addresses and no Sender: no sender")
        return None
    if found and "@" in found[0].email:
        return found[0]
    if found:
        defects.append("From address has no domain")
    else:
        defects.append(
            "From missing or without an address" if headers.has("from") else "From missing"
        )
    for name, label in _FROM_FALLBACKS:
        candidates = [a for a in headers.addresses(name, defects) if "@" in a.email]
        if candidates:
            defects.append(f"sender taken from {label}")
            return candidates[0]
    return found[0] if found else None


def _charset_hint(msg: Message) -> str | None:
    """A charset the mail declares somewhere, for its parts and headers that declare none.

    The same mail client wrote the raw 8-bit headers, the undeclared parts and the
    declared ones, so a declared charset is a far better guess than statistics on a
    few bytes. Looked for on the top-level Content-Type (some clients put it on the
    multipart), the first text parts, and the encoded words of Subject and From.
    """
    try:
        for index, part in enumerate(msg.walk()):
            if index > 20:
                break
            charset = usable_charset(part.get_content_charset())
            if charset and charset not in ("ascii", "utf-8"):
                return charset
        for name, value in msg.raw_items():
            if str(name).lower() not in ("subject", "from"):
                continue
            match = _ENCODED_WORD_CHARSET_RE.search(str(value))
            charset = usable_charset(match.group(1)) if match else None
            if charset and charset not in ("ascii", "utf-8"):
                return charset
    except Exception:  # a hint is optional
        return None
    return None


def _top_content_type(msg: Message, headers: RawHeaders) -> tuple[str, str]:
    try:
        content_type = msg.get_content_type().lower()
    except Exception:  # a broken Content-Type is treated as text/plain
        content_type = "text/plain"
    if content_type != "multipart/report":
        return content_type, ""
    raw = headers.first("content-type") or ""
    match = _REPORT_TYPE_RE.search(unfold(raw))
    return content_type, match.group(1).lower() if match else ""


def _library_defects(msg: Message) -> list[str]:
    """Names of the structural defects the email package noticed, once each."""
    names: list[str] = []
    try:
        for part in msg.walk():
            for defect in getattr(part, "defects", ()):
                name = type(defect).__name__
                if name not in names:
                    names.append(name)
    except Exception:  # defects are informative only
        return names
    return [f"email package: {name}" for name in names]


def _tidy_defects(defects: list[str]) -> tuple[str, ...]:
    tidy: list[str] = []
    for defect in defects:
        cleaned = single_line(defect, _MAX_DEFECT_LEN)
        if cleaned and cleaned not in tidy:
            tidy.append(cleaned)
        if len(tidy) >= _MAX_DEFECTS:
            break
    return tuple(tidy)


def _minimal(data: bytes, defects: list[str]) -> ParsedMessage:
    return ParsedMessage(
        message_id=_synthetic_id(data),
        message_id_synthetic=True,
        from_addr=None,
        reply_to=(),
        to=(),
        cc=(),
        subject="",
        date=None,
        in_reply_to=(),
        references=(),
        text="",
        full_text="",
        attachments=(),
        auto_submitted=None,
        is_bounce=False,
        bounced_message_ids=(),
        is_list_mail=False,
        loop_marker=None,
        header_defects=_tidy_defects(defects),
    )
