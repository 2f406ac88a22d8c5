"""Threading rules: signed references join; tags and known ids only for participants."""

from __future__ import annotations

from daemon.ticket_matching import MatchCandidates, match_ticket

PEOPLE = frozenset({"anna@example.com", "boss@example.com"})


def test_signed_reference_wins_for_any_sender() -> None:
    result = match_ticket("someone@else.test", MatchCandidates(signed_ticket_ids=[4, 9]))
    assert result.ticket_id == 4
    assert "signed" in result.reason


def test_subject_tag_joins_only_participants() -> None:
    candidates = MatchCandidates(tagged_ticket=(3, PEOPLE), tag="CMP-000003")
    assert match_ticket("anna@example.com", candidates).ticket_id == 3
    stranger = match_ticket("mallory@evil.test", candidates)
    assert stranger.ticket_id is None
    assert "not a participant" in stranger.reason


def test_known_message_reference_joins_only_participants() -> None:
    candidates = MatchCandidates(referenced_tickets={8: PEOPLE})
    assert match_ticket("boss@example.com", candidates).ticket_id == 8
    assert match_ticket("mallory@evil.test", candidates).ticket_id is None
    assert match_ticket(None, candidates).ticket_id is None


def test_no_candidates_means_new_ticket() -> None:
    result = match_ticket("anna@example.com", MatchCandidates())
    assert result.ticket_id is None
    assert result.reason == "no reference to an existing ticket"


def test_sender_comparison_ignores_case() -> None:
    candidates = MatchCandidates(tagged_ticket=(3, PEOPLE), tag="CMP-000003")
    assert match_ticket("Anna@Example.COM", candidates).ticket_id == 3
