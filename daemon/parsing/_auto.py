"""Automatic mail: auto-replies (RFC 3834), bounces, read receipts, lists and loops."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daemon.parsing._body import BodyResult
from daemon.parsing._clean import single_line
from daemon.parsing._headers import RawHeaders, unfold
from daemon.parsing.model import Address

_AUTO_REPLY_SUBJECT_RE = re.compile(
    r"^\s*(?:(?:re|aw|sv|vs|antw|fw|fwd|wg)\s*:\s*)*(?:"
    r"auto(?:matic|matische|matisch|matikus|matique|maattinen)?[\s_-]*"
    r"(?:reply|response|responder|answer|antwort|antwoord|válasz|réponse|risposta|"
    r"respuesta|vastaus|svar|odpověď)"
    r"|autosvar|auto\s*:|out[\s-]+of[\s-]+(?:the[\s-]+)?office|abwesenheit|"
    r"réponse\s+automatique|risposta\s+automatica|respuesta\s+automática|"
    r"odpowiedź\s+automatyczna|automatická\s+odpověď|házon\s+kívül|"
    r"fuera\s+de\s+la\s+oficina|absence|vacation|urlaub|on\s+leave)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT_RE = re.compile(
    r"undeliver|undelivered|delivery\s+status\s+notification|delivery\s+fail|"
    r"delivery\s+has\s+failed|delivery\s+notification|failure\s+notice|returned\s+mail|"
    r"returned\s+to\s+sender|mail\s+delivery\s+failed|could\s+not\s+be\s+delivered|"
    r"non[\s-]?deliver|mail\s+system\s+error|could\s+not\s+send\s+message|"
    r"unzustellbar|nicht\s+zustellbar|zustellung\s+fehlgeschlagen|non\s+remis|"
    r"échec\s+de\s+la\s+remise|kézbesíthetetlen|nem\s+kézbesíthető|"
    r"no\s+se\s+puede\s+entregar|impossibile\s+recapitare",
    re.IGNORECASE,
)
_VACATION_MAILER_RE = re.compile(
    r"vacation|autorespond|auto[\s-]?reply|out[\s-]of[\s-]office|abwesenheit", re.IGNORECASE
)
_BODY_MESSAGE_ID_RE = re.compile(r"^[ \t>]*Message-ID:[ \t]*(<[^<>\s]{1,500}>)", re.I | re.M)
_DAEMON_LOCALPARTS = frozenset({"mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster"})
_PRECEDENCE_AUTO = frozenset({"bulk", "junk", "auto_reply", "list"})
_FALSE_VALUES = frozenset({"", "no", "false", "0", "off"})
# Bounce evidence in the text is only looked for near the top of a long body.
_BODY_SCAN_LIMIT = 200_000


@dataclass(frozen=True, slots=True)
class AutoInfo:
    """What the headers and structure say about automatic mail."""

    auto_submitted: str | None
    is_bounce: bool
    bounced_message_ids: tuple[str, ...]
    is_list_mail: bool
    loop_marker: str | None
    machine_sender: str | None = None
    """Why nobody should answer it automatically, though a person may have written it."""


def _value(headers: RawHeaders, name: str) -> str:
    raw = headers.first(name)
    return single_line(unfold(raw), 200).lower() if raw is not None else ""


_COMMENT_RE = re.compile(r"\([^()]*\)")


def _token(value: str) -> str:
    """First token of a header value, without parameters or (comments), wherever they are."""
    for _ in range(3):  # comments nest; three levels is more than any mailer writes
        value = _COMMENT_RE.sub(" ", value)
    # A comment left open runs to the end of the value.
    return value.split("(", 1)[0].split(";", 1)[0].strip()


def classify_automatic(
    headers: RawHeaders,
    *,
    content_type: str,
    report_type: str,
    body: BodyResult,
    from_addr: Address | None,
    subject: str,
    own_message_id: str,
    own_loop_header_value: str | None,
) -> AutoInfo:
    """Decide auto-submitted, bounce, list and loop status of one mail."""
    bounce_subject = _BOUNCE_SUBJECT_RE.search(subject) is not None
    is_report = content_type == "multipart/report"
    is_dsn = is_report and report_type == "delivery-status"
    localpart = from_addr.email.split("@", 1)[0] if from_addr else ""
    from_daemon = localpart in _DAEMON_LOCALPARTS and bounce_subject
    # The topmost Return-Path is the one the delivering server wrote; older ones
    # further down (a forwarded or re-sent mail) say nothing about this delivery.
    return_path = headers.first("return-path")
    empty_return_path = return_path is not None and unfold(return_path).replace(" ", "") == "<>"
    null_sender_dsn = empty_return_path and (body.has_delivery_status or bounce_subject)
    is_bounce = is_dsn or from_daemon or null_sender_dsn

    bounced: list[str] = []
    if is_bounce:
        candidates = list(body.returned_ids)
        if not candidates:
            text = body.full_text[:_BODY_SCAN_LIMIT]
            candidates = [m.group(1) for m in _BODY_MESSAGE_ID_RE.finditer(text)]
        for message_id in candidates:
            if message_id != own_message_id and message_id not in bounced:
                bounced.append(message_id)

    is_mdn = (is_report and report_type == "disposition-notification") or body.has_mdn
    auto = _auto_submitted(headers, subject, is_mdn=is_mdn)
    if auto is None and is_bounce:
        auto = "bounce"
    # RFC 3834: no automatic answer to an empty envelope sender or a mail
    # system's own mailbox. The mail may still be a real complaint (a small
    # shop's postmaster writes too): it is kept and may open a ticket.
    machine_sender = None
    if empty_return_path:
        machine_sender = "return-path:<>"
    elif localpart in _DAEMON_LOCALPARTS:
        machine_sender = f"from:{localpart}"

    precedence = _token(_value(headers, "precedence"))
    is_list = precedence == "list" or any(
        headers.has(name) for name in ("list-id", "list-unsubscribe", "list-post")
    )
    return AutoInfo(
        auto_submitted=auto,
        is_bounce=is_bounce,
        bounced_message_ids=tuple(bounced),
        is_list_mail=is_list,
        loop_marker=_loop_marker(headers, own_loop_header_value),
        machine_sender=machine_sender,
    )


def _auto_submitted(headers: RawHeaders, subject: str, *, is_mdn: bool) -> str | None:
    """The first of the signs of automatic mail that fires, named, or None."""
    # Read receipts first: they often also carry Auto-Submitted, but callers want to
    # tell them apart from vacation replies.
    if is_mdn:
        return "mdn"
    auto_submitted = _token(_value(headers, "auto-submitted"))
    if auto_submitted and auto_submitted != "no":
        return auto_submitted[:40]
    # X-Autoreply / X-Autorespond are only ever set by responders, so they suffice alone.
    # X-Auto-Response-Suppress is also put on ordinary Outlook and Exchange mail, so it
    # only counts together with an auto-reply subject.
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if headers.has(name) and _token(_value(headers, name)) not in _FALSE_VALUES:
            return name
    if headers.has("x-auto-response-suppress") and _AUTO_REPLY_SUBJECT_RE.search(subject):
        return "x-auto-response-suppress"
    return _bulk_or_generated(headers)


def _bulk_or_generated(headers: RawHeaders) -> str | None:
    precedence = _token(_value(headers, "precedence"))
    if precedence in _PRECEDENCE_AUTO:
        return f"precedence:{precedence}"
    if headers.has("x-autogenerated"):
        return "x-autogenerated"
    mailer = _value(headers, "x-mailer")
    if mailer and _VACATION_MAILER_RE.search(mailer):
        return "x-mailer:vacation"
    return None


def _loop_marker(headers: RawHeaders, own_value: str | None) -> str | None:
    values = [single_line(unfold(v), 200) for v in headers.all("x-loop")]
    values = [v for v in values if v]
    if not values:
        return None
    if own_value is not None:
        wanted = own_value.strip().lower()
        for value in values:
            if value.lower() == wanted:
                return value
    return values[0]
