"""Language detection with py3langid, whose model ships inside the package.

Nothing is downloaded; the model (a few MB) is loaded on first use, not at import.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

__all__ = ["MIN_LETTERS", "detect_language", "detect_language_with_confidence"]

MIN_LETTERS = 12
"""Fewer letters than this are too few to tell a language: :func:`detect_language` says None."""

# The language of a mail shows in its first sentences; reading more only costs time
# (py3langid walks the text byte by byte in Python).
_SAMPLE_CHARS = 100
_NOT_LETTERS_RE = re.compile(r"[\W\d_]+")
_PLACEHOLDER_RE = re.compile(r"\bz(?:url|email|amount|num)z\b")


@cache
def _identifier() -> Any:
    # Imported on first use: numpy and the model (a second to load) are not needed
    # by the many callers of this package that never detect a language.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415

    # py3langid 0.4 renamed the loader; older releases call it from_pickled_model.
    load = getattr(LanguageIdentifier, "from_model_file", None)
    if load is None:
        load = LanguageIdentifier.from_pickled_model
    return load(MODEL_FILE, norm_probs=True)


def detect_language_with_confidence(text: str) -> tuple[str | None, float]:
    """ISO 639-1 code of ``text`` and the detector's probability for it (0..1).

    ``(None, 0.0)`` when the text has fewer than :data:`MIN_LETTERS` letters.
    """
    sample = _PLACEHOLDER_RE.sub(" ", text[: _SAMPLE_CHARS * 2])
    letters = _NOT_LETTERS_RE.sub("", sample)
    if len(letters) < MIN_LETTERS:
        return None, 0.0
    code, confidence = _identifier().classify(" ".join(sample.split())[:_SAMPLE_CHARS])
    return str(code), float(confidence)


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the language of ``text`` ("en", "de", "hu", ...).

    None for empty or too short text (fewer than :data:`MIN_LETTERS` letters).
    """
    return detect_language_with_confidence(text)[0]
