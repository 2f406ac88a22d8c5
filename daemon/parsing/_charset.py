"""Bytes to text when the declared charset is missing, unknown or wrong."""

from __future__ import annotations

import codecs

import charset_normalizer

# Labels seen in real mail that Python does not know, or knows under a narrower meaning.
# GB2312/GBK text is routinely sent with characters only GB18030 (a superset) defines;
# ks_c_5601-1987 is what Outlook calls cp949.
_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "gb_2312-80": "gb18030",
    "cn-gb": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-windows-949": "cp949",
    "unicode-1-1-utf-7": "utf-7",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "x-euc-jp": "euc_jp",
    "utf8": "utf-8",
    "x-utf-8": "utf-8",
}
# Latin-1 labels: browsers and mail clients have long read them as windows-1252, whose
# 0x80-0x9F range holds the typographic quotes and euro sign Windows users actually typed.
_LATIN1_LABELS = frozenset({"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "iso_8859-1"})
_ASCII_LABELS = frozenset({"us-ascii", "ascii", "ansi_x3.4-1968", "646"})
# Codecs that are "text encodings" to Python but never a real mail charset; decoding junk
# with them produces escapes or raises in surprising ways.
_REFUSED_CODECS = frozenset(
    {"idna", "punycode", "unicode_escape", "raw_unicode_escape", "undefined", "mbcs", "oem"}
)
# Detection cost grows with the input; a sample is as good a guess for a long body.
_DETECT_SAMPLE = 64 * 1024


def _codec_name(label: str | None) -> str | None:
    """Return a Python codec name for a charset label, or None when it names no text codec."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError, TypeError):
        return None
    # Binary transforms (base64, zlib, ...) are codecs too, but not text encodings.
    if not getattr(info, "_is_text_encoding", True) or info.name in _REFUSED_CODECS:
        return None
    return info.name


def _detect(data: bytes) -> str | None:
    """Best guess of the charset of ``data`` by charset_normalizer, or None."""
    try:
        best = charset_normalizer.from_bytes(data[:_DETECT_SAMPLE]).best()
    except Exception:  # noqa: BLE001 - a detector bug must not break parsing
        return None
    if best is None:
        return None
    return _codec_name(best.encoding)


def decode_body_bytes(data: bytes, declared: str | None) -> tuple[str, str | None]:
    """Decode a body part; return the text and a note when the declared charset failed.

    The declared charset is used when it decodes strictly; otherwise UTF-8, then
    charset_normalizer's guess, then UTF-8 with replacement characters.
    """
    if not data:
        return "", None
    label = (declared or "").strip().strip("\"'").lower()
    if data.isascii():
        # ASCII is a subset of every charset a mail body can sensibly declare.
        return data.decode("ascii"), None
    note: str | None = None
    codec = _codec_name(label)
    if codec is not None and label not in _ASCII_LABELS:
        if label in _LATIN1_LABELS:
            try:
                return data.decode("cp1252"), None
            except UnicodeDecodeError:
                return data.decode("latin-1"), None
        try:
            return data.decode(codec), None
        except (UnicodeError, ValueError, LookupError):
            note = f"body declared charset {label!r} does not decode; detected instead"
    elif label:
        note = f"body charset {label!r} unknown or wrong; detected instead"
    else:
        note = "body has 8-bit bytes but no charset; detected"
    return _decode_undeclared(data), note


def _decode_undeclared(data: bytes) -> str:
    """Decode 8-bit ``data`` of unknown charset: UTF-8, detection, UTF-8 with replacement."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guessed = _detect(data)
    if guessed is not None:
        try:
            return data.decode(guessed)
        except (UnicodeError, ValueError, LookupError):
            # The guess came from a sample; the rest may not fit. Keep what fits.
            try:
                return data.decode(guessed, errors="replace")
            except (UnicodeError, ValueError, LookupError):
                pass
    return data.decode("utf-8", errors="replace")


def decode_header_bytes(data: bytes, declared: str | None = None) -> str:
    """Decode raw header bytes: declared charset, UTF-8, detection, then latin-1.

    Latin-1 last because it maps every byte, so short headers never come out as
    replacement characters.
    """
    if data.isascii():
        return data.decode("ascii")
    codec = _codec_name(declared)
    if codec is not None:
        try:
            return data.decode(codec)
        except (UnicodeError, ValueError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    guessed = _detect(data)
    if guessed is not None:
        try:
            return data.decode(guessed)
        except (UnicodeError, ValueError, LookupError):
            pass
    return data.decode("latin-1")
