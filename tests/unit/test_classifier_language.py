"""Language detection: ISO 639-1 codes from the bundled py3langid model; None when too short."""

from __future__ import annotations

import pytest

from classifier import detect_language
from classifier.language import detect_language_with_confidence


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("My parcel has not arrived yet and nobody answers the phone.", "en"),
        ("Mein Paket ist noch nicht angekommen und niemand geht ans Telefon.", "de"),
        ("A csomagom még nem érkezett meg, és senki nem veszi fel a telefont.", "hu"),
        ("A csomagom meg nem erkezett meg, es senki nem veszi fel a telefont.", "hu"),
        ("Mon colis n'est toujours pas arrivé et personne ne répond.", "fr"),
        ("Mi paquete todavía no ha llegado y nadie contesta el teléfono.", "es"),
    ],
)
def test_detects_iso_639_1_codes(text: str, code: str) -> None:
    assert detect_language(text) == code


@pytest.mark.parametrize("text", ["", "   ", "Hi!", "12345 678 90", "zurlz zemailz ok"])
def test_empty_or_too_short_text_has_no_language(text: str) -> None:
    assert detect_language(text) is None
    assert detect_language_with_confidence(text) == (None, 0.0)


def test_confidence_is_a_probability() -> None:
    code, confidence = detect_language_with_confidence("Das ist eine ganz normale Beschwerde.")
    assert code == "de"
    assert 0.5 < confidence <= 1.0
