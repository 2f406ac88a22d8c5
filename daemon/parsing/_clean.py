"""Sanitising of strings that leave the parser: single-line header values and body text."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, Unicode line/paragraph separators, and the bidi overrides and
# isolates used to disguise text ("RLO attacks"); header values must never contain them.
_HEADER_JUNK_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# Lone surrogates come from undecodable bytes (surrogateescape); they cannot be encoded as
# UTF-8, so a database driver would reject them.
_SURROGATE_RE = re.compile(r"[\ud800-\udfff]")
_WS_RUN_RE = re.compile(r"\s+")
# Body text keeps tabs and newlines; every other C0 control and DEL goes (NUL above all:
# PostgreSQL text columns cannot hold it). Form feed and vertical tab become newlines.
_BODY_JUNK_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
# Vertical tab and form feed become line breaks; byte order marks show up mid-text
# where parts were glued together and are noise. (str.replace, not str.translate with
# a table: translate is an order of magnitude slower on long non-ASCII text.)
_BODY_REPLACEMENTS = (("\x0b", "\n"), ("\x0c", "\n"), ("\ufeff", ""))


def has_surrogates(value: str) -> bool:
    """Whether ``value`` holds lone surrogates (undecodable bytes kept by surrogateescape)."""
    return _SURROGATE_RE.search(value) is not None


def single_line(value: str, max_len: int) -> str:
    """Unfold, drop control characters, collapse whitespace and cap ``value`` at ``max_len``."""
    # Whitespace first so CR/LF/TAB become separators rather than vanishing and gluing words.
    value = _WS_RUN_RE.sub(" ", value)
    value = _HEADER_JUNK_RE.sub("", value)
    value = _SURROGATE_RE.sub("\ufffd", value)
    value = _WS_RUN_RE.sub(" ", value).strip()
    if len(value) > max_len:
        value = value[:max_len].rstrip()
    return value


def clean_body(text: str) -> str:
    """Normalise line endings to ``\\n`` and remove NUL, controls and lone surrogates."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    for char, replacement in _BODY_REPLACEMENTS:
        if char in text:
            text = text.replace(char, replacement)
    text = _BODY_JUNK_RE.sub("", text)
    return _SURROGATE_RE.sub("\ufffd", text)
