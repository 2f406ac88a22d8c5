"""The pure header helpers: customer text stays literal, our headers stay ours."""

from __future__ import annotations

import base64
import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from daemon.mail_headers import (
    build_message,
    clean_header_text,
    clean_message_id,
    envelope_recipients,
    format_address,
    loop_headers,
    normalise_email,
    parse_address,
)

LONG_ID = (
    "<cmp.123456.aabcdefghijkl.0123456789abcdef.abcdefghijklmnopqrstuvwxyz@support.example.com>"
)


def _encoded_word(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


@dataclass
class Mail:
    """The fields build_message reads, with harmless defaults."""

    message_id: str = LONG_ID
    from_address: str = "Example Support <support@example.com>"
    to_addresses: list[Any] = field(default_factory=lambda: ["Anna <anna@customer.example>"])
    cc: list[Any] = field(default_factory=list)
    subject: str = "We received your complaint [CMP-000001]"
    body_text: str = "Hello\nthere\n"
    body_html: str | None = None
    in_reply_to: str | None = None
    references: list[Any] = field(default_factory=list)
    extra_headers: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


def _wire(mail: Mail) -> tuple[bytes, EmailMessage]:
    data = build_message(mail).as_bytes()
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return data, parsed


# ---------------------------------------------------------------- clean_header_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Evil\r\nBcc: victim@x", "Evil Bcc: victim@x"),
        ("folded\r\n\tline", "folded line"),
        ("a\x00b\x1bc\x7fd\x85e", "a b c d e"),
        ("left\u202eright\u2066x\u2028y", "left right x y"),
        ("  many   spaces\t\there  ", "many spaces here"),
        ("lone \ud800 surrogate", "lone \ufffd surrogate"),
        ("Grüße aus Győr", "Grüße aus Győr"),
    ],
)
def test_clean_header_text_makes_one_literal_line(raw: str, clean: str) -> None:
    assert clean_header_text(raw) == clean


@pytest.mark.parametrize(
    "smuggled",
    [
        _encoded_word("Evil\r\nBcc: victim@x"),
        "=?UTF-8?Q?Evil=0D=0ABcc=3A_victim=40x?=",
        "=?iso-8859-1?q?with spaces inside?=",
        "=?utf-8?b?" + base64.b64encode(b"x").decode() + "?==?utf-8?q?y?=",
        "=?=?utf-8?q?nested?=utf-8?q?Bcc:_x?=?=",
    ],
)
def test_clean_header_text_drops_encoded_words(smuggled: str) -> None:
    cleaned = clean_header_text(f"Hello {smuggled} world")
    assert "=?" not in cleaned
    assert cleaned.startswith("Hello") and cleaned.endswith("world")
    # What is left decodes to itself: nothing hides behind it.
    header = email.policy.default.header_factory("Subject", cleaned)
    assert str(header) == cleaned


def test_clean_header_text_caps_length() -> None:
    assert len(clean_header_text("x" * 10_000, 78)) == 78
    assert clean_header_text("word " * 100, 12) == "word word wo"


# ------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("Anna@Example.COM", "Anna@example.com"),
        (" spaced@example.com ", "spaced@example.com"),
        ("user+tag@bücher.de", "user+tag@xn--bcher-kva.de"),
        ("o'brien@example.ie", "o'brien@example.ie"),
    ],
)
def test_normalise_email_accepts_plain_addresses(raw: str, normal: str) -> None:
    assert normalise_email(raw) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "a@b\r\nBcc: victim@x",
        "a\n@b.c",
        "two@at@signs.example",
        "no-at-sign.example",
        "with space@example.com",
        '"quoted"@example.com',
        "jürgen@example.com",
        "<a@example.com>",
        "a@-bad-.example",
        "@example.com",
        "a@",
        "a..b@example.com",
        "x" * 65 + "@example.com",
    ],
)
def test_normalise_email_refuses_everything_else(bad: str) -> None:
    with pytest.raises(ValueError):
        normalise_email(bad)


def test_format_address_quotes_and_round_trips() -> None:
    formatted = format_address('Jürgen "the" Müller, Esq.', "j@example.com")
    assert parse_address(formatted) == ('Jürgen "the" Müller, Esq.', "j@example.com")
    assert format_address("", "j@example.com") == "j@example.com"


@pytest.mark.parametrize(
    "name",
    [
        "Evil\r\nBcc: victim@x",
        _encoded_word("Evil\r\nBcc: victim@x"),
        '"Quoted" <victim@x>, other@x',
        "N" * 10_000,
        'back\\slash \\" quote',
    ],
)
def test_format_address_never_yields_a_second_address(name: str) -> None:
    formatted = format_address(name, "anna@customer.example")
    display_name, address = parse_address(formatted)
    assert address == "anna@customer.example"
    assert len(display_name) <= 78
    assert "\r" not in formatted and "\n" not in formatted and "=?" not in formatted


def test_format_address_refuses_bad_address() -> None:
    with pytest.raises(ValueError):
        format_address("Anna", "anna@customer.example\r\nBcc: victim@x")


def test_parse_address_wants_exactly_one() -> None:
    with pytest.raises(ValueError):
        parse_address("a@example.com, b@example.com")
    with pytest.raises(ValueError):
        parse_address("")


# ---------------------------------------------------------------- message ids


def test_clean_message_id() -> None:
    assert clean_message_id(" <abc.1@mua.example> ") == "<abc.1@mua.example>"
    assert clean_message_id(LONG_ID) == LONG_ID
    for bad in ["abc@x", "<abc>", "<a b@x>", "<a@x>\r\nBcc: v@x", "<a@b@c>", "<<a@x>>", ""]:
        assert clean_message_id(bad) is None, bad


def test_loop_headers() -> None:
    assert loop_headers("acknowledgement", automatic=True, loop_value="cd@x") == {
        "X-Loop": "cd@x",
        "Auto-Submitted": "auto-replied",
        "X-Auto-Response-Suppress": "All",
    }
    assert loop_headers("escalation_notice", automatic=True, loop_value="cd@x") == {
        "X-Loop": "cd@x",
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "All",
    }
    assert loop_headers("agent_reply", automatic=False, loop_value="cd@x") == {"X-Loop": "cd@x"}


# -------------------------------------------------------------- build_message


def test_build_message_headers_and_crlf() -> None:
    data, parsed = _wire(
        Mail(
            subject="Ihre Beschwerde – Grüße [CMP-000001]",
            to_addresses=[format_address("Jürgen Müller", "j@customer.example")],
            cc=["cc@customer.example"],
            in_reply_to="<orig@mua.example>",
            references=["<root@mua.example>", "<orig@mua.example>"],
            extra_headers=loop_headers("acknowledgement", automatic=True, loop_value="cd@x"),
        )
    )
    assert data.isascii()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert parsed["Message-ID"] == LONG_ID
    assert parsed["Subject"] == "Ihre Beschwerde – Grüße [CMP-000001]"
    assert parsed["To"].addresses[0].display_name == "Jürgen Müller"
    assert parsed["Cc"] == "cc@customer.example"
    assert parsed["In-Reply-To"] == "<orig@mua.example>"
    assert parsed["References"] == "<root@mua.example> <orig@mua.example>"
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["Date"].datetime == datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    assert parsed["MIME-Version"] == "1.0"
    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content_charset() == "utf-8"


def test_long_message_ids_are_folded_at_spaces_never_encoded() -> None:
    ids = [LONG_ID.replace("123456", str(n)) for n in range(100_000, 100_030)]
    data, parsed = _wire(Mail(in_reply_to=ids[-1], references=ids))
    header_block = data.split(b"\r\n\r\n", 1)[0]
    assert b"=?" not in header_block
    assert all(len(line) <= 998 for line in header_block.split(b"\r\n"))
    assert parsed["Message-ID"] == LONG_ID
    assert parsed["In-Reply-To"] == ids[-1]
    # At most twenty, keeping the root and the most recent ones.
    kept = str(parsed["References"]).split()
    assert len(kept) == 20 and kept[0] == ids[0] and kept[-1] == ids[-1]


def test_build_message_with_html_alternative() -> None:
    _, parsed = _wire(Mail(body_text="plain ü", body_html="<p>html ü</p>"))
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.get_body(("plain",)), parsed.get_body(("html",))
    assert plain is not None and plain.get_content().strip() == "plain ü"
    assert html is not None and html.get_content().strip() == "<p>html ü</p>"


def test_build_message_recleans_what_it_reads() -> None:
    _, parsed = _wire(
        Mail(
            subject="stored\r\nBcc: victim@x " + _encoded_word("x\r\nBcc: y@z"),
            references=["<ok@x>", "not an id", "<bad id@x>", "<a@x>\r\nBcc: v@x"],
            extra_headers={"X-Loop": "loop\r\nBcc: v@x"},
        )
    )
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "stored Bcc: victim@x"
    assert parsed["References"] == "<ok@x> <a@x>"
    assert parsed["X-Loop"] == "loop Bcc: v@x"


@pytest.mark.parametrize(
    "broken",
    [
        Mail(message_id="not-an-id"),
        Mail(to_addresses=[]),
        Mail(to_addresses=["a@example.com, victim@x"]),
        Mail(to_addresses=["a@example.com\r\nBcc: victim@x"]),
        Mail(from_address="nobody"),
        Mail(extra_headers={"Bcc": "victim@x"}),
        Mail(extra_headers={"From": "ceo@example.com"}),
    ],
)
def test_build_message_refuses_rows_it_cannot_trust(broken: Mail) -> None:
    with pytest.raises(ValueError):
        build_message(broken)


def test_envelope_recipients_are_to_and_cc_once_each() -> None:
    message = build_message(
        Mail(
            to_addresses=["A <a@x.example>", "b@x.example"],
            cc=["a@x.example", "C <c@x.example>"],
        )
    )
    assert envelope_recipients(message) == ["a@x.example", "b@x.example", "c@x.example"]


def test_body_line_endings_and_controls_are_normalised() -> None:
    _, parsed = _wire(Mail(body_text="one\r\ntwo\rthree\x00\x07 four"))
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().replace("\r\n", "\n") == "one\ntwo\nthree four\n"
