"""prepare_text: the one normalised string the model reads."""

from __future__ import annotations

from classifier import prepare_text
from classifier.textprep import MAX_PREPARED_CHARS


def test_subject_and_new_text_only_quotes_and_signature_removed() -> None:
    body = (
        "Hi,\n\nmy parcel never arrived.\n\nBest regards,\nJohn Smith\n\n"
        "On Mon, Mar 3, 2025 at 10:12 AM Support <support@example.com> wrote:\n"
        "> Your parcel ships tomorrow.\n"
    )
    prepared = prepare_text("Where is my parcel?", body)
    assert prepared == "where is my parcel? hi, my parcel never arrived."


def test_nfkc_and_lower_case() -> None:
    assert prepare_text("ＡＢＣ", "Straße ÄÖÜ ﬁle") == "abc straße äöü file"


def test_urls_and_email_addresses_become_placeholders() -> None:
    prepared = prepare_text(
        "", "See https://example.com/a?b=1 or www.shop.hu, or mail a.b+c@d.co.uk."
    )
    assert "example.com" not in prepared and "a.b+c" not in prepared
    assert prepared.count("zurlz") == 2
    assert "zemailz" in prepared


def test_amounts_in_any_style_become_placeholders() -> None:
    for text in (
        "you took £34.99 twice",
        "EUR 450 missing",
        "2.840,00 € abgebucht",
        "1 500 Ft levonás",
        "45 000 forint",
        "charged $1,200.50",
        "20 Euro zu viel",
    ):
        prepared = prepare_text("", text)
        assert "zamountz" in prepared, text
        assert not any(char.isdigit() for char in prepared), text


def test_long_numbers_are_masked_short_ones_kept() -> None:
    prepared = prepare_text(
        "Order 7781023", "Call +36 30 123 4567 about the 3 items from 2 March 2025"
    )
    assert "7781023" not in prepared and "4567" not in prepared
    assert prepared.count("znumz") == 2
    assert "3 items" in prepared and "2 march 2025" in prepared


def test_numbers_inside_words_stay_words() -> None:
    assert "abc12345" in prepare_text("", "reference abc12345 please")


def test_whitespace_collapsed_and_length_capped() -> None:
    prepared = prepare_text("  a  \t b ", "word " * 5000)
    assert "  " not in prepared and "\n" not in prepared
    assert len(prepared) <= MAX_PREPARED_CHARS
    assert prepared.startswith("a b word word")


def test_empty_input_gives_empty_text() -> None:
    assert prepare_text("", "") == ""
    assert prepare_text("   ", "\n\n  ") == ""
