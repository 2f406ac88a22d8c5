"""Text preparation: keep only what the customer newly wrote in a mail.

Quoted history ("On ... wrote:", Outlook header blocks, "-----Original Message-----",
trailing ``>`` lines) and the signature are removed. Quote headers are found with the
regular expressions of the ``mail-parser-reply`` library for all its languages, plus
Hungarian, which is registered in the library's public ``MAIL_LANGUAGES`` table on
first use. Every cut is checked before it is made, because the library's patterns,
with all languages on at once, also match ordinary sentences ("Take a look ...",
"Thanks, but ..."); the customer's text must never be lost to a false match.

``prepare_text`` turns a subject and body into the one normalised string the model
reads: the new text only, NFKC, lower case, URLs, addresses, amounts and long numbers
replaced by placeholder tokens, whitespace collapsed, length capped.

Pure: no I/O, nothing done at import time beyond compiling local patterns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES, QUOTED_MATCH_INCLUDE

__all__ = ["MAX_PREPARED_CHARS", "prepare_text", "strip_quoted_and_signature"]

# Longer input is cut before any pattern runs; the library's patterns are not linear.
_MAX_CHARS = 1_000_000
# Quote headers are never this long; longer lines are shortened for detection only.
# The library's "wrote" patterns backtrack quadratically on a long line that almost
# matches, so both this and the number of lines tried are bounded.
_MAX_DETECT_LINE = 300
_MAX_HEADER_ATTEMPTS = 200
# A signature is short; a "closing" followed by more than this is probably not one.
_MAX_SIGNATURE_LINES = 15
_MAX_CLOSING_LINE = 60
_MAX_CLOSING_EXTRA_WORDS = 4

_HUNGARIAN: dict[str, object] = {
    # "2025. márc. 3., hétfő 10:12 időpontban Kiss Péter <x@y.hu> ezt írta:" (Gmail; it
    # wraps before the address, hence the optional first line, which must start with
    # the year and hold the time), "... írta:".
    "wrote_header": (
        r"^("
        + QUOTED_MATCH_INCLUDE
        + r"(?:\d{4}\.[^\n]{0,200}?\d{1,2}:\d{2}[^\n]{0,200}\n"
        + QUOTED_MATCH_INCLUDE
        + r")?[^\n]{0,300}?\S\s+(?:ezt\s+)?írta\s?:)$"
    ),
    # Outlook: "Feladó: ...", "Elküldve: ...", "Címzett: ...", "Tárgy: ..."
    "from_header": (
        r"((?:(?:^|\n|\n"
        + QUOTED_MATCH_INCLUDE
        + r")[* ]*(?:Feladó|Elküldve|Küldve|Címzett|Másolat|Másolatot kap|Tárgy|Dátum)"
        r":[ *]*(?:\s{,2}).*){2,}(?:\n.*){,1})"
    ),
    "disclaimers": ["Jogi nyilatkozat:", "Figyelem:"],
    "signatures": [
        "Üdvözlettel",
        "Tisztelettel",
        "Köszönettel",
        "Baráti üdvözlettel",
        "Szívélyes üdvözlettel",
        "Üdv",
    ],
    "sent_from": "iPhone-ról küldve|Küldve iPhone-ról|Android-telefonomról küldve",
}

# Closings the library does not list but customers use all the time.
_EXTRA_CLOSINGS = (
    "Best wishes",
    "Warm regards",
    "Many thanks",
    "Sincerely",
    r"Yours (?:sincerely|faithfully|truly)",
    "Cheers",
    r"(?:Herzliche|Freundliche|Schöne|Sonnige) Gr(?:ü|ue)(?:ß|ss)e",
    "MfG",
)
_GENERIC_SEPARATOR_RE = re.compile(
    r"^[>\s]*(?:"
    r"[-_=*]{2,}\s*(?:Original(?:\s|-)?(?:Message|Nachricht|nachricht)|Ursprüngliche Nachricht|"
    r"Eredeti üzenet|Eredeti levél|Továbbított üzenet|Message d'origine|Message transféré|"
    r"Messaggio originale|Messaggio inoltrato|Mensaje original|Mensaje reenviado|"
    r"Oorspronkelijk bericht|Doorgestuurd bericht|Forwarded message|Weitergeleitete Nachricht|"
    r"Oprindelig meddelelse|Ursprungligt meddelande|Původní zpráva|Oryginalna wiadomość)"
    r"\s*[-_=*]*"
    r"|Begin forwarded message:|Anfang der weitergeleiteten Nachricht:"
    r"|Début du message réexpédié :?"
    r")\s*$",
    re.IGNORECASE,
)
_SIGNATURE_DELIMITER_RE = re.compile(r"^(?:--|__)$")
_ATTRIBUTION_RE = re.compile(
    r"(?:@|\d|wrote|schrieb|írta|a écrit|escribió|scritto|schreef|napisał|skrev):\s*$",
    re.IGNORECASE,
)
_SINGLE_FIELD_RE = re.compile(r"^[>*\s]*[^\s:]{1,20}\s?:\s*\S")
_SEPARATOR_LINE_RE = re.compile(r"^[\s\-_=*~]+$")
# A line can start a quote header only if it is a "Key:" line, ends (or its next line
# ends) in a colon like "... wrote:", or looks like a separator.
_KEY_LINE_RE = re.compile(r"^[>* ]*[^\W\d_][^:：\n]{0,30}[:：]")
_SEPARATOR_HINTS = ("---", "___", "Original", "original", "orward", "Begin", "Anfang", "Début")


@dataclass(frozen=True, slots=True)
class _Patterns:
    header: re.Pattern[str]
    closing: re.Pattern[str]
    sent_from: re.Pattern[str]


def _register_hungarian() -> None:
    """Add Hungarian to the library's language table (idempotent)."""
    MAIL_LANGUAGES.setdefault("hu", _HUNGARIAN)


def _phrases(key: str) -> list[str]:
    found: list[str] = []
    for table in MAIL_LANGUAGES.values():
        value: object = table.get(key)
        if isinstance(value, str) and value:
            found.append(value)
        elif isinstance(value, list):
            found.extend(v for v in value if isinstance(v, str) and v)
    return found


@cache
def _patterns() -> _Patterns:
    """Compile the patterns once, on first use (not at import time)."""
    _register_hungarian()
    languages = list(MAIL_LANGUAGES)
    # The library assembles and compiles its header regex for the languages asked for.
    header = EmailReplyParser(languages=languages).read("").HEADER_REGEX
    closings = "|".join(f"(?:{p})" for p in (*_phrases("signatures"), *_EXTRA_CLOSINGS))
    sent_from = "|".join(f"(?:{p})" for p in _phrases("sent_from"))
    return _Patterns(
        header=header,
        # (?!\w): "Tak" (Danish thanks) must not match "Take", nor "Kh" "Khaled".
        closing=re.compile(rf"^{QUOTED_MATCH_INCLUDE}(?:{closings})(?!\w)", re.IGNORECASE),
        sent_from=re.compile(rf"^{QUOTED_MATCH_INCLUDE}(?:{sent_from})", re.IGNORECASE),
    )


def strip_quoted_and_signature(text: str, language_hint: str | None = None) -> str:
    """Return the customer's new text: quoted history and signature removed.

    All languages are always enabled, because the language of the quote header is the
    language of the customer's mail client, not necessarily of their text;
    ``language_hint`` (an ISO 639-1 code such as ``"de"``) is accepted for callers that
    know it and does not narrow the patterns. If nothing would be left (the whole mail
    is a quote or a forward), the whole text is returned instead of an empty string.
    Line endings come back as ``\\n``.
    """
    del language_hint  # see the docstring: every language is always on
    normalized = text.replace("\r\n", "\n").replace("\r", "\n")[:_MAX_CHARS]
    full = normalized.strip()
    if not full:
        return full
    patterns = _patterns()
    lines = normalized.split("\n")
    kept = lines[: _quote_start(lines, patterns.header)]
    kept = _drop_trailing_quote(kept)
    kept = _drop_signature(kept, patterns)
    result = "\n".join(line.rstrip() for line in _trim(kept)).strip()
    return result or full


def _quote_start(lines: list[str], header: re.Pattern[str]) -> int:
    """Index of the first line of quoted history, or ``len(lines)`` when there is none.

    0 means the text starts with a quote header (a forward or a pure quote).
    """
    detect = [line.strip()[:_MAX_DETECT_LINE] for line in lines]
    joined = "\n".join(detect)
    offset = 0
    seen_content = False
    attempts = 0
    for index, line in enumerate(detect):
        following = detect[index + 1] if index + 1 < len(detect) else ""
        if line and attempts < _MAX_HEADER_ATTEMPTS and _is_candidate(line, following):
            attempts += 1
            hit = _GENERIC_SEPARATOR_RE.match(line) is not None
            if not hit:
                match = header.match(joined, offset)
                hit = match is not None and _plausible_header(match.group(0))
            if hit:
                return index if seen_content else 0
        if line:
            seen_content = True
        offset += len(line) + 1
    return len(lines)


def _is_candidate(line: str, following: str) -> bool:
    return (
        line.endswith((":", "："))
        or following.endswith((":", "："))
        or _KEY_LINE_RE.match(line) is not None
        or any(hint in line for hint in _SEPARATOR_HINTS)
    )


def _plausible_header(matched: str) -> bool:
    """Reject a lone ``Key: value`` line; a quote header is a block or a "wrote" line."""
    content = [line for line in matched.strip().split("\n") if line.strip()]
    return not (len(content) == 1 and _SINGLE_FIELD_RE.match(content[0]))


def _drop_trailing_quote(lines: list[str]) -> list[str]:
    """Remove ``>``-quoted lines at the end, with the attribution line just above them."""
    end = len(lines)
    quoted = False
    while end > 0:
        line = lines[end - 1].strip()
        if line.startswith(">"):
            quoted = True
        elif line:
            break
        end -= 1
    if not quoted:
        return lines
    if end > 0 and _ATTRIBUTION_RE.search(lines[end - 1].strip()):
        end -= 1
    return lines[:end]


def _drop_signature(lines: list[str], patterns: _Patterns) -> list[str]:
    """Cut at the first signature marker below the first line of text."""
    first = next((i for i, line in enumerate(lines) if line.strip()), len(lines))
    # Non-blank lines after each index, counted once (per-line counting is quadratic).
    after = [0] * (len(lines) + 1)
    for index in range(len(lines) - 1, -1, -1):
        after[index] = after[index + 1] + (1 if lines[index].strip() else 0)
    for index in range(first + 1, len(lines)):
        line = lines[index].strip()
        if not line:
            continue
        if _SIGNATURE_DELIMITER_RE.match(line) or _is_sent_from(line, patterns):
            return lines[:index]
        if _is_closing(line, patterns) and after[index + 1] <= _MAX_SIGNATURE_LINES:
            return lines[:index]
    return lines


def _is_sent_from(line: str, patterns: _Patterns) -> bool:
    return len(line) <= 100 and patterns.sent_from.match(line) is not None


def _is_closing(line: str, patterns: _Patterns) -> bool:
    """A closing formula alone on its line, perhaps with a name: "Best regards, Ann"."""
    if len(line) > _MAX_CLOSING_LINE:
        return False
    match = patterns.closing.match(line)
    if match is None:
        return False
    rest = line[match.end() :].strip(" \t,.;:!-–—")
    return len(rest.split()) <= _MAX_CLOSING_EXTRA_WORDS and not rest.endswith("?")


def _trim(lines: list[str]) -> list[str]:
    """Drop blank and separator-only lines (``____``, ``-----``) at the end."""
    end = len(lines)
    while end > 0 and (not lines[end - 1].strip() or _SEPARATOR_LINE_RE.match(lines[end - 1])):
        end -= 1
    return lines[:end]


# -- model input ---------------------------------------------------------------

MAX_PREPARED_CHARS = 4000
"""Prepared text is cut to this length: complaints say what matters early, and a
pasted log or contract must not slow the model down or drown the signal."""

# Placeholders are word characters only, so both the word and the character
# n-grams of the model see them as one token.
_URL_MARK = " zurlz "
_EMAIL_MARK = " zemailz "
_AMOUNT_MARK = " zamountz "
_NUMBER_MARK = " znumz "
_LONG_NUMBER_DIGITS = 5
"""Order, account, phone and tracking numbers: this many digits or more, perhaps grouped."""

_EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)\S+")
_URL_HINTS = ("http", "www.", "ftp")
# A run of digits with single separators (1,200.50  1.200,50  45 000  +36 30 123 4567).
# It starts with a digit, so the regex engine skips straight to candidates; the
# look-behind after that digit keeps it from starting inside a word ("abc123").
_NUMBER_RE = re.compile(r"\d(?<![\w.,]\d)(?:[ ./,'\u00a0\u202f-]?\d)*")
_CURRENCY_BEFORE_RE = re.compile(r"(?:[€$£]|\b(?:eur|euro|usd|gbp|chf|huf|ft|forint))\s?$")
_CURRENCY_AFTER_RE = re.compile(
    r"\s?(?:[€$£]|,-|(?:eur|euro|euros|usd|gbp|chf|huf|ft|forint|dollars?|pounds?|franken)\b)"
)
_CONTEXT = 8


def _mask_number(match: re.Match[str]) -> str:
    text, start, end = match.string, match.start(), match.end()
    if _CURRENCY_BEFORE_RE.search(text, max(0, start - _CONTEXT), start) or (
        _CURRENCY_AFTER_RE.match(text, end, end + _CONTEXT)
    ):
        return _AMOUNT_MARK
    number = match.group(0)
    if sum(char.isdigit() for char in number) >= _LONG_NUMBER_DIGITS:
        return _NUMBER_MARK
    return number


def prepare_text(subject: str, body: str) -> str:
    """The text the model reads: subject plus the customer's new text, normalised.

    Quoted history and the signature are removed from ``body``; the result is
    NFKC-normalised and lower-cased; URLs, email addresses, money amounts and long
    numbers become placeholder tokens (their exact values identify a customer or an
    order, never the kind of complaint); whitespace is collapsed and the length
    capped at :data:`MAX_PREPARED_CHARS`. Empty input gives ``""``.
    """
    new_text = strip_quoted_and_signature(body) if body.strip() else ""
    text = f"{subject.strip()}\n{new_text}"[: MAX_PREPARED_CHARS * 2]
    text = unicodedata.normalize("NFKC", text).lower()
    # The substring tests are cheap and spare most texts a regex pass.
    if "@" in text:
        text = _EMAIL_RE.sub(_EMAIL_MARK, text)
    if any(hint in text for hint in _URL_HINTS):
        text = _URL_RE.sub(_URL_MARK, text)
    text = _NUMBER_RE.sub(_mask_number, text)
    return " ".join(text.split())[:MAX_PREPARED_CHARS]
