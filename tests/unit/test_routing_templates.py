"""Templates: every message in en/de/hu, fallback, safe subjects, escaping, overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from routing.errors import TemplateError
from routing.templates import (
    TEMPLATE_NAMES,
    check_templates,
    render,
    sample_context,
    sparse_context,
)
from routing.text import (
    clean_subject,
    format_by,
    format_datetime,
    format_duration,
    format_within,
    quote_text,
    strip_reply_prefixes,
)

LANGUAGES = ("en", "de", "hu")
# Tuesday 24 November 2026, 12:00 UTC = 13:00 in Budapest and Berlin.
DUE = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _ack(language: str, **changes: object) -> tuple[str, str]:
    context = {
        **sample_context("acknowledgement"),
        "deadline": DUE,
        "time_zone": "Europe/Budapest",
        **changes,
    }
    mail = render("acknowledgement", language, context)
    return mail.subject, mail.text


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_template_renders_in_every_language(name: str, language: str) -> None:
    mail = render(name, language, sample_context(name))
    assert mail.language == language
    assert mail.template == f"{name}.{language}.j2"
    assert "CMP-000123" in mail.subject
    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert "CMP-000123" in mail.text
    assert mail.text.endswith("\n") and not mail.text.startswith("\n")
    assert "\n\n\n" not in mail.text
    assert mail.html is None


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_languages_really_differ(name: str) -> None:
    texts = {render(name, lang, sample_context(name)).text for lang in LANGUAGES}
    assert len(texts) == len(LANGUAGES)


def test_acknowledgement_subject_is_a_reply_with_the_reference() -> None:
    subject, _ = _ack("en")
    assert subject == "Re: Charged twice for March [CMP-000123]"
    subject, _ = _ack("de", subject="AW: Re: Doppelt abgebucht [CMP-000123]")
    assert subject == "Re: Doppelt abgebucht [CMP-000123]"
    subject, _ = _ack("hu", subject="")
    assert subject == "Re: Az Ön üzenete [CMP-000123]"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "We will reply by Tuesday 24 November, 13:00 (time in Europe/Budapest)."),
        (
            "de",
            "Sie erhalten unsere Antwort bis Dienstag, 24. November, 13:00 Uhr "
            "(Zeitzone Europe/Budapest).",
        ),
        (
            "hu",
            "Válaszunkra legkésőbb november 24-én (kedden) 13:00-ig számíthat "
            "(Europe/Budapest szerinti idő).",
        ),
    ],
)
def test_acknowledgement_deadline_in_the_customers_terms(language: str, expected: str) -> None:
    _, text = _ack(language)
    assert expected in text


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "We will reply within 4 business hours."),
        (
            "de",
            "Sie erhalten unsere Antwort innerhalb von 4 Stunden "
            "(während unserer Geschäftszeiten).",
        ),
        ("hu", "Válaszunkra 4 munkaórán belül számíthat."),
    ],
)
def test_acknowledgement_without_a_time_zone_gives_a_relative_time(
    language: str, expected: str
) -> None:
    _, text = _ack(language, time_zone=None, response_time=timedelta(hours=4))
    assert expected in text


def test_acknowledgement_quotes_the_customer_and_keeps_their_text_as_is() -> None:
    _, text = _ack("en", customer_text="My <b>order</b> & my <script>alert(1)</script>")
    assert "> My <b>order</b> & my <script>alert(1)</script>" in text
    assert "keep CMP-000123 in the subject line" in text


def test_other_languages_fall_back_to_english() -> None:
    mail = render("acknowledgement", "fr", sample_context("acknowledgement"))
    assert (mail.language, mail.template) == ("en", "acknowledgement.en.j2")
    assert mail.text.startswith("Dear Lorraine Whitfield,")
    assert render("sla_warning", None, sample_context("sla_warning")).language == "en"
    assert render("sla_warning", "de-AT", sample_context("sla_warning")).language == "de"
    fallback_hu = render("sla_warning", "fr", sample_context("sla_warning"), fallback_language="hu")
    assert fallback_hu.language == "hu"


def test_line_breaks_in_the_subject_are_removed() -> None:
    subject, _ = _ack("en", subject="Refund\r\nBcc: victim@example.com\n\tnow")
    assert subject == "Re: Refund Bcc: victim@example.com now [CMP-000123]"
    notice = render(
        "assignment_notice",
        "en",
        {**sample_context("assignment_notice"), "subject": "a\r\nb\x00c\u2028d"},
    )
    assert notice.subject.endswith("): a b c d")
    assert "\x00" not in notice.subject and "\u2028" not in notice.subject


def test_long_subjects_are_capped_but_keep_the_reference() -> None:
    subject, _ = _ack("de", subject="Beschwerde " * 100)
    assert len(subject) <= 200
    assert subject.endswith("… [CMP-000123]")


def test_unknown_template_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"no template nothing\.de\.j2 or nothing\.en\.j2"):
        render("nothing", "de", {})


def test_missing_required_variable_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"acknowledgement\.en\.j2: 'ref' is undefined"):
        render("acknowledgement", "en", {"subject": "x"})


def test_a_template_without_a_body_block_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path, "sla_warning.en.j2", "{% block subject %}x{% endblock %}")
    with pytest.raises(TemplateError, match=r"sla_warning.en.j2: has no \{% block body %\}"):
        render("sla_warning", "en", sample_context("sla_warning"), folder=tmp_path)


def _write(folder: Path, name: str, text: str) -> None:
    (folder / name).write_text(text, encoding="utf-8")


def test_admin_templates_override_and_extend(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "acknowledgement.en.j2",
        "{% block subject %}Thanks! [{{ ref }}]{% endblock %}"
        "{% block body %}Ours: {{ ref }}{% endblock %}",
    )
    _write(
        tmp_path,
        "acknowledgement.fr.j2",
        "{% block subject %}Merci [{{ ref }}]{% endblock %}"
        "{% block body %}Bonjour, dossier {{ ref }}.{% endblock %}",
    )
    context = sample_context("acknowledgement")
    english = render("acknowledgement", "en", context, folder=tmp_path)
    assert (english.subject, english.text) == ("Thanks! [CMP-000123]", "Ours: CMP-000123\n")
    french = render("acknowledgement", "fr", context, folder=tmp_path)
    assert (french.language, french.subject) == ("fr", "Merci [CMP-000123]")
    german = render("acknowledgement", "de", context, folder=tmp_path)
    assert german.template == "acknowledgement.de.j2"
    assert german.text.startswith("Guten Tag")  # the shipped German one


def test_html_parts_are_autoescaped(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "acknowledgement.en.html.j2",
        "{% block body %}<p>{{ customer_text }}</p>{% endblock %}",
    )
    context = {**sample_context("acknowledgement"), "customer_text": "<script>x()</script> & co"}
    mail = render("acknowledgement", "en", context, folder=tmp_path)
    assert mail.html == "<p>&lt;script&gt;x()&lt;/script&gt; &amp; co</p>\n"
    assert "> <script>x()</script> & co" in mail.text  # the text part is not escaped
    # Only the language the text was rendered in gets the HTML part.
    assert render("acknowledgement", "de", context, folder=tmp_path).html is None


def test_admin_templates_are_sandboxed(tmp_path: Path) -> None:
    escape = "{{ ref.__class__.__mro__[1].__subclasses__() }}"
    _write(
        tmp_path,
        "acknowledgement.en.j2",
        "{% block subject %}x{% endblock %}{% block body %}" + escape + "{% endblock %}",
    )
    with pytest.raises(TemplateError):
        render("acknowledgement", "en", sample_context("acknowledgement"), folder=tmp_path)


def test_check_templates_reports_problems(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "acknowledgement.de.j2",
        "{% block subject %}x{% endblock %}{% block body %}{{ ref }}{% endblock %}",
    )
    _write(tmp_path, "sla_warning.en.j2", "{% block subject %}x{% endblock %}")
    _write(tmp_path, "breach_report.en.j2", "{% block subject %}{{ ref {% endblock %}")
    _write(
        tmp_path,
        "escalation_notice.en.j2",
        "{% block subject %}{{ nope }}{% endblock %}{% block body %}{% endblock %}",
    )
    _write(tmp_path, "Notes.j2", "")
    problems = check_templates(tmp_path)
    assert len(problems) == 4, problems
    assert problems[0].startswith("Notes.j2: name it <template>.<language>.j2")
    assert problems[1].startswith("breach_report.en.j2:1: ")
    assert problems[2] == "escalation_notice.en.j2: 'nope' is undefined"
    assert problems[3] == "sla_warning.en.j2: has no {% block body %}"
    assert check_templates(tmp_path / "missing") == [f"{tmp_path / 'missing'}: not a folder"]


def test_check_templates_renders_for_a_sparse_ticket_too(tmp_path: Path) -> None:
    # Fine for the sample customer; broken for a sender without a name or an
    # unclassified ticket, which real mail brings every day.
    _write(
        tmp_path,
        "acknowledgement.en.j2",
        "{% block subject %}x{% endblock %}{% block body %}Dear {{ customer_name.split()[0] }}"
        "{% endblock %}",
    )
    _write(
        tmp_path,
        "assignment_notice.en.j2",
        "{% block subject %}x{% endblock %}{% block body %}{{ (category_confidence * 100)|round }}"
        "{% endblock %}",
    )
    problems = check_templates(tmp_path)
    assert len(problems) == 2, problems
    assert all("for a ticket with no name, no prediction, no deadline" in p for p in problems)
    assert problems[1].endswith(
        "TypeError: unsupported operand type(s) for *: 'NoneType' and 'int'"
    )
    # render() reports the same failures as TemplateError, never as a crash.
    with pytest.raises(TemplateError, match="TypeError"):
        render("assignment_notice", "en", sparse_context("assignment_notice"), folder=tmp_path)


# ---------------------------------------------------------------- text helpers


def test_subject_cleaning() -> None:
    assert clean_subject("a\r\nb\tc\x07d\u202eevil") == "a b c devil"
    assert clean_subject("word " * 20, 30) == "word word word word word…"
    assert strip_reply_prefixes("RE: Fwd: AW: Válasz: Hi [CMP-000007]") == "Hi"


def test_quote_text() -> None:
    assert quote_text("Hi\r\n\r\n\r\nthere") == "> Hi\n>\n> there"
    long = quote_text("word " * 200, 50)
    assert long.endswith("[…]") and len(long) < 60


@pytest.mark.parametrize(
    ("language", "when", "by"),
    [
        ("en", "Tuesday 24 November 2026, 13:00", "by Tuesday 24 November, 13:00"),
        ("de", "Dienstag, 24. November 2026, 13:00 Uhr", "bis Dienstag, 24. November, 13:00 Uhr"),
        ("hu", "2026. november 24. (kedd) 13:00", "legkésőbb november 24-én (kedden) 13:00-ig"),
    ],
)
def test_dates_in_the_readers_language(language: str, when: str, by: str) -> None:
    assert format_datetime(DUE, language, "Europe/Berlin") == when
    assert format_by(DUE, language, "Europe/Budapest") == by


@pytest.mark.parametrize(
    ("day", "suffix"),
    [
        (1, "jén"),
        (2, "án"),
        (3, "án"),
        (5, "én"),
        (10, "én"),
        (12, "én"),
        (16, "án"),
        (20, "án"),
        (21, "én"),
        (30, "án"),
        (31, "én"),
    ],
)
def test_hungarian_date_suffixes(day: int, suffix: str) -> None:
    value = datetime(2026, 1, day, 12, 0, tzinfo=UTC)
    assert f"január {day}-{suffix} " in format_by(value, "hu", "UTC")


@pytest.mark.parametrize(
    ("value", "business", "en", "de", "hu"),
    [
        (
            timedelta(hours=4),
            True,
            "within 4 business hours",
            "innerhalb von 4 Stunden (während unserer Geschäftszeiten)",
            "4 munkaórán belül",
        ),
        (timedelta(hours=1), False, "within 1 hour", "innerhalb einer Stunde", "1 órán belül"),
        (timedelta(days=2), False, "within 2 days", "innerhalb von 2 Tagen", "2 napon belül"),
        (timedelta(days=1), False, "within 1 day", "innerhalb eines Tages", "1 napon belül"),
        (
            timedelta(hours=24),
            True,
            "within 24 business hours",
            "innerhalb von 24 Stunden (während unserer Geschäftszeiten)",
            "24 munkaórán belül",
        ),
        (
            timedelta(minutes=90),
            False,
            "within 1 hour and 30 minutes",
            "innerhalb von 1 Stunde und 30 Minuten",
            "1 óra 30 percen belül",
        ),
    ],
)
def test_answer_times(value: timedelta, business: bool, en: str, de: str, hu: str) -> None:
    assert format_within(value, "en", business_hours=business) == en
    assert format_within(value, "de", business_hours=business) == de
    assert format_within(value, "hu", business_hours=business) == hu


def test_durations() -> None:
    value = timedelta(days=1, hours=3, minutes=5)
    assert format_duration(value, "en") == "1 day, 3 hours and 5 minutes"
    assert format_duration(value, "de") == "1 Tag, 3 Stunden und 5 Minuten"
    assert format_duration(value, "hu") == "1 nap 3 óra 5 perc"
    assert format_duration(-timedelta(hours=2), "en") == "2 hours"
    assert format_duration(timedelta(seconds=20), "de") == "weniger als eine Minute"
