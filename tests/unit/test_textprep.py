"""Reply stripping: the customer's new text only, in every language we serve."""

from __future__ import annotations

import pytest
from mailparser_reply.constants import MAIL_LANGUAGES

from classifier.textprep import strip_quoted_and_signature


def test_english_gmail_quote_and_signature() -> None:
    text = (
        "Hi,\n\nmy order 1234 arrived broken.\n\nBest regards,\nJohn Smith\n\n"
        "On Mon, Mar 3, 2025 at 10:12 AM Support <support@example.com> wrote:\n"
        "> Thank you for your order.\n> It ships tomorrow.\n"
    )
    assert strip_quoted_and_signature(text) == "Hi,\n\nmy order 1234 arrived broken."


def test_english_outlook_header_block() -> None:
    text = (
        "Still waiting for the refund.\n\n"
        "________________________________\n"
        "From: Support <support@example.com>\nSent: Monday, March 3, 2025 10:12 AM\n"
        "To: John Smith <john@example.com>\nSubject: RE: refund\n\nDear John,\n"
    )
    assert strip_quoted_and_signature(text) == "Still waiting for the refund."


def test_original_message_separator() -> None:
    text = "Please call me back.\n\n-----Original Message-----\nFrom: x\nSent: y\n\nold text"
    assert strip_quoted_and_signature(text) == "Please call me back."


def test_german_quote_header_and_signature() -> None:
    text = (
        "Hallo,\n\ndas Gerät ist nach zwei Tagen kaputt gegangen.\n\n"
        "Mit freundlichen Grüßen\nHans Müller\n\n"
        "Am 03.03.2025 um 10:12 schrieb Support <support@example.de>:\n> Hallo Herr Müller,\n"
    )
    assert strip_quoted_and_signature(text) == (
        "Hallo,\n\ndas Gerät ist nach zwei Tagen kaputt gegangen."
    )


def test_german_outlook_block_with_ursprungliche_nachricht() -> None:
    text = (
        "Ich möchte mein Geld zurück.\n\n-----Ursprüngliche Nachricht-----\n"
        "Von: Support\nGesendet: Montag\nAn: Hans\nBetreff: Ihre Anfrage\n\nalter Text"
    )
    assert strip_quoted_and_signature(text) == "Ich möchte mein Geld zurück."


def test_hungarian_gmail_header() -> None:
    text = (
        "Jó napot!\n\nA termék hibás, kérem cseréljék ki.\n\nÜdvözlettel:\nKiss Péter\n\n"
        "2025. márc. 3., hétfő 10:12 időpontban Ügyfélszolgálat <support@example.hu> ezt írta:\n"
        "> Tisztelt Ügyfelünk!\n"
    )
    assert strip_quoted_and_signature(text, "hu") == (
        "Jó napot!\n\nA termék hibás, kérem cseréljék ki."
    )


def test_hungarian_wrapped_gmail_header() -> None:
    text = (
        "Nem működik a termék.\n\n"
        "2025. márc. 3., hétfő 10:12 időpontban Ügyfélszolgálat <\nsupport@example.hu> ezt írta:\n"
        "> Tisztelt Ügyfelünk!\n> régi szöveg\n"
    )
    assert strip_quoted_and_signature(text) == "Nem működik a termék."


def test_hungarian_short_iras_header_and_outlook_block() -> None:
    assert strip_quoted_and_signature("Hibás a számla.\n\nKiss Péter írta:\n> régi") == (
        "Hibás a számla."
    )
    outlook = (
        "Kérem a visszatérítést.\n\nFeladó: Ügyfélszolgálat <s@example.hu>\n"
        "Elküldve: 2025. március 3. 10:12\nCímzett: Kiss Péter\nTárgy: Re: hiba\n\nrégi szöveg"
    )
    assert strip_quoted_and_signature(outlook) == "Kérem a visszatérítést."


@pytest.mark.parametrize(
    ("closing", "language"),
    [("Tisztelettel", "hu"), ("Köszönettel", "hu"), ("Üdv", "hu"), ("Kind regards", "en")],
)
def test_closings_start_the_signature(closing: str, language: str) -> None:
    text = f"Text of the complaint.\n\n{closing},\nName Surname\nPhone 123\n"
    assert strip_quoted_and_signature(text, language) == "Text of the complaint."


def test_hungarian_is_registered_lazily_in_the_library_table() -> None:
    strip_quoted_and_signature("x")
    assert "hu" in MAIL_LANGUAGES
    assert "Üdvözlettel" in MAIL_LANGUAGES["hu"]["signatures"]


def test_signature_delimiter_and_sent_from() -> None:
    assert strip_quoted_and_signature("The app crashes.\n-- \nJohn\nACME Ltd") == "The app crashes."
    assert strip_quoted_and_signature("The app crashes.\n--\nJohn") == "The app crashes."
    assert strip_quoted_and_signature("Wrong size.\n\nSent from my iPhone") == "Wrong size."
    assert strip_quoted_and_signature("Rossz méret.\n\niPhone-ról küldve") == "Rossz méret."


def test_trailing_quote_block_without_known_header() -> None:
    text = "I agree with the proposal.\n\nSupport team wrote on 3/3/2025:\n> proposal\n>\n> more\n"
    assert strip_quoted_and_signature(text) == "I agree with the proposal."


def test_interleaved_quotes_are_kept() -> None:
    text = "> Which model?\nThe X100.\n> Since when?\nSince Monday.\n"
    assert strip_quoted_and_signature(text) == text.strip()


def test_top_quoted_forward_returns_full_text() -> None:
    text = (
        "---------- Forwarded message ---------\nFrom: Jane <jane@example.com>\n"
        "Date: Mon, 3 Mar 2025\nSubject: broken\nTo: support@example.com\n\nMy kettle leaks."
    )
    assert strip_quoted_and_signature(text) == text


def test_whole_mail_quoted_returns_full_text() -> None:
    text = "> everything here\n> is quoted"
    assert strip_quoted_and_signature(text) == text


def test_only_a_closing_returns_full_text() -> None:
    assert strip_quoted_and_signature("Thanks,\nJohn") == "Thanks,\nJohn"


def test_empty_and_whitespace() -> None:
    assert strip_quoted_and_signature("") == ""
    assert strip_quoted_and_signature(" \n\n ") == ""


def test_ordinary_sentences_are_not_signatures() -> None:
    text = (
        "Hello,\n"
        "Take a look at the attached photo.\n"
        "Best price I could find was elsewhere.\n"
        "Thanks, but the refund never arrived and I am upset about it.\n"
        "- the lid is cracked\n"
        "- the cable is missing\n"
        "Khaled from the shop said it was fine.\n"
        "Grußkarte lag auch nicht bei.\n"
    )
    assert strip_quoted_and_signature(text) == text.strip()


def test_single_field_lines_are_not_quote_headers() -> None:
    text = "Data: 2025-03-01\nThe screen flickers.\nDo: please replace it\nThanks a lot"
    assert strip_quoted_and_signature(text) == text


def test_crlf_input_comes_back_with_newlines() -> None:
    text = "Line one\r\nLine two\r\n\r\nOn Mon, 3 Mar 2025, A <a@b.c> wrote:\r\n> q\r\n"
    assert strip_quoted_and_signature(text) == "Line one\nLine two"


def test_long_input_is_handled_quickly() -> None:
    text = ("word " * 50 + ": colon line\n") * 20_000
    result = strip_quoted_and_signature(text)
    assert len(result) <= 1_000_000
    assert result.startswith("word word")
