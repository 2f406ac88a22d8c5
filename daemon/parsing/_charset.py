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


# When text does not decode with its declared charset, the usual reason is that the
# sender's software used the vendor superset of it (Windows code pages above all).
_SUPERSETS: dict[str, tuple[str, ...]] = {
    "shift_jis": ("cp932", "shift_jis_2004"),
    "euc_jp": ("euc_jis_2004", "cp932"),
    "big5": ("big5hkscs", "cp950"),
    "euc_kr": ("cp949",),
    "iso8859-8": ("cp1255",),
    "iso8859-9": ("cp1254",),
    "iso8859-2": ("cp1250",),
    "iso8859-5": ("cp1251",),
    "koi8-r": ("koi8_u",),
}


def _codec_name(label: str | None) -> str | None:
    """Return a Python codec name for a charset label, or None when it names no text codec."""
    if not label:
        return None
    name = label.strip().strip("\"'").lower()
    name = _ALIASES.get(name, name)
    try:
        info = codecs.lookup(name)
        # Binary transforms (base64, zlib, ...) are codecs too; bytes.decode refuses
        # them with a LookupError, as it does names it does not know.
        b"a".decode(info.name, "ignore")
    except (LookupError, ValueError, TypeError):
        return None
    return None if info.name in _REFUSED_CODECS else info.name


def _detect(data: bytes) -> str | None:
    """Best guess of the charset of ``data`` by charset_normalizer, or None."""
    try:
        best = charset_normalizer.from_bytes(data[:_DETECT_SAMPLE]).best()
    except Exception:  # a detector bug must not break parsing
        return None
    if best is None:
        return None
    return _codec_name(best.encoding)


def usable_charset(label: str | None) -> str | None:
    """The Python codec for ``label`` when it names a real text charset, else None."""
    return _codec_name(label)


def decode_body_bytes(
    data: bytes, declared: str | None, hint: str | None = None
) -> tuple[str, str | None]:
    """Decode a body part; return the text and a note when the declared charset failed.

    The declared charset is used when it decodes strictly; otherwise UTF-8, then the
    message-wide ``hint`` (a charset declared elsewhere in the same mail), then
    charset_normalizer's guess, then UTF-8 with replacement characters.
    """
    if not data:
        return "", None
    label = (declared or "").strip().strip("\"'").lower()
    codec = _codec_name(label)
    if data.isascii() and (codec is None or label in _ASCII_LABELS):
        return _decode_seven_bit(data), None
    note: str | None = None
    if codec is not None and label not in _ASCII_LABELS:
        if label in _LATIN1_LABELS:
            try:
                return data.decode("cp1252"), None
            except UnicodeDecodeError:
                return data.decode("latin-1"), None
        text = _decode_declared(data, codec)
        if text is not None:
            return text, None
        note = f"body declared charset {label!r} does not decode; detected instead"
    elif label:
        note = f"body charset {label!r} unknown or wrong; detected instead"
    else:
        note = "body has 8-bit bytes but no charset; detected"
    return _decode_undeclared(data, hint), note


def _decode_seven_bit(data: bytes) -> str:
    """7-bit data without a 7-bit-specific charset: ASCII, unless ISO-2022-JP escapes show."""
    if b"\x1b$" in data:
        text = _iso2022jp(data)
        if text is not None:
            return text
    return data.decode("ascii")


def _iso2022jp(data: bytes) -> str | None:
    return _try_decode(data, "iso2022_jp") or _iso2022jp_via_cp932(data)


def _hint_codecs(hint: str | None) -> tuple[str, ...]:
    codec = _codec_name(hint)
    if codec is None or codec == "ascii":
        return ()
    if codec in ("latin-1", "iso8859-1"):
        return ("cp1252", "latin-1")
    return (codec,)


def _decode_declared(data: bytes, codec: str) -> str | None:
    """Decode with the declared codec or a vendor superset of it; None if none fits."""
    for candidate in (codec, *_SUPERSETS.get(codec, ())):
        text = _try_decode(data, candidate)
        if text is not None:
            return text
    if codec.startswith("iso2022_jp"):
        return _iso2022jp_via_cp932(data)
    return None


def _iso2022jp_via_cp932(data: bytes) -> str | None:
    """Decode ISO-2022-JP written by Windows, which uses NEC and IBM extensions.

    Python's iso2022_jp codecs reject those characters (circled digits and the
    like); converting the JIS byte pairs to Shift_JIS lets cp932 decode them.
    """
    out = bytearray()
    mode = "ascii"
    i = 0
    length = len(data)
    while i < length:
        byte = data[i]
        if byte == 0x1B:
            escape = data[i + 1 : i + 3]
            if escape in (b"$B", b"$@"):
                mode = "jis"
            elif escape == b"(I":
                mode = "kana"
            elif escape in (b"(B", b"(J"):
                mode = "ascii"
            else:
                return None
            i += 3
            continue
        if mode == "jis" and 0x21 <= byte <= 0x7E and i + 1 < length:
            second = data[i + 1]
            lead = ((byte - 0x21) >> 1) + 0x81
            if lead > 0x9F:
                lead += 0x40
            # Odd JIS rows map to the lower half of a Shift_JIS row, even ones above it.
            trail = second + 0x1F + (second >= 0x60) if byte & 1 else second + 0x7E
            out += bytes((lead, trail))
            i += 2
            continue
        out.append(byte + 0x80 if mode == "kana" and 0x21 <= byte <= 0x5F else byte)
        i += 1
    return _try_decode(bytes(out), "cp932")


def _try_decode(data: bytes, codec: str | None) -> str | None:
    if codec is None:
        return None
    try:
        return data.decode(codec)
    except (UnicodeError, ValueError, LookupError):
        return None


def _decode_undeclared(data: bytes, hint: str | None) -> str:
    """Decode 8-bit ``data`` of unknown charset: UTF-8, hint, detection, UTF-8 replacing."""
    for codec in ("utf-8", *_hint_codecs(hint)):
        text = _try_decode(data, codec)
        if text is not None:
            return text
    guessed = _detect(data)
    if guessed is not None:
        text = _try_decode(data, guessed)
        if text is not None:
            return text
        # The guess came from a sample; the rest may not fit. Keep what fits.
        return data.decode(guessed, errors="replace")
    return data.decode("utf-8", errors="replace")


def decode_header_bytes(data: bytes, declared: str | None = None, hint: str | None = None) -> str:
    """Decode raw header bytes: declared charset, UTF-8, hint, detection, then latin-1.

    Latin-1 last because it maps every byte, so short headers never come out as
    replacement characters.
    """
    if data.isascii() and b"\x1b" not in data:
        return data.decode("ascii")
    declared_codec = _codec_name(declared)
    if declared_codec is not None:
        text = _decode_declared(data, declared_codec)
        if text is not None:
            return text
    for codec in ("utf-8", *_hint_codecs(hint), "iso2022_jp"):
        if codec == "iso2022_jp" and not data.isascii():
            continue
        text = _try_decode(data, codec)
        if text is not None:
            return text
    guessed = _detect(data)
    text = _try_decode(data, guessed)
    return text if text is not None else data.decode("latin-1")
