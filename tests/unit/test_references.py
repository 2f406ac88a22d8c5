"""Signed references: only the holder of the secret can mint one that verifies."""

from __future__ import annotations

from daemon.references import (
    SignedReference,
    format_ticket_ref,
    make_reference,
    parse_ticket_tag,
    verify_references,
)

SECRET = b"0123456789abcdef0123456789abcdef"


def test_reference_round_trip() -> None:
    ref = make_reference(SECRET, 123, "c", "support.example.com")
    assert ref.startswith("<cmp.123.c.") and ref.endswith("@support.example.com>")
    assert verify_references(SECRET, [ref]) == [SignedReference(123, "c")]


def test_agent_audience_is_part_of_the_signature() -> None:
    ref = make_reference(SECRET, 7, "a42", "x.test", nonce="abc")
    assert verify_references(SECRET, [ref]) == [SignedReference(7, "a42")]
    forged = ref.replace(".a42.", ".a43.")
    assert verify_references(SECRET, [forged]) == []


def test_other_secret_or_changed_ticket_does_not_verify() -> None:
    ref = make_reference(SECRET, 5, "c", "x.test", nonce="n1")
    assert verify_references(b"another secret", [ref]) == []
    assert verify_references(SECRET, [ref.replace("cmp.5.", "cmp.6.")]) == []


def test_verification_is_case_insensitive_and_skips_foreign_ids() -> None:
    ref = make_reference(SECRET, 9, "c", "x.test", nonce="n2")
    ids = ["<abc@mail.example>", ref.upper(), "garbage", ""]
    assert verify_references(SECRET, ids) == [SignedReference(9, "c")]


def test_ticket_tag_parsing() -> None:
    assert parse_ticket_tag("Re: Problem [CMP-000123]") == "CMP-000123"
    assert parse_ticket_tag("AW: [cmp-42] Frage") == "CMP-000042"
    assert parse_ticket_tag("[CMP-1] then [CMP-000002]") == "CMP-000002"
    assert parse_ticket_tag("CMP-000123 without brackets") is None
    assert parse_ticket_tag("[ABC-000123]") is None
    assert parse_ticket_tag("[ABC-000123]", prefix="ABC") == "ABC-000123"
    assert format_ticket_ref(1234567) == "CMP-1234567"
