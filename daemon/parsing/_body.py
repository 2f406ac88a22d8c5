"""The MIME tree walk: readable text, attachments and what a bounce carries back."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html as html_module
import io
import mimetypes
import quopri
import re
from dataclasses import dataclass, field
from email import policy as email_policy
from email.generator import BytesGenerator
from email.message import Message
from email.parser import BytesHeaderParser, BytesParser
from functools import cache
from typing import Literal

import inscriptis

from daemon.parsing._charset import decode_body_bytes, decode_header_bytes
from daemon.parsing._clean import clean_body, has_surrogates, single_line
from daemon.parsing._headers import RawHeaders, decode_encoded_words, message_ids, unfold
from daemon.parsing._policy import bound_mime_headers, parsing_policy
from daemon.parsing.model import Attachment

# Text beyond this many characters is cut from full_text (with a note); the quote
# stripping and the HTML converter only ever see the first _MAX_PROCESSED characters.
MAX_FULL_TEXT = 5_000_000
MAX_PROCESSED = 1_000_000
_MAX_DEPTH = 40
_MAX_PARTS = 2000
_MAX_FILENAME = 255

_UUE_CTES = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_DECODED_CTES = frozenset({"base64", "quoted-printable"} | _UUE_CTES)
_NESTED_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_RETURNED_HEADER_TYPES = frozenset({"text/rfc822-headers", "message/rfc822-headers"})
_CHARSET_PARAM_RE = re.compile(r"""charset\s*=\s*["']?([^\s;"']+)""", re.IGNORECASE)
_UU_BEGIN_RE = re.compile(r"^begin [0-7]{3,4} ([^\n]{1,255})\n", re.MULTILINE)
_UU_END_RE = re.compile(r"^end[ \t]*$", re.MULTILINE)
_FILENAME_BAD_RE = re.compile(r'[\x00-\x1f\x7f<>:"|?*]')
# Applied after trailing whitespace is gone, so it cannot backtrack over long runs.
_BLANK_LINES_RE = re.compile(r"\n{3,}")
_PREAMBLE_BOILERPLATE_RE = re.compile(
    r"multi-?part message in MIME format|MIME-encapsulated|MIME format|"
    r"your (?:mail )?(?:client|reader) does not|^\s*$",
    re.IGNORECASE,
)
_TAG_RE = re.compile(r"<[^<>]{0,10000}>")
_DROPPED_ELEMENTS = ("script", "style", "head")
# Preferred extensions where mimetypes lists several (its first is sometimes odd).
_PREFERRED_EXT = {
    "text/plain": ".txt",
    "text/html": ".html",
    "image/jpeg": ".jpg",
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
    "text/calendar": ".ics",
    "application/octet-stream": ".bin",
    "application/ms-tnef": ".dat",
}


@dataclass(slots=True)
class _Segment:
    """A piece of body text; "plain" text is already cleaned, "html" not yet converted."""

    kind: Literal["plain", "html"]
    text: str


@dataclass(slots=True)
class BodyResult:
    """What the MIME walk found: text, attachments and bounce evidence."""

    full_text: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    returned_ids: list[str] = field(default_factory=list)
    """Message-IDs of returned messages (message/rfc822 or text/rfc822-headers parts)."""
    has_delivery_status: bool = False
    has_mdn: bool = False
    defects: list[str] = field(default_factory=list)


def extract_body(msg: Message, charset_hint: str | None = None) -> BodyResult:
    """Walk ``msg``; never raises (a part that breaks is skipped with a defect).

    ``charset_hint`` is a charset declared somewhere in the mail, tried for text and
    file names that declare none.
    """
    walker = _Walker(charset_hint)
    try:
        segments = walker.walk(msg, 0)
    except RecursionError:
        walker.result.defects.append("MIME structure too deep; rest skipped")
        segments = []
    full_text = _assemble(segments, walker.result.defects)
    if not full_text:
        full_text = _preamble_text(msg)
    walker.result.full_text = full_text
    return walker.result


def _preamble_text(msg: Message) -> str:
    """Text before the first MIME boundary, for mails that put their only words there."""
    preamble = getattr(msg, "preamble", None)
    if not isinstance(preamble, str) or _PREAMBLE_BOILERPLATE_RE.search(preamble):
        return ""
    return clean_body(preamble).strip()[:MAX_FULL_TEXT]


class _Walker:
    def __init__(self, charset_hint: str | None) -> None:
        self.result = BodyResult()
        self._hint = charset_hint
        self._parts_seen = 0

    def walk(self, part: Message, depth: int) -> list[_Segment]:
        self._parts_seen += 1
        if depth > _MAX_DEPTH or self._parts_seen > _MAX_PARTS:
            if self._parts_seen == _MAX_PARTS + 1 or depth == _MAX_DEPTH + 1:
                self.result.defects.append("MIME tree too deep or too large; rest skipped")
            return []
        try:
            return self._walk(part, depth)
        except Exception as exc:  # one broken part must not lose the mail
            self.result.defects.append(f"MIME part skipped: {type(exc).__name__}")
            return []

    def _walk(self, part: Message, depth: int) -> list[_Segment]:
        ctype = _content_type(part)
        maintype = ctype.split("/", 1)[0]
        payload = part.get_payload()
        if isinstance(payload, list):
            children = [child for child in payload if isinstance(child, Message)]
            if maintype == "message":
                self._message_part(part, ctype, children)
                return []
            if ctype == "multipart/alternative":
                return self._alternative(children, depth)
            segments: list[_Segment] = []
            for child in children:
                segments.extend(self.walk(child, depth + 1))
            return segments
        return self._leaf(part, ctype, depth)

    def _alternative(self, children: list[Message], depth: int) -> list[_Segment]:
        # Every branch is walked so that inline images of the HTML branch are kept as
        # attachments; HTML is only converted later, for the branch that is chosen.
        options = [self.walk(child, depth + 1) for child in children]
        for segments in options:
            has_plain = any(s.kind == "plain" and s.text.strip() for s in segments)
            if has_plain and all(s.kind == "plain" for s in segments):
                return segments
        for segments in reversed(options):
            if any(s.text.strip() for s in segments):
                return segments
        return []

    def _leaf(self, part: Message, ctype: str, depth: int) -> list[_Segment]:
        maintype, _, subtype = ctype.partition("/")
        data = _payload_bytes(part, self.result.defects)
        if ctype in _NESTED_MESSAGE_TYPES:
            # A message/rfc822 whose body the parser could not take apart (e.g. base64).
            inner = BytesParser(policy=parsing_policy()).parsebytes(bound_mime_headers(data)[0])
            self._nested(part, ctype, inner, data)
            return []
        if ctype in _RETURNED_HEADER_TYPES:
            self._returned_headers(data)
            self._attach(part, ctype, data)
            return []
        disposition = _disposition(part)
        filename = _filename(part, self._hint)
        if maintype == "multipart":
            # A multipart without a usable boundary: its body is all there is to read.
            self.result.defects.append(f"{ctype} without parts read as text")
            maintype, subtype = "text", "plain"
        if disposition != "attachment" and maintype == "text":
            segments: list[_Segment] = []
            if subtype in {"plain", "html"}:
                text = self._decode_text(part, data)
                if subtype == "html":
                    segments = [_Segment("html", text)]
                else:
                    segments = [_Segment("plain", self._extract_uuencoded(clean_body(text)))]
            elif subtype in {"enriched", "richtext"}:
                text = _TAG_RE.sub("", self._decode_text(part, data))
                segments = [_Segment("plain", clean_body(text))]
            elif depth == 0 and filename is None:
                # The whole mail is one text part of an odd subtype: it is still the body.
                segments = [_Segment("plain", clean_body(self._decode_text(part, data)))]
            if segments:
                if filename is not None and depth > 0:
                    # An inline text file (Apple Mail sends attachments like this): it is
                    # shown in the body, as mail clients do, and kept as a file as well.
                    self._attach(part, ctype, data, filename)
                return segments
        self._attach(part, ctype, data, filename)
        return []

    def _decode_text(self, part: Message, data: bytes) -> str:
        if len(data) > MAX_FULL_TEXT * 4:
            data = data[: MAX_FULL_TEXT * 4]
            self.result.defects.append("text part larger than the full_text cap; cut")
        text, note = decode_body_bytes(data, _charset(part), self._hint)
        if note:
            self.result.defects.append(note)
        return text

    def _message_part(self, part: Message, ctype: str, children: list[Message]) -> None:
        if ctype in _NESTED_MESSAGE_TYPES:
            inner = children[0] if children else None
            self._nested(part, ctype, inner, None)
            return
        # message/delivery-status and friends: the parser splits them into header blocks.
        data = b"\n".join(_serialize(child) for child in children)
        self._attach(part, ctype, data)

    def _nested(self, part: Message, ctype: str, inner: Message | None, data: bytes | None) -> None:
        filename = _filename(part, self._hint)
        subject = ""
        if inner is not None:
            headers = RawHeaders(inner, self._hint)
            self.result.returned_ids.extend(message_ids(headers.first("message-id"), single=True))
            if data is None:
                data = _serialize(inner)
            subject = single_line(headers.text("subject", []) or "", 200)
            # A slash in a subject is text, not a path: keep both sides of it.
            subject = subject.replace("/", "_").replace("\\", "_")
        given = _sanitize_filename(filename or "")
        if given and "." in given.rsplit(" ", 1)[-1]:
            name = given  # the sender named the file, extension and all
        else:
            name = f"{given or _sanitize_filename(subject) or 'forwarded-message'}.eml"
        self._attach(part, ctype, data or b"", name)

    def _returned_headers(self, data: bytes) -> None:
        try:
            headers = BytesHeaderParser(policy=email_policy.compat32).parsebytes(data)
            value = headers.get("message-id")
        except Exception:  # evidence for a bounce, nothing more
            return
        if value is not None:
            self.result.returned_ids.extend(message_ids(str(value), single=True))

    def _attach(self, part: Message, ctype: str, data: bytes, filename: str | None = None) -> None:
        if ctype == "message/delivery-status":
            self.result.has_delivery_status = True
        elif ctype == "message/disposition-notification":
            self.result.has_mdn = True
        if filename is None:
            filename = _filename(part, self._hint)
        index = len(self.result.attachments) + 1
        name = _sanitize_filename(filename or "")
        if not name:
            name = f"attachment-{index}{_extension(ctype)}"
        self.result.attachments.append(
            Attachment(
                filename=name,
                content_type=ctype,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )

    def _extract_uuencoded(self, text: str) -> str:
        """Turn uuencoded blocks inside a text part (Lotus Notes does this) into attachments."""
        if "begin " not in text:
            return text
        out: list[str] = []
        pos = 0
        while True:
            begin = _UU_BEGIN_RE.search(text, pos)
            if begin is None:
                break
            end = _UU_END_RE.search(text, begin.end())
            if end is None:
                break
            data = _decode_uu_lines(text[begin.end() : end.start()])
            if data is None:
                out.append(text[pos : end.end()])
            else:
                out.append(text[pos : begin.start()])
                name = _sanitize_filename(begin.group(1).strip())
                ctype = _type_for_filename(name)
                index = len(self.result.attachments) + 1
                self.result.attachments.append(
                    Attachment(
                        filename=name or f"attachment-{index}.bin",
                        content_type=ctype,
                        size=len(data),
                        sha256=hashlib.sha256(data).hexdigest(),
                    )
                )
            pos = end.end()
        out.append(text[pos:])
        return "".join(out)


def _assemble(segments: list[_Segment], defects: list[str]) -> str:
    pieces: list[str] = []
    total = 0
    for segment in segments:
        # Plain segments were cleaned when they were made; HTML is converted now,
        # only for the alternative that was chosen.
        text = _html_to_text(segment.text, defects) if segment.kind == "html" else segment.text
        text = "\n".join(line.rstrip() for line in text.split("\n"))
        text = _BLANK_LINES_RE.sub("\n\n", text).strip("\n")
        if not text.strip():
            continue
        pieces.append(text.rstrip())
        total += len(text)
        if total > MAX_FULL_TEXT:
            break
    full = "\n\n".join(pieces)
    if len(full) > MAX_FULL_TEXT:
        defects.append(f"body text longer than {MAX_FULL_TEXT} characters; cut")
        full = full[:MAX_FULL_TEXT]
    return full


def _html_to_text(html: str, defects: list[str]) -> str:
    html = clean_body(html)
    if len(html) > MAX_PROCESSED:
        # inscriptis builds a whole tree; the rest of a huge HTML body is not worth it.
        defects.append(f"HTML body longer than {MAX_PROCESSED} characters; rest dropped")
        html = html[:MAX_PROCESSED]
    if not html.strip():
        return ""
    try:
        text = inscriptis.get_text(html)
    except Exception:  # lxml rejects some inputs; a crude text is better than none
        defects.append("HTML could not be converted by inscriptis; tags stripped")
        text = html_module.unescape(_TAG_RE.sub(" ", _drop_elements(html)))
    return clean_body(text)


def _drop_elements(html: str) -> str:
    """Remove script, style and head elements with their content (linear time)."""
    lowered = html.lower()
    out: list[str] = []
    pos = 0
    while True:
        starts = [(lowered.find(f"<{tag}", pos), tag) for tag in _DROPPED_ELEMENTS]
        found = [(start, tag) for start, tag in starts if start >= 0]
        if not found:
            break
        start, tag = min(found)
        end = lowered.find(f"</{tag}", start)
        out.append(html[pos:start])
        if end < 0:
            return "".join(out)
        close = lowered.find(">", end)
        pos = len(html) if close < 0 else close + 1
    out.append(html[pos:])
    return "".join(out)


_MAX_CONTENT_TYPE = 255


def _content_type(part: Message) -> str:
    try:
        ctype = part.get_content_type()
    except Exception:  # policy.default raises on some malformed values
        raw = RawHeaders(part).first("content-type") or ""
        token = unfold(raw).split(";", 1)[0].strip().lower()
        ctype = token if re.fullmatch(r"[\w.+-]+/[\w.+-]+", token) else "text/plain"
    if len(ctype) > _MAX_CONTENT_TYPE:
        # RFC 6838 caps type and subtype at 127 characters each; longer is junk.
        return "application/octet-stream"
    return ctype.lower()


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # fall back to the first token of the raw value
        raw = RawHeaders(part).first("content-disposition")
        if raw is None:
            return None
        return unfold(raw).split(";", 1)[0].strip().lower() or None


def _charset(part: Message) -> str | None:
    try:
        charset = part.get_content_charset()
    except Exception:  # fall back to a plain search of the raw value
        charset = None
        raw = RawHeaders(part).first("content-type")
        if raw:
            match = _CHARSET_PARAM_RE.search(unfold(raw))
            charset = match.group(1) if match else None
    if charset and has_surrogates(charset):
        return None
    return charset


def _filename(part: Message, hint: str | None) -> str | None:
    """The part's file name, RFC 2231 and RFC 2047 decoded; None when it has none."""
    headers = RawHeaders(part)
    raws = [headers.first(h) or "" for h in ("content-disposition", "content-type")]
    if not any("name" in raw.lower() for raw in raws):
        return None
    name: str | None = None
    if not any(has_surrogates(raw) for raw in raws):
        try:
            name = part.get_filename()
        except Exception:  # malformed parameters make policy.default raise
            name = None
    if name is None or "\ufffd" in name:
        # 8-bit bytes, a charset that does not fit, or a parse error: compat32 hands
        # over the undecoded value, which is decoded here with fallbacks.
        name = _compat32_filename(raws, hint) or name
    if name is None:
        return None
    if has_surrogates(name):
        name = decode_header_bytes(name.encode("utf-8", "surrogateescape"), hint=hint)
    if "=?" in name:
        name = decode_encoded_words(name)
    return name if name.strip() else None


def _compat32_filename(raws: list[str], hint: str | None) -> str | None:
    """Re-read the file name from the raw headers with the lenient compat32 parser."""
    legacy = Message()
    for header, raw in zip(("content-disposition", "content-type"), raws, strict=True):
        if not raw:
            continue
        text = unfold(raw)
        if has_surrogates(text):
            # compat32 would turn raw 8-bit bytes into U+FFFD; decode them first.
            text = decode_header_bytes(text.encode("utf-8", "surrogateescape"), hint=hint)
        legacy[header] = text
    value: object
    try:
        value = legacy.get_param("filename", header="content-disposition")
        if value is None:
            value = legacy.get_param("name", header="content-type")
    except Exception:  # give up on the name, keep the attachment
        return None
    if isinstance(value, tuple):
        # RFC 2231: (charset, language, %-decoded text with one character per byte).
        charset, _, text = value
        data = str(text).encode("latin-1", "surrogateescape")
        return decode_header_bytes(data, declared=charset or None, hint=hint)
    if isinstance(value, str):
        return value.strip('"')
    return None


def _sanitize_filename(name: str) -> str:
    name = single_line(name, 4 * _MAX_FILENAME)
    # Keep only the last path component: old clients send C:\Users\...\file.doc.
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _FILENAME_BAD_RE.sub("_", name).strip().lstrip(".").strip()
    if len(name) > _MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = stem[: _MAX_FILENAME - len(ext) - 1].rstrip() + "." + ext
        else:
            name = name[:_MAX_FILENAME].rstrip()
    return name


@cache
def _extension_map() -> dict[str, str]:
    # mimetypes.types_map holds the built-in table; reading it does no file I/O
    # (guess_extension() would call mimetypes.init(), which reads system files).
    mapping: dict[str, str] = {}
    for ext, ctype in mimetypes.types_map.items():
        mapping.setdefault(ctype, ext)
    mapping.update(_PREFERRED_EXT)
    return mapping


def _extension(ctype: str) -> str:
    return _extension_map().get(ctype, ".bin")


def _type_for_filename(name: str) -> str:
    _, dot, ext = name.rpartition(".")
    if not dot:
        return "application/octet-stream"
    ext = "." + ext.lower()
    return (
        mimetypes.types_map.get(ext)
        or mimetypes.common_types.get(ext)
        or "application/octet-stream"
    )


def _cte(part: Message) -> str:
    raw = RawHeaders(part).first("content-transfer-encoding")
    if not raw:
        return ""
    return unfold(raw).strip().split(";", 1)[0].split(None, 1)[0].lower() if raw.strip() else ""


def _payload_bytes(part: Message, defects: list[str]) -> bytes:
    """The part's decoded bytes, also when the transfer encoding is written oddly."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # fall back to the raw payload
        data = None
    if not isinstance(data, bytes):
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
        defects.append("a part's payload could not be decoded; kept raw")
    cte = _cte(part)
    if cte in _DECODED_CTES:
        try:
            understood = str(part.get("content-transfer-encoding", "")).lower()
        except Exception:  # then the library surely did not decode it
            understood = ""
        if understood != cte:
            # "Base64 " or "base64; x" defeat the library's exact comparison and it
            # returns the encoded bytes; decode them here.
            data = _decode_cte(data, cte)
    return data


def _decode_cte(data: bytes, cte: str) -> bytes:
    if cte == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        if len(cleaned) % 4 == 1:
            cleaned = cleaned[:-1]
        try:
            return base64.b64decode(cleaned + b"=" * (-len(cleaned) % 4))
        except (ValueError, binascii.Error):
            return data
    if cte == "quoted-printable":
        return quopri.decodestring(data)
    text = data.decode("latin-1")
    begin = _UU_BEGIN_RE.search(text)
    start = begin.end() if begin else 0
    end = _UU_END_RE.search(text, start)
    decoded = _decode_uu_lines(text[start : end.start() if end else len(text)])
    return data if decoded is None else decoded


def _decode_uu_lines(block: str) -> bytes | None:
    """Decode the lines between ``begin`` and ``end``; None when they are not uuencode."""
    out = bytearray()
    bad = 0
    lines = block.split("\n")
    for line in lines:
        raw = line.rstrip("\r").encode("latin-1", "replace")
        if not raw:
            continue
        try:
            out += binascii.a2b_uu(raw)
        except binascii.Error:
            # Some encoders pad lines wrongly; trim to the length the first byte announces.
            nbytes = (((raw[0] - 32) & 63) * 4 + 5) // 3
            try:
                out += binascii.a2b_uu(raw[:nbytes])
            except binascii.Error:
                bad += 1
    if bad > max(2, len(lines) // 10):
        return None
    return bytes(out)


def _serialize(msg: Message) -> bytes:
    """Bytes of a nested message, for its size and hash; never raises."""
    for serializer_policy in (email_policy.compat32, email_policy.default):
        data = _flatten(msg, serializer_policy)
        if data is not None:
            return data
    try:
        return str(msg).encode("utf-8", "surrogateescape")
    except Exception:  # size 0 beats losing the mail
        return b""


def _flatten(msg: Message, serializer_policy: email_policy.Policy) -> bytes | None:
    try:
        buffer = io.BytesIO()
        BytesGenerator(buffer, mangle_from_=False, policy=serializer_policy).flatten(msg)
    except Exception:  # the caller tries the next serializer
        return None
    return buffer.getvalue()
