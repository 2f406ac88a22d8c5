"""Routing configuration: TOML sections, durations, and errors with their key paths."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from routing.config import (
    RoutingConfig,
    RuleConfig,
    SlaPolicy,
    address_matches,
    default_routing_config,
    example_routing_toml,
    parse_duration,
    parse_interval,
    routing_config_from_document,
)


def _document() -> dict[str, Any]:
    """The default configuration as a mutable, TOML-like document."""
    dumped = default_routing_config().model_dump(exclude_none=True)
    for key in ("calendars", "teams", "sla_policies", "rules"):
        dumped[key] = list(dumped[key])
    return dumped


def _errors(document: dict[str, Any]) -> dict[tuple[int | str, ...], str]:
    with pytest.raises(ValidationError) as caught:
        RoutingConfig.model_validate(document)
    return {tuple(error["loc"]): error["msg"] for error in caught.value.errors()}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        (" 1h 30m ", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1d4h", timedelta(hours=28)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_with_a_working_day() -> None:
    assert parse_duration("3d", day=timedelta(hours=8)) == timedelta(hours=24)


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "1.5h", "0h", "-1h", "4h2d"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_parse_interval() -> None:
    assert parse_interval("09:00-17:00") == (540, 1020)
    assert parse_interval("22:00-24:00") == (1320, 1440)
    for bad in ("17:00-09:00", "9-17", "25:00-26:00", "09:00-24:30", "10:00-10:00"):
        with pytest.raises(ValueError):
            parse_interval(bad)


def test_address_patterns() -> None:
    assert address_matches("Boss@BigCorp.com", ("*@bigcorp.com",)) == "*@bigcorp.com"
    assert address_matches("boss@bigcorp.com", ("bigcorp.com",)) == "bigcorp.com"
    assert address_matches("boss@notbigcorp.com", ("bigcorp.com",)) is None
    # A domain glob covers subdomains only: bare "bigcorp.com" does not.
    assert address_matches("a@sub.bigcorp.com", ("*.bigcorp.com",)) == "*.bigcorp.com"
    assert address_matches("a@bigcorp.com", ("*.bigcorp.com",)) is None
    assert address_matches("a@sub.bigcorp.com", ("bigcorp.com",)) is None


def test_default_config_is_complete() -> None:
    config = default_routing_config()
    assert config.tiers.team_for_tier(1) == "frontline"
    assert config.tiers.team_for_tier(2, "billing") == "billing"
    assert config.tiers.team_for_tier(2, "no-such-category") == "customer-relations"
    assert config.tiers.team_for_tier(3) == "supervisors"
    assert config.tiers.team_for_tier(4) == "resolution-lead"
    assert config.rules[-1].is_default
    critical = config.sla_policy("critical")
    assert not critical.business_hours
    assert critical.resolution == timedelta(days=1)
    high = config.sla_policy("high")
    # Business-hours "d" is an 8-hour working day: 3d = 24 business hours.
    assert (high.first_response, high.resolution) == (timedelta(hours=4), timedelta(hours=24))
    assert config.sla_policy("low").resolution_ceiling == timedelta(days=30)
    assert default_routing_config("demo.test").team("billing").email == "billing@demo.test"


def test_example_toml_parses_and_validates() -> None:
    document = tomllib.loads(example_routing_toml())
    document["database"] = {"url": "sqlite://"}  # other sections are ignored
    config = routing_config_from_document(document)
    assert [c.name for c in config.calendars] == ["office", "budapest", "always"]
    budapest = config.calendar("budapest")
    assert budapest.hours.mon == ("08:00-12:00", "12:30-16:30")
    assert budapest.hours.sat == ()  # days left out are closed
    assert config.calendar("always").always_open
    assert config.routing.vip_customers[-1] == "*@important.example"
    assert config.rules[-1].is_default
    assert config.sla_policy("bigcorp").customers == ("*@bigcorp.example",)


def test_document_without_routing_sections_gets_the_default() -> None:
    config = routing_config_from_document({"routing": {"vip_customers": ["vip.example"]}})
    assert config.tiers.frontline == "frontline"
    assert config.routing.vip_customers == ("*@vip.example",)


def test_the_default_rule_is_required() -> None:
    document = _document()
    document["rules"] = document["rules"][:-1]
    errors = _errors(document)
    assert "the last rule must have no conditions" in errors[("rules", 2)]


def test_a_default_rule_before_others_is_reported() -> None:
    document = _document()
    document["rules"].insert(0, {"name": "catch-all"})
    errors = _errors(document)
    assert "can never match" in errors[("rules", 0)]


def test_invalid_regex_is_a_validation_error() -> None:
    document = _document()
    document["rules"][0] = {"name": "broken", "subject_regex": "(unclosed"}
    errors = _errors(document)
    assert "invalid regular expression" in errors[("rules", 0, "subject_regex")]


def test_unknown_references_are_reported_with_their_key_paths() -> None:
    document = _document()
    document["teams"][0]["calendar"] = "nowhere"
    document["tiers"]["supervisors"] = "bosses"
    document["tiers"]["specialists"]["billing"] = "money"
    document["rules"][1]["team"] = "ghosts"
    document["rules"][1]["sla_policy"] = "gold"
    errors = _errors(document)
    assert errors[("teams", 0, "calendar")].startswith("unknown calendar 'nowhere'")
    assert errors[("tiers", "supervisors")].startswith("unknown team 'bosses'")
    assert errors[("tiers", "specialists", "billing")].startswith("unknown team 'money'")
    assert errors[("rules", 1, "team")].startswith("unknown team 'ghosts'")
    assert errors[("rules", 1, "sla_policy")].startswith("unknown SLA policy 'gold'")


def test_key_paths_nest_when_embedded() -> None:
    from pydantic import BaseModel

    class Settings(BaseModel):
        routing_config: RoutingConfig

    document = _document()
    document["teams"][0]["calendar"] = "nowhere"
    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"routing_config": document})
    assert caught.value.errors()[0]["loc"] == ("routing_config", "teams", 0, "calendar")


def test_duplicate_names_and_missing_severity_coverage() -> None:
    document = _document()
    document["teams"].append(dict(document["teams"][0]))
    document["sla_policies"][3] = {**document["sla_policies"][3], "categories": ["billing"]}
    errors = _errors(document)
    assert errors[("teams", len(document["teams"]) - 1, "name")] == "'frontline' is used twice"
    assert "no policy covers severity 'low'" in errors[("sla_policies",)]


def test_unknown_keys_are_rejected() -> None:
    document = _document()
    document["rules"][0]["catgory"] = ["billing"]
    errors = _errors(document)
    assert errors[("rules", 0, "catgory")] == "Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ({"time_zone": "Mars/Olympus"}, "not an IANA time zone"),
        ({"holidays_country": "XX"}, "no such country"),
        ({"holidays_country": "DE", "holidays_subdivision": "ZZ"}, "not a region of DE"),
        ({"holidays_subdivision": "BY"}, "needs holidays_country"),
        ({"hours": {"mon": ["09:00-12:00", "11:00-13:00"]}}, "intervals overlap"),
        ({"hours": {"mon": []}}, "never open"),
        ({"always_open": True, "holidays_country": "DE"}, "remove holidays_country"),
    ],
)
def test_calendar_problems(calendar: dict[str, Any], message: str) -> None:
    document = _document()
    document["calendars"][0] = {"name": "office", "time_zone": "Europe/Berlin", **calendar}
    errors = _errors(document)
    assert any(message in text for text in errors.values()), errors


def test_calendar_hours_accept_a_single_string() -> None:
    document = _document()
    document["calendars"][0] = {
        "name": "office",
        "time_zone": "Europe/Berlin",
        "hours": {"mon": "08:00-12:00", "sat": ["12:00-14:00", "09:00-11:00"]},
    }
    calendar = RoutingConfig.model_validate(document).calendar("office")
    assert calendar.hours.mon == ("08:00-12:00",)
    assert calendar.hours.sat == ("09:00-11:00", "12:00-14:00")
    assert calendar.hours.tue == ()


def test_team_needs_members_or_an_address() -> None:
    document = _document()
    document["teams"][0] = {"name": "frontline", "calendar": "office"}
    errors = _errors(document)
    assert "needs members or an email address" in errors[("teams", 0)]


def test_specialists_need_a_default() -> None:
    document = _document()
    del document["tiers"]["specialists"]["default"]
    errors = _errors(document)
    assert '"default"' in errors[("tiers", "specialists")]


def test_sla_policy_durations_follow_the_clock() -> None:
    business = SlaPolicy.model_validate(
        {
            "name": "p",
            "severity": "high",
            "first_response": "1d",
            "next_response": "1d4h",
            "resolution": "2d",
            "business_day": "7h30m",
        }
    )
    assert business.first_response == timedelta(hours=7, minutes=30)
    assert business.next_response == timedelta(hours=11, minutes=30)
    around_the_clock = SlaPolicy.model_validate(
        {
            "name": "p",
            "severity": ["high"],
            "business_hours": False,
            "first_response": "1d",
            "next_response": "1d",
            "resolution": "2d",
        }
    )
    assert around_the_clock.first_response == timedelta(days=1)
    with pytest.raises(ValidationError, match="warn_at"):
        SlaPolicy.model_validate(
            {
                "name": "p",
                "severity": ["low"],
                "first_response": "1h",
                "next_response": "1h",
                "resolution": "1h",
                "warn_at": 1.5,
            }
        )


def test_rule_contradiction_and_empty_lists() -> None:
    with pytest.raises(ValidationError, match="never both hold"):
        RuleConfig.model_validate({"category": ["billing"], "unclassified": True})
    with pytest.raises(ValidationError, match="empty list never matches"):
        RuleConfig.model_validate({"category": []})
    rule = RuleConfig.model_validate({"sender": "BigCorp.com", "language": ["DE-at"]})
    assert rule.sender == ("*@bigcorp.com",)
    assert rule.language == ("de",)
    assert not rule.is_default
