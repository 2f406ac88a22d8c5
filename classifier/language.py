"""Language detection with py3langid, whose model ships inside the package.

Nothing is downloaded; the model (a few MB) is loaded on first use, not at import.
:func:`detect_languages` scores a batch of eight texts or more with numpy
(:mod:`classifier.language_batch`, five times faster per text than py3langid's own
byte-by-byte loop, same results up to float rounding); fewer texts go through
py3langid's ``classify``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from typing import Any

__all__ = [
    "MIN_LETTERS",
    "detect_language",
    "detect_language_with_confidence",
    "detect_languages",
]

MIN_LETTERS = 12
"""Fewer letters than this are too few to tell a language: :func:`detect_language` says None."""

# The language of a mail shows in its first sentences; reading more only costs time.
_SAMPLE_CHARS = 100
# At least MIN_LETTERS letters (word characters other than digits and "_"); a
# match stops at the twelfth letter instead of scanning the whole sample.
_ENOUGH_LETTERS_RE = re.compile(rf"[\W\d_]*(?:[^\W\d_][\W\d_]*){{{MIN_LETTERS}}}")
_PLACEHOLDERS = ("zurlz", "zemailz", "zamountz", "znumz")
_PLACEHOLDER_RE = re.compile(r"\bz(?:url|email|amount|num)z\b")
# Below this many texts, py3langid's own loop is faster than ~100 numpy steps.
_SMALL_BATCH = 8


@cache
def _identifier() -> Any:
    # Imported on first use: the model takes a moment to decompress, and many
    # callers of this package never detect a language.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier  # noqa: PLC0415

    # py3langid 0.4 renamed the loader; older releases call it from_pickled_model.
    load = getattr(LanguageIdentifier, "from_model_file", None)
    if load is None:
        load = LanguageIdentifier.from_pickled_model
    return load(MODEL_FILE, norm_probs=True)


def detect_languages(texts: Sequence[str]) -> list[tuple[str | None, float]]:
    """``(ISO 639-1 code, probability)`` for each text, computed for the batch at once.

    ``(None, 0.0)`` for a text with fewer than :data:`MIN_LETTERS` letters.
    """
    results: list[tuple[str | None, float]] = [(None, 0.0)] * len(texts)
    samples: list[str] = []
    where: list[int] = []
    for index, text in enumerate(texts):
        sample = text[: _SAMPLE_CHARS * 2]
        if any(placeholder in sample for placeholder in _PLACEHOLDERS):
            sample = _PLACEHOLDER_RE.sub(" ", sample)
        if _ENOUGH_LETTERS_RE.match(sample) is None:
            continue
        samples.append(" ".join(sample.split())[:_SAMPLE_CHARS])
        where.append(index)
    if not samples:
        return results
    found = None
    if len(samples) >= _SMALL_BATCH:
        # Imported here: numpy and SciPy are not needed to import this package.
        from classifier.language_batch import classify_batch  # noqa: PLC0415

        found = classify_batch(samples, _identifier())
    if found is None:
        found = [_identifier().classify(sample) for sample in samples]
    for index, (code, confidence) in zip(where, found, strict=True):
        results[index] = (str(code), float(confidence))
    return results


def detect_language_with_confidence(text: str) -> tuple[str | None, float]:
    """ISO 639-1 code of ``text`` and the detector's probability for it (0..1).

    ``(None, 0.0)`` when the text has fewer than :data:`MIN_LETTERS` letters.
    """
    return detect_languages([text])[0]


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the language of ``text`` ("en", "de", "hu", ...).

    None for empty or too short text (fewer than :data:`MIN_LETTERS` letters).
    """
    return detect_languages([text])[0][0]
