"""Headers of our outgoing mail, built so that customer text cannot inject anything (pure).

Everything here takes values and returns values: no clock, no I/O.

Customer-supplied text (a subject, a display name) is treated as literal
text. :func:`clean_header_text` unfolds it, removes control characters and
drops RFC 2047 encoded-word syntax, because Python's header parser *decodes*
encoded words in the values it is given: ``=?utf-8?b?RXZpbA0KQmNjOiB4QHk=?=``
would otherwise turn into ``Evil\\r\\nBcc: x@y`` inside our own header.

Loop prevention (RFC 3834) on our mail:

- ``Auto-Submitted: auto-replied`` on acknowledgements (they answer a
  customer's mail), ``auto-generated`` on every other automatic mail
  (assignment and escalation notices); none on mail a person wrote (an
  agent's reply relayed to the customer).
- ``X-Auto-Response-Suppress: All`` on automatic mail, so Exchange and
  Outlook do not answer it with out-of-office replies.
- ``X-Loop: <loop value>`` on all of our mail: intake recognises its own mail
  coming back by it.
- ``Precedence: bulk`` is deliberately *not* sent: it was never standardised,
  RFC 3834 discourages it in favour of Auto-Submitted, and large providers
  treat it as a bulk-mail (spam) signal, which acknowledgements must not
  look like.

Our headers are rendered from checked parts (:class:`_Rendered`), not parsed
from text: Message-ID, In-Reply-To and References are folded at spaces and
never RFC 2047-encoded (the standard library encodes a long Message-ID as an
encoded word, which breaks threading in every mail client), and non-ASCII
names and subjects become base64 encoded words.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message, MIMEPart
from email.policy import SMTP, EmailPolicy, Policy
from email.utils import format_datetime, formataddr
from typing import Any, Protocol, cast

__all__ = [
    "MailFields",
    "build_message",
    "clean_header_text",
    "clean_message_id",
    "envelope_recipients",
    "envelope_sender",
    "format_address",
    "loop_headers",
    "normalise_email",
    "parse_address",
]

MAX_DISPLAY_NAME = 78
"""Display names are capped at this many characters (a customer can send 10,000)."""
MAX_SUBJECT = 250
MAX_REFERENCES = 20
"""References keeps the first (the thread root) and the most recent ids, RFC 5322 style."""

# C0 and C1 controls, DEL, the Unicode line and paragraph separators, byte order mark
# and the bidi overrides and isolates used to disguise text: never in a header.
_HEADER_JUNK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
# Lenient on purpose (spaces inside, any charset, any encoding letter): Python's
# header parser is lenient too, and anything it might decode has to go.
_ENCODED_WORD = re.compile(r"=\?[^?]*\?[^?]*\?.*?\?=", re.DOTALL)
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_DOMAIN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*")
# A msg-id as we accept it on output: printable ASCII, one @, no brackets or spaces inside.
_MESSAGE_ID = re.compile(r"<[!-;=?A-~]{1,250}@[!-;=?A-~]{1,250}>")
_MESSAGE_ID_IN_TEXT = re.compile(r"<[^<>\s]+>")
_EXTRA_HEADER_NAME = re.compile(r"Auto-Submitted|X-[A-Za-z0-9-]{1,60}", re.IGNORECASE)
_AUTO_REPLIED_KINDS = frozenset({"acknowledgement"})
# 45 bytes of UTF-8 are 60 characters of base64: with "=?utf-8?b?" and "?=" an
# encoded word stays within RFC 2047's 75 characters.
_ENCODED_WORD_BYTES = 45
_MAX_7BIT_LINE = 998  # RFC 5322's limit, CRLF not counted
# The two shapes format_address stores: a bare address, and a name (quoted when it
# holds specials) before <address>.
_STORED_BARE = re.compile(r'[^\s<>"(),;:]+@[^\s<>"(),;:]+')
_STORED_NAMED = re.compile(
    r'(?:"(?P<quoted>(?:[^"\\]|\\.)*)"|(?P<plain>[^"<>(),;:@\\]+)) <(?P<email>[^\s<>"]+)>'
)
_QUOTED_PAIR = re.compile(r"\\(.)")
# A display name that Address would print as it is and parse back unchanged: words
# of letters and digits (any script) joined by one space, hyphen or apostrophe.
_PLAIN_NAME = re.compile(r"[^\W_]+(?:[ '-][^\W_]+)*")


def clean_header_text(value: str, max_length: int = 200) -> str:
    """``value`` as one line of literal text, safe to put into a header.

    Line breaks, control and bidi-override characters and whitespace runs
    become one space (this also unfolds folded text); lone surrogates become
    U+FFFD; RFC 2047 encoded words are dropped and any remaining ``=?`` is
    broken up, so nothing can be decoded into something else; the result is
    capped at ``max_length`` characters.
    """
    # A space, not nothing: "a\x00b" must not glue two words into one.
    value = _HEADER_JUNK.sub(" ", value)
    value = _SURROGATE.sub("\ufffd", value)
    # Replaced by a space, not removed: removal could glue the remains of two
    # encoded words into a new one.
    previous = None
    while previous != value:
        previous, value = value, _ENCODED_WORD.sub(" ", value)
    value = value.replace("=?", "= ?")
    value = _WHITESPACE.sub(" ", value).strip()
    if len(value) > max_length:
        value = value[:max_length].rstrip()
    return value


def normalise_email(email: str) -> str:
    """A plain address checked for sending: ``local@domain``, domain lower-cased, IDNA-encoded.

    Raises ValueError for a line break or control character, no or several
    ``@``, whitespace, quoted or non-ASCII local parts (we do not send with
    SMTPUTF8), and syntax a mail server would refuse anyway.
    """
    if any(char in email for char in "\r\n\x00"):
        raise ValueError("an email address must not contain line breaks")
    email = email.strip(" \t")
    if not email or any(char.isspace() or not char.isprintable() for char in email):
        raise ValueError("an email address must not contain spaces or control characters")
    if email.count("@") != 1:
        raise ValueError("an email address has exactly one @")
    local, domain = email.split("@")
    if not local.isascii():
        raise ValueError("non-ASCII local parts are not supported")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError("the domain of the address is not valid") from None
    if len(local) > 64 or not _LOCAL_PART.fullmatch(local):
        raise ValueError("the local part of the address is not valid")
    if len(domain) > 253 or not _DOMAIN.fullmatch(domain):
        raise ValueError("the domain of the address is not valid")
    return f"{local}@{domain}"


@functools.lru_cache(maxsize=4096)
def format_address(name: str, email: str) -> str:
    """``Name <local@domain>`` with the display name sanitised and quoted as needed.

    The address is checked by :func:`normalise_email` (ValueError when it is
    not acceptable). The display name goes through :func:`clean_header_text`
    and :class:`email.headerregistry.Address`, which quotes specials; the
    result is parsed back and must give the same name and address, so what we
    store is exactly what the header will say. A name that does not survive
    that round trip is dropped rather than sent in a mangled form. Non-ASCII
    names are RFC 2047-encoded when the header is written.

    Names of letters and digits in words (the vast majority) need neither
    quoting nor the round trip, which costs about 0.4 ms per address; results
    are cached, as the same agents and customers come back.
    """
    addr_spec = normalise_email(email)
    display_name = clean_header_text(name, MAX_DISPLAY_NAME)
    if display_name and _PLAIN_NAME.fullmatch(display_name):
        return f"{display_name} <{addr_spec}>"
    if display_name:
        formatted = str(Address(display_name=display_name, addr_spec=addr_spec))
        try:
            if parse_address(formatted) == (display_name, addr_spec):
                return formatted
        except ValueError:
            pass
    return str(Address(addr_spec=addr_spec))


def parse_address(value: str) -> tuple[str, str]:
    """``(display name, address)`` of one formatted address; ValueError unless exactly one."""
    if any(char in value for char in "\r\n\x00"):
        raise ValueError("an address must not contain line breaks")
    header = _POLICY.header_factory("To", value)
    addresses: tuple[Address, ...] = getattr(header, "addresses", ())
    if len(addresses) != 1 or header.defects:
        raise ValueError("expected exactly one well-formed address")
    address = addresses[0]
    return str(address.display_name), normalise_email(str(address.addr_spec))


def clean_message_id(value: str) -> str | None:
    """``value`` stripped when it is one acceptable ``<id@domain>`` msg-id, else None."""
    value = value.strip()
    return value if _MESSAGE_ID.fullmatch(value) else None


def _clean_references(values: Iterable[str]) -> list[str]:
    ids: list[str] = []
    for value in values:
        for candidate in _MESSAGE_ID_IN_TEXT.findall(value):
            message_id = clean_message_id(candidate)
            if message_id is not None and message_id not in ids:
                ids.append(message_id)
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return ids


def loop_headers(kind: str, *, automatic: bool, loop_value: str) -> dict[str, str]:
    """The loop-prevention headers of one of our mails (see the module docstring)."""
    headers = {"X-Loop": clean_header_text(loop_value, 200)}
    if automatic:
        headers["Auto-Submitted"] = (
            "auto-replied" if kind in _AUTO_REPLIED_KINDS else "auto-generated"
        )
        headers["X-Auto-Response-Suppress"] = "All"
    return headers


class MailFields(Protocol):
    """What :func:`build_message` reads; an ``OutboxMail`` row has all of it."""

    @property
    def message_id(self) -> str: ...
    @property
    def from_address(self) -> str: ...
    @property
    def to_addresses(self) -> Sequence[Any]: ...
    @property
    def cc(self) -> Sequence[Any]: ...
    @property
    def subject(self) -> str: ...
    @property
    def body_text(self) -> str: ...
    @property
    def body_html(self) -> str | None: ...
    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def references(self) -> Sequence[Any]: ...
    @property
    def extra_headers(self) -> Mapping[str, Any]: ...
    @property
    def created_at(self) -> datetime: ...


def build_message(mail: MailFields) -> EmailMessage:
    """The MIME message for ``mail``, with CRLF line endings (``email.policy.SMTP``).

    Every header value is re-checked here, not only when the row was written:
    addresses are split and re-validated, names and the subject re-cleaned,
    msg-ids re-validated, and extra headers limited to ``Auto-Submitted`` and
    ``X-*`` names; headers are then rendered from those checked parts. Raises
    ValueError when the row cannot become a valid message (a bad Message-ID or
    address), which the sender treats as a permanent failure.
    """
    message_id = clean_message_id(mail.message_id)
    if message_id is None:
        raise ValueError("the outbox row has no valid Message-ID")
    if not mail.to_addresses:
        raise ValueError("the outbox row has no recipient")

    message = EmailMessage(policy=_POLICY)
    message["Message-ID"] = _Rendered("Message-ID", message_id, [message_id])
    date = format_datetime(mail.created_at.astimezone(UTC))
    message["Date"] = _Rendered("Date", date, date.split(" "))
    message["From"] = _address_header("From", [mail.from_address])
    message["To"] = _address_header("To", mail.to_addresses)
    if mail.cc:
        message["Cc"] = _address_header("Cc", mail.cc)
    message["Subject"] = _unstructured("Subject", clean_header_text(mail.subject, MAX_SUBJECT))
    in_reply_to = clean_message_id(mail.in_reply_to) if mail.in_reply_to else None
    if in_reply_to is not None:
        message["In-Reply-To"] = _Rendered("In-Reply-To", in_reply_to, [in_reply_to])
    references = _clean_references(str(value) for value in mail.references)
    if references:
        message["References"] = _Rendered("References", " ".join(references), references)
    for name, value in mail.extra_headers.items():
        if not _EXTRA_HEADER_NAME.fullmatch(name):
            raise ValueError(f"header {name!r} may not be set through extra_headers")
        text = clean_header_text(str(value), 200)
        if text:
            message[name] = _unstructured(name, text)
    _set_body(message, _clean_body(mail.body_text), _clean_body(mail.body_html or "") or None)
    return message


def envelope_sender(message: EmailMessage) -> str:
    """The SMTP sender (MAIL FROM) of ``message``: the address in its From header."""
    addresses: tuple[Address, ...] = getattr(message.get("From"), "addresses", ())
    if len(addresses) != 1:
        raise ValueError("the message needs exactly one From address")
    return str(addresses[0].addr_spec)


def envelope_recipients(message: EmailMessage) -> list[str]:
    """The SMTP recipients of ``message``: the addresses of To and Cc (we never use Bcc)."""
    recipients: list[str] = []
    seen: set[str] = set()
    for name in ("To", "Cc"):
        header = message.get(name)
        for address in getattr(header, "addresses", ()):
            email = str(address.addr_spec)
            if email.lower() not in seen:
                seen.add(email.lower())
                recipients.append(email)
    return recipients


class _Rendered(str):
    """A header value rendered from checked parts; the policy writes it as it is.

    ``EmailPolicy.header_store_parse`` keeps a value whose ``name`` matches
    and asks it to ``fold`` itself. That skips the standard parser, which is
    slow and decodes encoded words in what it is given, and its folder, which
    RFC 2047-encodes long Message-IDs. ``tokens`` are joined with single
    spaces and folded between tokens only; callers pass tokens without
    whitespace or control characters (msg-ids, words of cleaned text, encoded
    words, formatted addresses).
    """

    name: str
    addresses: tuple[Address, ...]
    tokens: tuple[str, ...]

    def __new__(
        cls, name: str, text: str, tokens: Sequence[str], addresses: Sequence[Address] = ()
    ) -> _Rendered:
        self = super().__new__(cls, text)
        self.name = name
        self.addresses = tuple(addresses)
        self.tokens = tuple(token for token in tokens if token)
        return self

    def fold(self, *, policy: Policy) -> str:
        """``Name: tokens``, a line break before a token that would pass the line length."""
        limit = policy.max_line_length or 998
        head = f"{self.name}:"
        lines = [head]
        for token in self.tokens:
            if len(lines[-1]) + 1 + len(token) > limit and lines[-1] != head:
                lines.append("")
            lines[-1] += " " + token
        return policy.linesep.join(lines) + policy.linesep


def _unstructured(name: str, text: str) -> _Rendered:
    # ``text`` comes from clean_header_text: one line, single spaces, no "=?".
    return _Rendered(name, text, text.split(" ") if text.isascii() else _encoded_words(text))


def _encoded_words(text: str) -> list[str]:
    """``text`` as base64 encoded words (RFC 2047) of at most 72 characters each."""
    words: list[str] = []
    chunk = ""
    size = 0
    for char in text:
        width = len(char.encode("utf-8"))
        if size + width > _ENCODED_WORD_BYTES:
            words.append(_encoded_word(chunk))
            chunk, size = "", 0
        chunk += char
        size += width
    if chunk:
        words.append(_encoded_word(chunk))
    return words


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _address_header(name: str, values: Sequence[Any]) -> _Rendered:
    # Each stored address is split, re-validated and rendered again from its
    # parts: whatever the stored text says, only a clean name and a checked
    # address reach the header.
    tokens: list[str] = []
    texts: list[str] = []
    addresses: list[Address] = []
    for index, value in enumerate(values):
        display_name, email = _split_stored(str(value))
        display_name = clean_header_text(display_name, MAX_DISPLAY_NAME)
        email = normalise_email(email)
        if not display_name:
            parts = [email]
        elif display_name.isascii():
            parts = [formataddr((display_name, email))]  # quotes specials, escapes \ and "
        else:
            parts = [*_encoded_words(display_name), f"<{email}>"]
        if index < len(values) - 1:
            parts[-1] += ","
        tokens.extend(parts)
        local, domain = email.split("@")
        address = Address(display_name=display_name, username=local, domain=domain)
        addresses.append(address)
        texts.append(str(address))
    return _Rendered(name, ", ".join(texts), tokens, addresses)


def _split_stored(value: str) -> tuple[str, str]:
    """``(name, address)`` of one stored address.

    The two shapes :func:`format_address` writes are read with a regex (the
    full parser costs a tenth of a millisecond per address); anything else
    goes through :func:`parse_address`.
    """
    if any(char in value for char in "\r\n\x00"):
        raise ValueError("an address must not contain line breaks")
    if _STORED_BARE.fullmatch(value):
        return "", value
    match = _STORED_NAMED.fullmatch(value)
    if match is None:
        return parse_address(value)
    quoted = match["quoted"]
    name = match["plain"] if quoted is None else _QUOTED_PAIR.sub(r"\1", quoted)
    return name, match["email"]


_BODY_JUNK = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _clean_body(text: str) -> str:
    # Bodies are not headers, but a NUL or a bare CR still has no place on the wire.
    if not text:
        return ""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _BODY_JUNK.sub("", text)
    text = _SURROGATE.sub("\ufffd", text)
    return text if text.endswith("\n") else text + "\n"


def _set_body(message: EmailMessage, text: str, html: str | None) -> None:
    """A text/plain body, or multipart/alternative with an HTML part after it.

    Written directly rather than with ``set_content``, which re-parses its
    own Content-Type several times and was two thirds of the time spent
    building a message.
    """
    message["MIME-Version"] = _Rendered("MIME-Version", "1.0", ["1.0"])
    if html is None:
        _set_text(message, text, "plain")
        return
    # Random, so no body can contain the boundary, by chance or on purpose.
    boundary = "=_cmp_" + secrets.token_hex(16)
    content_type = f'multipart/alternative; boundary="{boundary}"'
    message["Content-Type"] = _Rendered("Content-Type", content_type, content_type.split(" "))
    parts: list[Message[str, str] | str] = []
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMEPart(policy=_POLICY)
        _set_text(part, body, subtype)
        parts.append(part)
    message.set_payload(parts)


def _set_text(part: MIMEPart, text: str, subtype: str) -> None:
    content_type = f'text/{subtype}; charset="utf-8"'
    encoding, payload = _transfer_encode(text)
    part["Content-Type"] = _Rendered("Content-Type", content_type, content_type.split(" "))
    part["Content-Transfer-Encoding"] = _Rendered("Content-Transfer-Encoding", encoding, [encoding])
    part.set_payload(payload)


def _transfer_encode(text: str) -> tuple[str, str]:
    """The Content-Transfer-Encoding and encoded body: 7-bit clean, so any relay takes it."""
    if text.isascii() and all(len(line) <= _MAX_7BIT_LINE for line in text.split("\n")):
        return "7bit", text
    data = text.encode("utf-8")
    non_ascii = sum(byte > 0x7F for byte in data)
    if non_ascii * 3 > len(data):
        # Mostly non-Latin text: base64 (4/3) is far shorter than quoted-printable (3x).
        return "base64", base64.encodebytes(data).decode("ascii")
    return "quoted-printable", binascii.b2a_qp(data, istext=True).decode("ascii")


class _CachingHeaderRegistry(HeaderRegistry):
    """A registry that builds each header class once.

    The standard registry creates a new class with ``type()`` on every lookup;
    a message needs about thirty lookups, a third of the time spent building it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        found = self._classes.get(key)
        if found is None:
            found = self._classes[key] = super().__getitem__(name)
        return found


def _policy() -> EmailPolicy:
    registry = _CachingHeaderRegistry()
    # 7bit: non-ASCII bodies go quoted-printable or base64, so no relay needs 8BITMIME.
    return cast(EmailPolicy, SMTP.clone(header_factory=registry, cte_type="7bit"))


# Pure and cheap to build (no I/O); shared because it holds nothing but the mapping.
_POLICY = _policy()
