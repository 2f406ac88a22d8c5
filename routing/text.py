"""Language-aware text helpers for templates: dates, durations, subjects, quotes.

Small per-language tables (English, German, Hungarian) rather than a locale
library: the phrases are few, and a deadline sentence needs grammar (German
"bis Dienstag, 24. November", Hungarian "november 24-én (kedden) 13:00-ig")
that generic date formats do not give. Other languages fall back to English.

:func:`clean_subject` is the one gate customer text passes before it reaches a
header we write: control characters and line breaks go, length is capped.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "SUPPORTED_LANGUAGES",
    "clean_subject",
    "format_by",
    "format_datetime",
    "format_duration",
    "format_percent",
    "format_within",
    "normalize_language",
    "quote_text",
    "strip_reply_prefixes",
]

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "de", "hu")

_WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "hu": ("hétfő", "kedd", "szerda", "csütörtök", "péntek", "szombat", "vasárnap"),
}
# Hungarian "on Tuesday" is a case form of the weekday, not a preposition.
_HU_WEEKDAYS_ON = (
    "hétfőn",
    "kedden",
    "szerdán",
    "csütörtökön",
    "pénteken",
    "szombaton",
    "vasárnap",
)
_MONTHS = {
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
    "de": (
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ),
    "hu": (
        "január",
        "február",
        "március",
        "április",
        "május",
        "június",
        "július",
        "augusztus",
        "szeptember",
        "október",
        "november",
        "december",
    ),
}
# (singular, plural) unit names; Hungarian nouns stay singular after a number.
_UNITS = {
    "en": {"day": ("day", "days"), "hour": ("hour", "hours"), "minute": ("minute", "minutes")},
    "de": {"day": ("Tag", "Tage"), "hour": ("Stunde", "Stunden"), "minute": ("Minute", "Minuten")},
    "hu": {"day": ("nap", "nap"), "hour": ("óra", "óra"), "minute": ("perc", "perc")},
}
_LESS_THAN_A_MINUTE = {
    "en": "less than a minute",
    "de": "weniger als eine Minute",
    "hu": "kevesebb mint egy perc",
}
_REPLY_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|antw|wg|fw|fwd|sv|vs|vá|válasz|tr)\s*(?:\[\d+\])?\s*:\s*)+",
    re.IGNORECASE,
)
_TICKET_TAG = re.compile(r"\s*\[[A-Z]{2,6}-\d+\]\s*")
# Bidirectional overrides and isolates can make a subject display as something else.
_BIDI = dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)


def normalize_language(language: str | None, fallback: str = "en") -> str:
    """``"de-AT"`` → ``"de"``; None or empty → ``fallback``."""
    if not language:
        return fallback
    return language.strip().lower().replace("_", "-").split("-")[0] or fallback


def _table(language: str) -> str:
    language = normalize_language(language)
    return language if language in SUPPORTED_LANGUAGES else "en"


def _zone(time_zone: str | ZoneInfo | None) -> ZoneInfo | None:
    if time_zone is None or isinstance(time_zone, ZoneInfo):
        return time_zone
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return None  # an unknown zone from a mail header: show the instant as it is


def _local(value: datetime, time_zone: str | ZoneInfo | None) -> datetime:
    if value.tzinfo is None:
        raise ValueError(f"a timezone-aware datetime is needed, got {value!r}")
    zone = _zone(time_zone)
    return value.astimezone(zone) if zone is not None else value


def _hu_day_suffix(day: int) -> str:
    # The suffix follows how the ordinal is pronounced: 1 elseje → 1-jén,
    # 2 másodika → 2-án, but 12 tizenkettedike → 12-én, 20 huszadika → 20-án.
    if day == 1:
        return "jén"
    if day == 2:
        return "án"
    if day % 10 == 0:
        return "én" if day == 10 else "án"
    return "án" if day % 10 in (3, 6, 8) else "én"


def format_datetime(value: datetime, language: str, time_zone: str | ZoneInfo | None = None) -> str:
    """A full date and time: ``Tuesday 24 November 2026, 13:00``.

    German ``Dienstag, 24. November 2026, 13:00 Uhr``; Hungarian
    ``2026. november 24. (kedd) 13:00``. Shown in ``time_zone`` when given.
    """
    local = _local(value, time_zone)
    lang = _table(language)
    weekday, month = _WEEKDAYS[lang][local.weekday()], _MONTHS[lang][local.month - 1]
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if lang == "de":
        return f"{weekday}, {local.day}. {month} {local.year}, {clock} Uhr"
    if lang == "hu":
        return f"{local.year}. {month} {local.day}. ({weekday}) {clock}"
    return f"{weekday} {local.day} {month} {local.year}, {clock}"


def format_by(value: datetime, language: str, time_zone: str | ZoneInfo | None = None) -> str:
    """A deadline phrase: ``by Tuesday 24 November, 13:00``.

    German ``bis Dienstag, 24. November, 13:00 Uhr``; Hungarian
    ``legkésőbb november 24-én (kedden) 13:00-ig``.
    """
    local = _local(value, time_zone)
    lang = _table(language)
    month = _MONTHS[lang][local.month - 1]
    clock = f"{local.hour:02d}:{local.minute:02d}"
    if lang == "de":
        weekday = _WEEKDAYS["de"][local.weekday()]
        return f"bis {weekday}, {local.day}. {month}, {clock} Uhr"
    if lang == "hu":
        on_day = _HU_WEEKDAYS_ON[local.weekday()]
        return f"legkésőbb {month} {local.day}-{_hu_day_suffix(local.day)} ({on_day}) {clock}-ig"
    return f"by {_WEEKDAYS['en'][local.weekday()]} {local.day} {month}, {clock}"


def _parts(value: timedelta, *, days: bool) -> tuple[int, int, int]:
    minutes = int(abs(value).total_seconds()) // 60
    day_count = minutes // (24 * 60) if days else 0
    minutes -= day_count * 24 * 60
    return day_count, minutes // 60, minutes % 60


def _join(pieces: list[str], lang: str) -> str:
    if len(pieces) <= 1 or lang == "hu":
        return " ".join(pieces)  # Hungarian: "1 nap 3 óra 5 perc", no commas
    joiner = {"en": " and ", "de": " und "}[lang]
    return ", ".join(pieces[:-1]) + joiner + pieces[-1]


def _pieces(value: timedelta, lang: str, *, days: bool) -> list[str]:
    names = _UNITS[lang]
    pieces = []
    for amount, unit in zip(_parts(value, days=days), ("day", "hour", "minute"), strict=True):
        if amount:
            singular, plural = names[unit]
            pieces.append(f"{amount} {singular if amount == 1 else plural}")
    return pieces


def format_duration(value: timedelta, language: str, *, days: bool = True) -> str:
    """A length of time: ``1 day, 3 hours and 5 minutes`` (``1 Tag, 3 Stunden und 5 Minuten``).

    The sign is ignored (use it for "overdue by"); ``days=False`` counts in
    hours, as business-time budgets should be.
    """
    lang = _table(language)
    pieces = _pieces(value, lang, days=days)
    return _join(pieces, lang) if pieces else _LESS_THAN_A_MINUTE[lang]


def format_within(value: timedelta, language: str, *, business_hours: bool = False) -> str:
    """An answer-time phrase: ``within 4 business hours`` / ``within 1 day``.

    German ``innerhalb von 4 Stunden (während unserer Geschäftszeiten)``;
    Hungarian ``4 munkaórán belül`` / ``1 napon belül``. Business time is
    given in hours (a business "day" has no fixed length for the customer).
    """
    lang = _table(language)
    day_count, hours, minutes = _parts(value, days=not business_hours)
    if lang == "en":
        if business_hours and hours and not minutes:
            return f"within {hours} business hour{'s' if hours != 1 else ''}"
        text = f"within {format_duration(value, 'en', days=not business_hours)}"
        return text + (" (counted in business hours)" if business_hours else "")
    if lang == "de":
        amounts = {"eines Tages": day_count, "einer Stunde": hours, "einer Minute": minutes}
        nonzero = [phrase for phrase, amount in amounts.items() if amount]
        if len(nonzero) == 1 and amounts[nonzero[0]] == 1:
            text = f"innerhalb {nonzero[0]}"
        else:
            # After "von" the plural of Tag takes the dative -n: "von 2 Tagen".
            pieces = [
                piece + "n" if piece.endswith(" Tage") else piece
                for piece in _pieces(value, "de", days=not business_hours)
            ]
            text = "innerhalb von " + (_join(pieces, "de") or "einer Minute")
        return text + (" (während unserer Geschäftszeiten)" if business_hours else "")
    # Hungarian: the last noun takes the -n/-on/-en case ending before "belül".
    pieces = _pieces(value, "hu", days=not business_hours) or ["1 perc"]
    last = pieces[-1]
    if business_hours and len(pieces) == 1 and last.endswith(" óra"):
        return f"{last[: -len('óra')]}munkaórán belül"
    endings = {"nap": "napon", "óra": "órán", "perc": "percen"}
    number, noun = last.rsplit(" ", 1)
    pieces[-1] = f"{number} {endings[noun]}"
    return " ".join(pieces) + " belül" + (" (munkaidőben számolva)" if business_hours else "")


def format_percent(value: float, language: str) -> str:
    """A confidence as a percentage: ``87%`` (German typography: ``87 %``)."""
    number = round(value * 100)
    return f"{number} %" if _table(language) == "de" else f"{number}%"


def strip_reply_prefixes(subject: str) -> str:
    """Drop leading ``Re:``/``AW:``/``Fwd:``/``Válasz:`` prefixes and ``[ABC-123]`` tags."""
    subject = _REPLY_PREFIX.sub("", subject)
    return _TICKET_TAG.sub(" ", subject).strip()


def clean_subject(text: str, limit: int = 200) -> str:
    """``text`` made safe for a Subject header: one line, no control characters, capped.

    CR, LF and every other control or separator character become spaces,
    bidirectional overrides are dropped, runs of spaces collapse, and text
    longer than ``limit`` characters is cut at a word boundary with ``…``.
    """
    text = text.translate(_BIDI)
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Zl", "Zp") else ch
        for ch in text
        if unicodedata.category(ch) != "Cs"  # lone surrogates cannot be encoded
    )
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    if " " in cut[limit // 2 :]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip() + "…"


def quote_text(text: str, limit: int = 400) -> str:
    """The start of ``text`` as a mail quote (``> `` lines), at most ``limit`` characters."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    compact: list[str] = []
    for line in lines:
        if line or (compact and compact[-1]):
            compact.append(line)  # keep paragraph breaks, drop runs of blank lines
    body = "\n".join(compact).strip()
    if len(body) > limit:
        cut = body[:limit]
        if " " in cut[limit // 2 :]:
            cut = cut[: cut.rindex(" ")]
        body = cut.rstrip() + " […]"
    return "\n".join(f"> {line}" if line else ">" for line in body.split("\n"))
