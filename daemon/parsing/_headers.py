"""Robust header access: policy.default first, the raw value decoded by hand when it fails."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from daemon.parsing._charset import decode_header_bytes
from daemon.parsing._clean import has_surrogates, single_line
from daemon.parsing.model import Address

MAX_SUBJECT = 998
MAX_NAME = 200
_MAX_EMAIL = 320
_MAX_ID = 998
# Enough for any honest header; bounds the work on a hostile one.
_MAX_RAW_HEADER = 64 * 1024
# policy.default's parser is quadratic on some hostile values ('"a"a"a...'); longer
# values than this are decoded by the linear fallbacks instead.
_MAX_POLICY_VALUE = 2048
_MAX_ADDRESSES = 1000
_MAX_REFERENCES = 500

_FOLD_RE = re.compile(r"\r?\n(?=[ \t])")
_DOT_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_SIMPLE_ADDRESS_RE = re.compile(
    r"\s*(?:"
    r"(?:\"(?P<quoted>[^\"\\\r\n]*)\"|(?P<atoms>[A-Za-z0-9!#$%&'*+/=?^_`{|}~ \t-]*?))"
    rf"\s*<(?P<addr>{_DOT_ATOM}@{_DOT_ATOM})>"
    rf"|(?P<bare>{_DOT_ATOM}@{_DOT_ATOM})"
    r")\s*\Z"
)
# RFC 2047 encoded word. Broken mailers put spaces and a stray '?' inside, so the text
# part is lenient; it stops at the fourth '?' so that a header full of unclosed words
# cannot make the scan quadratic.
_ENCODED_WORD_RE = re.compile(
    r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*(?:\?(?!=)[^?]*){0,3})\?=", re.DOTALL
)
_MSG_ID_RE = re.compile(r"<([^<>]*)>")
_ID_JUNK_RE = re.compile(r"[\s\x00-\x1f\x7f]+")
# Whitespace, controls, brackets and quote marks are never part of a usable address
# (an apostrophe is: o'brien@example.ie).
_EMAIL_JUNK_RE = re.compile(r'[\s\x00-\x1f\x7f<>"]+')


class RawHeaders:
    """The message's headers as they arrived, indexed by lower-cased name."""

    __slots__ = ("_hint", "_msg", "_values")

    def __init__(self, msg: Message, charset_hint: str | None = None) -> None:
        self._msg = msg
        self._hint = charset_hint
        self._values: dict[str, list[str]] = {}
        try:
            items = list(msg.raw_items())
        except Exception:  # a broken message still gets parsed
            items = []
        for name, value in items:
            if not isinstance(name, str) or not isinstance(value, str):
                continue
            self._values.setdefault(name.strip().lower(), []).append(value[:_MAX_RAW_HEADER])

    def all(self, name: str) -> list[str]:
        """Every raw value of header ``name`` (case-insensitive), in order."""
        return self._values.get(name.lower(), [])

    def first(self, name: str) -> str | None:
        """The first raw value of header ``name``, or None when absent."""
        values = self._values.get(name.lower())
        return values[0] if values else None

    def has(self, name: str) -> bool:
        """Whether header ``name`` is present at all."""
        return name.lower() in self._values

    def text(self, name: str, defects: list[str]) -> str | None:
        """Decoded, still unsanitised text of the first ``name`` header, or None if absent.

        policy.default does the decoding; when it raises, leaves encoded words behind,
        or the raw value has 8-bit bytes, the raw value is decoded by hand.
        """
        raw = self.first(name)
        if raw is None:
            return None
        if raw.isascii() and "=?" not in raw:
            # Nothing to decode: policy.default would return the same text, slower.
            return unfold(raw)
        if not has_surrogates(raw) and len(raw) <= _MAX_POLICY_VALUE:
            try:
                text = str(self._msg.policy.header_fetch_parse(name, raw))
            except Exception:  # malformed headers make policy.default raise
                defects.append(f"{name}: policy.default could not parse it; decoded by hand")
            else:
                if not _needs_own_decoding(text, raw):
                    return text
        return decode_raw_text(raw, name, defects, self._hint)

    def addresses(self, name: str, defects: list[str]) -> list[Address]:
        """Addresses of every ``name`` header; lower-cased emails, decoded display names."""
        found: list[Address] = []
        for raw in self.all(name):
            found.extend(self._addresses_of(name, raw, defects))
            if len(found) >= _MAX_ADDRESSES:
                defects.append(f"{name}: more than {_MAX_ADDRESSES} addresses; rest ignored")
                return found[:_MAX_ADDRESSES]
        return found

    def _addresses_of(self, name: str, raw: str, defects: list[str]) -> list[Address]:
        found = self._parse_addresses(name, raw, defects)
        return _angle_address_wins(name, raw, found, defects)

    def _parse_addresses(self, name: str, raw: str, defects: list[str]) -> list[Address]:
        simple = _simple_address(raw)
        if simple is not None:
            return _to_addresses([simple], self._hint)
        encoded = _encoded_name_address(raw)
        if encoded is not None:
            # An encoded-word name with specials inside (``=?q?a@b.c?=``) must not
            # become the address; the angle-bracketed one is the address.
            phrase, addr = encoded
            display = decode_raw_text(phrase, name, defects, self._hint) if phrase else ""
            return _to_addresses([(display, addr)], self._hint)
        if not has_surrogates(raw) and len(raw) <= _MAX_POLICY_VALUE:
            try:
                # An AddressHeader, though typeshed calls the result str.
                parsed: Any = self._msg.policy.header_fetch_parse(name, raw)
                pairs = [(a.display_name, a.addr_spec) for a in parsed.addresses]
            except Exception:  # malformed headers make policy.default raise
                defects.append(f"{name}: policy.default could not parse it; parsed by hand")
            else:
                names_ok = not any(_needs_own_decoding(display, raw) for display, _ in pairs)
                if names_ok and (pairs or "@" not in raw):
                    if "(" in raw and any(not display for display, _ in pairs):
                        pairs = _names_from_comments(raw, pairs)
                    return _to_addresses(_split_bare_name(raw, pairs), self._hint)
        return _to_addresses(_fallback_pairs(raw, name, defects, self._hint), self._hint)


# Longer than any real mailbox; past it the angle check cannot be made cheaply,
# and an address header that long is an attack, not a customer.
_MAX_MAILBOX_SCAN = 16_384


def _mailbox_parts(raw: str) -> tuple[str, list[str]]:  # noqa: PLR0912 - one scanner loop
    """The text outside quotes, comments and angle brackets, and each ``<...>`` content.

    One linear pass in RFC 5322's terms: quoted strings and (nested) comments
    hide everything in them, backslash escapes the next character, and the
    inside of an angle address is kept whole (a quoted local part included).
    """
    phrase: list[str] = []
    angles: list[str] = []
    angle: list[str] | None = None
    in_quote = escaped = False
    depth = 0
    for char in raw:
        if escaped:
            escaped = False
            if angle is not None:
                angle.append(char)
        elif char == "\\" and (in_quote or depth):
            escaped = True
        elif angle is not None:
            if char == ">":
                angles.append("".join(angle))
                angle = None
            else:
                angle.append(char)
        elif in_quote:
            in_quote = char != '"'
        elif depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == '"':
            in_quote = True
        elif char == "(":
            depth = 1
        elif char == "<":
            angle = []
        else:
            phrase.append(char)
    return "".join(phrase), angles


_ADDRESS_LIKE_RE = re.compile(r"[^\s@,;:]+@[^\s@,;:]+")


def _angle_address_wins(
    name: str, raw: str, found: list[Address], defects: list[str]
) -> list[Address]:
    """A mailbox whose display text is itself an address: the angle address wins.

    ``carla@shop.example <mallory@evil.example>`` is Mallory's mail to every mail
    server and DMARC check (they read the address in angle brackets), while
    lenient parsers, the standard library's among them, read Carla's. A sender
    must be who the mail system vouched for, so the angle address is taken; a
    mailbox with several angle addresses, or too long to check, yields none.
    """
    if len(found) != 1:
        return found
    problem = None
    if len(raw) > _MAX_MAILBOX_SCAN:
        problem = f"a single address over {_MAX_MAILBOX_SCAN} characters"
    else:
        phrase, angles = _mailbox_parts(unfold(raw))
        angles = [angle for angle in angles if angle.strip()]  # "<>" names nobody
        if len(angles) > 1:
            problem = "several addresses in angle brackets in one mailbox"
        elif not angles or not _ADDRESS_LIKE_RE.search(phrase):
            return found  # an ordinary name, quoted or not, in front of the address
        else:
            angle = next(iter(_to_addresses([("", angles[0])], None)), None)
            if angle is None or not _is_complete_address(angle.email):
                problem = "the address in angle brackets is unusable"
            elif angle.email != found[0].email:
                defects.append(
                    f"{name}: the text before <{angle.email}> looks like another address; "
                    "the address in angle brackets is used"
                )
                return [angle]
    if problem is None:
        return found
    defects.append(f"{name}: {problem}; none used")
    return []


def _is_complete_address(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain)


_ENCODED_NAME_ADDRESS_RE = re.compile(
    r"^(?P<phrase>[^<>\"]*=\?[^<>\"]*)<(?P<addr>[^<>\s@,;:]+@[^<>\s,;:]+)>\s*$"
)


def _encoded_name_address(raw: str) -> tuple[str, str] | None:
    """``=?..?= <a@b.c>``: one angle address after a name made of encoded words."""
    match = _ENCODED_NAME_ADDRESS_RE.match(raw.strip())
    if match is None:
        return None
    return match.group("phrase").strip(), match.group("addr")


def _simple_address(raw: str) -> tuple[str, str] | None:
    """``Name <a@b.c>``, ``"Name" <a@b.c>`` or ``a@b.c`` in plain ASCII, else None.

    The common case, recognised exactly as policy.default would parse it, without
    its cost; everything else goes through policy.default.
    """
    if len(raw) > 400 or not raw.isascii() or "=?" in raw:
        return None
    match = _SIMPLE_ADDRESS_RE.match(raw)
    if match is None:
        return None
    name = match.group("quoted") or match.group("atoms") or ""
    return " ".join(name.split()), match.group("addr") or match.group("bare")


def unfold(raw: str) -> str:
    """Join folded header lines; any CR/LF left over becomes a space."""
    return _FOLD_RE.sub("", raw).replace("\r", " ").replace("\n", " ")


def _needs_own_decoding(text: str, raw: str) -> bool:
    """Whether policy.default's decoding of ``raw`` lost information.

    It leaves encoded words with unknown charsets as they are, and replaces what the
    declared charset cannot decode (GB2312 labels on GBK text, Shift_JIS under an
    ISO-2022-JP label) with U+FFFD; the hand decoder retries those charsets.
    """
    return (
        has_surrogates(text)
        or _ENCODED_WORD_RE.search(text) is not None
        or ("\ufffd" in text and "\ufffd" not in raw)
    )


def _raw_to_str(raw: str, name: str, defects: list[str], hint: str | None) -> str:
    """Turn surrogate-escaped 8-bit header bytes back into real characters."""
    if not has_surrogates(raw):
        return raw
    defects.append(f"{name}: raw 8-bit bytes in header; charset guessed")
    return decode_header_bytes(raw.encode("utf-8", "surrogateescape"), hint=hint)


def decode_raw_text(raw: str, name: str, defects: list[str], hint: str | None = None) -> str:
    """Decode an unstructured raw header value (RFC 2047 words, 8-bit bytes) by hand."""
    text = _raw_to_str(unfold(raw), name, defects, hint)
    if "=?" not in text:
        return text
    # make_header trusts the declared charsets and replaces what they cannot decode;
    # only its result without replacement characters is taken. decode_header is
    # quadratic on a long run of unclosed words, so long values skip it.
    decoded = ""
    if len(text) <= _MAX_POLICY_VALUE:
        try:
            decoded = str(make_header(decode_header(text)))
        except Exception:  # unknown charsets, bad base64, mixed 8-bit text
            decoded = ""
    if decoded and "\ufffd" not in decoded:
        return decoded
    return decode_encoded_words(text)


def decode_encoded_words(text: str) -> str:
    """Decode RFC 2047 encoded words leniently; undecodable words are kept as they were."""
    out: list[str] = []
    pos = 0
    previous_was_word = False
    for match in _ENCODED_WORD_RE.finditer(text):
        between = text[pos : match.start()]
        # Whitespace between two adjacent encoded words is not part of the text.
        if not (previous_was_word and not between.strip()):
            out.append(between)
        out.append(_decode_word(match))
        pos = match.end()
        previous_was_word = True
    out.append(text[pos:])
    return "".join(out)


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, payload = match.group(1), match.group(2).lower(), match.group(3)
    # RFC 2231 allows a language suffix: =?utf-8*de?q?...?=
    charset = charset.split("*", 1)[0]
    try:
        if encoding == "b":
            cleaned = re.sub(r"[^A-Za-z0-9+/]", "", payload)
            data = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
        else:
            data = binascii.a2b_qp(payload.encode("ascii", "replace"), header=True)
    except (ValueError, binascii.Error):
        return match.group(0)
    return decode_header_bytes(data, charset)


def _to_addresses(pairs: list[tuple[str, str]], hint: str | None) -> list[Address]:
    result: list[Address] = []
    for display, raw_addr in pairs:
        addr = raw_addr or ""
        if has_surrogates(addr):
            addr = decode_header_bytes(addr.encode("utf-8", "surrogateescape"), hint=hint)
        email = _EMAIL_JUNK_RE.sub("", addr).lower()[:_MAX_EMAIL]
        if not email or email == "@":
            continue
        name = display or ""
        if "=?" in name:
            name = decode_encoded_words(name)
        result.append(Address(email=email, name=single_line(name, MAX_NAME)))
    return result


def _fallback_pairs(
    raw: str, name: str, defects: list[str], hint: str | None
) -> list[tuple[str, str]]:
    text = _raw_to_str(unfold(raw), name, defects, hint)
    try:
        return [(display, addr) for display, addr in getaddresses([text]) if addr]
    except Exception:  # getaddresses on hostile input is best effort
        defects.append(f"{name}: no address could be parsed")
        return []


def _split_bare_name(raw: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Read ``Jane Doe jane@example.com`` (no angle brackets) as name plus address.

    The parser makes a quoted local part with spaces of it, which no mail server
    would accept; the writer evidently meant a display name.
    """
    if len(pairs) != 1 or "<" in raw or not any(c.isspace() or c == '"' for c in pairs[0][1]):
        return pairs
    tokens = unfold(raw).split()
    at = [index for index, token in enumerate(tokens) if "@" in token]
    if len(at) != 1 or at[0] != len(tokens) - 1:
        return pairs
    return [(" ".join(tokens[:-1]).strip('"'), tokens[-1])]


def _names_from_comments(raw: str, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Fill empty display names from old-style comments: ``a@b.example (Jane Doe)``."""
    try:
        by_addr = {addr.lower(): display for display, addr in getaddresses([unfold(raw)])}
    except Exception:  # comments are a nicety only
        return pairs
    return [(display or by_addr.get(addr.lower(), ""), addr) for display, addr in pairs]


def _clean_id(inner: str) -> str:
    if has_surrogates(inner):
        inner = decode_header_bytes(inner.encode("utf-8", "surrogateescape"))
    inner = single_line(_ID_JUNK_RE.sub("", inner), _MAX_ID - 2)
    # Bytes, not characters: ids are indexed, and an index entry has a size limit
    # (PostgreSQL: 2,704 bytes) that 996 non-ASCII characters would pass.
    encoded = inner.encode("utf-8")
    if len(encoded) > _MAX_ID - 2:
        inner = encoded[: _MAX_ID - 2].decode("utf-8", "ignore")
    return f"<{inner}>" if inner else ""


def message_ids(raw: str | None, *, single: bool = False) -> list[str]:
    """Angle-bracketed ids of a Message-ID, In-Reply-To or References value, in order.

    Junk between the ids is ignored. A value without brackets is accepted as one id
    (Message-ID) or as the whitespace-separated tokens that contain an ``@``.
    """
    if not raw:
        return []
    text = unfold(raw)
    ids: list[str] = []
    seen: set[str] = set()
    for match in _MSG_ID_RE.finditer(text):
        cleaned = _clean_id(match.group(1))
        if cleaned and cleaned not in seen:
            seen.add(cleaned)
            ids.append(cleaned)
            if single:
                return ids
    if not ids and "<" not in text and ">" not in text:
        tokens = text.split()
        candidates = tokens[:1] if single else [t for t in tokens if "@" in t]
        for token in candidates:
            cleaned = _clean_id(token)
            if cleaned and cleaned not in seen:
                seen.add(cleaned)
                ids.append(cleaned)
    if len(ids) > _MAX_REFERENCES:
        # The root and the most recent ancestors are what threading looks at.
        ids = ids[:1] + ids[-(_MAX_REFERENCES - 1) :]
    return ids


def parse_date(raw: str | None) -> datetime | None:
    """Timezone-aware datetime of a Date value; naive dates are taken as UTC."""
    if not raw:
        return None
    text = single_line(unfold(raw), 200)
    if not text:
        return None
    value: datetime | None = None
    try:
        value = parsedate_to_datetime(text)
    except (ValueError, TypeError, IndexError, OverflowError):
        try:
            # Some scripts write ISO 8601 dates.
            value = datetime.fromisoformat(text)
        except ValueError:
            return None
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    try:
        # Year 9999 at -23:59 is past the end of time once in UTC: no date, not a crash.
        value.astimezone(UTC)
    except OverflowError:
        return None
    return value
