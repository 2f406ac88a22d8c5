"""Routing configuration: teams, calendars, tiers, SLA policies, rules and templates.

Every model here is one section of the daemon's TOML file (``[[teams]]``,
``[[calendars]]``, ``[tiers]``, ``[[sla_policies]]``, ``[[rules]]``,
``[routing]``, ``[templates]``), validated with pydantic v2: unknown keys are
rejected (they are almost always typos) and every problem, cross-references
included, is reported with its key path (``rules[2].team: unknown team ...``).

:class:`RoutingConfig` is the root. It can be validated on its own from the
sections of a parsed TOML document (:func:`routing_config_from_document`) or
used as a base class / field by the daemon's settings; the cross-reference
checks run either way.

Durations (:func:`parse_duration`) are written ``"30m"``, ``"4h"``,
``"1h30m"`` or ``"3d"``. In a 24x7 policy a day is 24 hours. In a
business-hours policy a day is one *working day* of ``business_day`` business
hours (8 by default), so ``"3d"`` means 24 business hours; hours and minutes
always mean exactly that much open time of the team's calendar.
"""

from __future__ import annotations

import fnmatch
import itertools
import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

__all__ = [
    "ROUTING_SECTIONS",
    "SEVERITIES",
    "CalendarConfig",
    "MemberConfig",
    "OpenDate",
    "RoutingConfig",
    "RoutingSection",
    "RuleConfig",
    "SlaPolicy",
    "TeamConfig",
    "TemplatesConfig",
    "TiersConfig",
    "WeeklyHours",
    "address_matches",
    "default_routing_config",
    "example_routing_toml",
    "parse_duration",
    "parse_interval",
    "routing_config_from_document",
    "severity_rank",
]

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
"""The severity scale, least severe first (the classifier's default scale)."""

Severity = Literal["low", "medium", "high", "critical"]
Strategy = Literal["round_robin", "least_loaded", "none"]

ROUTING_SECTIONS: tuple[str, ...] = (
    "routing",
    "calendars",
    "teams",
    "tiers",
    "sla_policies",
    "rules",
    "templates",
)
"""The top-level TOML keys that belong to :class:`RoutingConfig`."""

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
_TEMPLATE_NAME = r"^[a-z0-9][a-z0-9_]*$"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_INTERVAL = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
_DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MINUTES_PER_DAY = 24 * 60


def severity_rank(severity: str | None) -> int:
    """Position of ``severity`` on :data:`SEVERITIES` (case-insensitive); -1 if unknown."""
    if severity is None:
        return -1
    try:
        return SEVERITIES.index(severity.lower())
    except ValueError:
        return -1


def parse_duration(text: str, *, day: timedelta = timedelta(hours=24)) -> timedelta:
    """Parse ``"30m"``, ``"4h"``, ``"1h30m"``, ``"2d"``, ``"1d4h"``, ``"45s"`` into a timedelta.

    ``day`` is what one ``d`` stands for: 24 hours by default, one working day
    (e.g. 8 hours) for business-hours SLA policies. Whitespace is ignored; the
    result must be positive. Raises :class:`ValueError` otherwise.
    """
    compact = "".join(text.split()).lower()
    match = _DURATION.match(compact)
    if not compact or match is None:
        raise ValueError(f'{text!r} is not a duration; write e.g. "30m", "4h", "1h30m" or "2d"')
    days, hours, minutes, seconds = (int(group) if group else 0 for group in match.groups())
    value = days * day + timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    return value


def parse_interval(text: str) -> tuple[int, int]:
    """Parse ``"09:00-17:00"`` into minutes since midnight, ``(540, 1020)``.

    ``24:00`` is allowed as an end (open until midnight). Raises
    :class:`ValueError` for malformed or empty intervals.
    """
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise ValueError(f'{text!r} is not an interval like "09:00-17:00"')
    start_h, start_m, end_h, end_m = (int(group) for group in match.groups())
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if start_h > 23 or end_h > 24 or start_m > 59 or end_m > 59 or end > _MINUTES_PER_DAY:
        raise ValueError(f"{text!r}: times go from 00:00 to 24:00")
    if end <= start:
        raise ValueError(
            f"{text!r}: the end must be after the start (split overnight hours into "
            'two days, e.g. "22:00-24:00" and "00:00-06:00")'
        )
    return start, end


def _address_pattern(pattern: str) -> str:
    pattern = pattern.strip().lower()
    if not pattern or any(ch.isspace() for ch in pattern):
        raise ValueError(f'{pattern!r} is not an address pattern like "*@example.com"')
    # A bare domain is the friendliest way to name a whole customer.
    return pattern if "@" in pattern else f"*@{pattern}"


def address_matches(address: str, patterns: tuple[str, ...] | list[str]) -> str | None:
    """The first glob pattern (``*@bigcorp.com``) ``address`` matches, or None.

    Matching is case-insensitive; a pattern without ``@`` is a domain.
    """
    address = address.strip().lower()
    for pattern in patterns:
        if fnmatch.fnmatchcase(address, _address_pattern(pattern)):
            return pattern
    return None


def _check_email(value: str) -> str:
    value = value.strip()
    local, at, domain = value.partition("@")
    if not at or not local or "." not in domain or any(ch.isspace() for ch in value):
        raise ValueError(f"{value!r} is not a plain email address like team@example.com")
    return value.lower()


def _check_language(value: str) -> str:
    value = value.strip().lower().replace("_", "-").split("-")[0]
    if not _LANGUAGE.match(value):
        raise ValueError(f'{value!r} is not a language code like "en", "de" or "hu"')
    return value


class _Section(BaseModel):
    # Unknown keys are almost always typos; reporting them beats ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


Name = Annotated[str, Field(min_length=1, max_length=64, pattern=_NAME)]
TemplateName = Annotated[str, Field(min_length=1, max_length=64, pattern=_TEMPLATE_NAME)]


class MemberConfig(_Section):
    """One ``[[teams.members]]`` entry: an agent."""

    name: Annotated[str, Field(min_length=1)]
    email: str
    away: bool = False
    """On holiday or off sick: never assigned new tickets."""
    max_open: Annotated[int, Field(ge=1)] | None = None
    """Assign no more tickets once this many are open for the agent."""

    @field_validator("email")
    @classmethod
    def _check_member_email(cls, value: str) -> str:
        return _check_email(value)


class TeamConfig(_Section):
    """One ``[[teams]]`` entry: a group of agents sharing a calendar."""

    name: Name
    members: tuple[MemberConfig, ...] = ()
    calendar: Name
    """The name of a ``[[calendars]]`` entry: the team's working hours."""
    email: str | None = None
    """The team's own address, told about tickets nobody could be assigned."""
    language: str = "en"
    """The language of the notices this team's agents receive."""

    @field_validator("email")
    @classmethod
    def _check_team_email(cls, value: str | None) -> str | None:
        return None if value is None else _check_email(value)

    @field_validator("language")
    @classmethod
    def _check_team_language(cls, value: str) -> str:
        return _check_language(value)

    @model_validator(mode="after")
    def _check_members(self) -> TeamConfig:
        if not self.members and self.email is None:
            raise ValueError("a team needs members or an email address (or both)")
        emails = [member.email for member in self.members]
        repeated = sorted({email for email in emails if emails.count(email) > 1})
        if repeated:
            raise ValueError(f"members are listed twice: {', '.join(repeated)}")
        return self


def _intervals(value: Any) -> Any:
    if isinstance(value, str):
        value = [value]  # "09:00-17:00" alone is the obvious shorthand
    return value


DayHours = tuple[str, ...]


def _normalised_day(value: tuple[str, ...]) -> tuple[str, ...]:
    """A day's intervals sorted and written ``HH:MM-HH:MM``; overlaps are an error."""
    parsed = sorted(parse_interval(text) for text in value)
    for (_, end), (start, _) in itertools.pairwise(parsed):
        if start < end:
            raise ValueError("intervals overlap")
    return tuple(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in parsed)


class WeeklyHours(_Section):
    """Opening hours per weekday, wall-clock in the calendar's time zone.

    Several intervals per day are allowed (``["08:00-12:00", "13:00-17:00"]``);
    an empty list, or leaving the day out, closes the day.
    """

    mon: DayHours = ()
    tue: DayHours = ()
    wed: DayHours = ()
    thu: DayHours = ()
    fri: DayHours = ()
    sat: DayHours = ()
    sun: DayHours = ()

    @field_validator(*_DAY_KEYS, mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _intervals(value)

    @field_validator(*_DAY_KEYS)
    @classmethod
    def _check_day(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _normalised_day(value)

    def by_weekday(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Parsed intervals (minutes since midnight), Monday first (``date.weekday()``)."""
        return tuple(
            tuple(parse_interval(text) for text in getattr(self, key)) for key in _DAY_KEYS
        )


_OFFICE_HOURS = WeeklyHours(
    mon=("09:00-17:00",),
    tue=("09:00-17:00",),
    wed=("09:00-17:00",),
    thu=("09:00-17:00",),
    fri=("09:00-17:00",),
)


class OpenDate(_Section):
    """One ``open_dates`` entry: a date that is open with these hours, whatever else says."""

    date: date
    hours: DayHours

    @field_validator("hours", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _intervals(value)

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("an open date needs its hours (use closed_dates to close a day)")
        return _normalised_day(value)

    def parsed_hours(self) -> tuple[tuple[int, int], ...]:
        """The hours as minutes since local midnight."""
        return tuple(parse_interval(text) for text in self.hours)


class CalendarConfig(_Section):
    """One ``[[calendars]]`` entry: a team's business hours and closed days."""

    name: Name
    time_zone: str
    """An IANA zone name such as ``Europe/Berlin``; hours are wall-clock there."""
    hours: WeeklyHours = _OFFICE_HOURS
    """Opening hours; Monday to Friday 09:00-17:00 when the key is absent."""
    holidays_country: str | None = None
    """ISO country code whose public holidays close the calendar (``DE``, ``HU``, ``GB``)."""
    holidays_subdivision: str | None = None
    """Region for regional holidays (``BY`` for Bavaria, ``ENG`` for England)."""
    closed_dates: tuple[date, ...] = ()
    """Extra closed days (company holidays), in the calendar's time zone."""
    open_dates: tuple[OpenDate, ...] = ()
    """Days open with their own hours even on a weekend or holiday (a stock-taking Saturday)."""
    weekend_workdays: bool = True
    """Open on the weekend days the country's law makes working days in exchange for a
    bridge day off (Hungary, for one), with the usual weekday hours."""
    always_open: bool = False
    """24x7: every instant is business time; hours and holidays do not apply."""

    @field_validator("time_zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f'{value!r} is not an IANA time zone like "Europe/Berlin"') from None
        return value

    @field_validator("holidays_country")
    @classmethod
    def _check_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().upper()
        if value not in holidays.list_supported_countries():
            raise ValueError(f"{value!r}: the holidays library knows no such country code")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> CalendarConfig:
        if self.holidays_subdivision is not None:
            if self.holidays_country is None:
                raise ValueError("holidays_subdivision needs holidays_country")
            known = holidays.list_supported_countries()[self.holidays_country]
            if self.holidays_subdivision not in known:
                choices = ", ".join(known) or "none"
                raise ValueError(
                    f"holidays_subdivision {self.holidays_subdivision!r} is not a region of "
                    f"{self.holidays_country} (known: {choices})"
                )
        if self.always_open:
            conflicting = [
                key
                for key, unset in (
                    ("hours", _OFFICE_HOURS),
                    ("holidays_country", None),
                    ("closed_dates", ()),
                    ("open_dates", ()),
                )
                if getattr(self, key) != unset
            ]
            if conflicting:
                raise ValueError(f"always_open = true is 24x7; remove {', '.join(conflicting)}")
        elif not any(self.hours.by_weekday()):
            raise ValueError("the calendar is never open: give hours or always_open = true")
        opened = [entry.date for entry in self.open_dates]
        repeated = sorted({day for day in opened if opened.count(day) > 1})
        if repeated:
            raise ValueError(f"open_dates lists {', '.join(map(str, repeated))} more than once")
        both = sorted(set(opened) & set(self.closed_dates))
        if both:
            raise ValueError(f"{', '.join(map(str, both))} is in both open_dates and closed_dates")
        return self


class TiersConfig(_Section):
    """``[tiers]``: which team owns each level of the escalation matrix."""

    frontline: Name
    """Tier 1: first-line agents."""
    specialists: dict[str, Name]
    """Tier 2, functional: a team per category, with ``default`` for the rest."""
    supervisors: Name
    """Tier 3: customer-service supervisors."""
    resolution_lead: Name
    """Tier 4: someone with the authority to settle."""
    triage: Name
    """Unclassified tickets (the model was not confident) go here first."""
    admins: tuple[str, ...] = ()
    """Addresses that receive breach reports (a deadline passed at tier 4)."""

    @field_validator("specialists")
    @classmethod
    def _check_specialists(cls, value: dict[str, str]) -> dict[str, str]:
        if "default" not in value:
            raise ValueError('add a "default" team for categories without their own')
        return value

    @field_validator("admins")
    @classmethod
    def _check_admins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_email(address) for address in value)

    def team_for_tier(self, tier: int, category: str | None = None) -> str:
        """The team owning ``tier`` (1-4); tier 2 depends on the category."""
        if tier == 1:
            return self.frontline
        if tier == 2:
            return self.specialists.get(category or "", self.specialists["default"])
        if tier == 3:
            return self.supervisors
        if tier == 4:
            return self.resolution_lead
        raise ValueError(f"tier must be 1 to 4, not {tier}")


class SlaPolicy(_Section):
    """One ``[[sla_policies]]`` entry: deadlines for matching tickets."""

    name: Name
    severity: Annotated[tuple[Severity, ...], Field(min_length=1)]
    """The severities this policy applies to."""
    categories: tuple[str, ...] | None = None
    """Only these categories (all when absent)."""
    customers: tuple[str, ...] | None = None
    """Only these senders: glob patterns (``*@bigcorp.com``) or bare domains."""
    business_hours: bool = True
    """Count only the owning team's business hours (false: 24x7)."""
    business_day: timedelta = timedelta(hours=8)
    """What ``d`` means in business-hours durations: business time in one working day."""
    first_response: timedelta
    """Time to the first agent reply."""
    next_response: timedelta
    """Time to answer each customer follow-up."""
    resolution: timedelta
    """Time to resolve."""
    resolution_ceiling: timedelta = timedelta(days=30)
    """Resolution never later than this much elapsed time after opening (24-hour days,
    paused time excluded), whatever the business-hours arithmetic says."""
    warn_at: Annotated[float, Field(gt=0, lt=1)] = 0.8
    """Warn the owner when this fraction of a deadline's time is used."""

    @field_validator("severity", mode="before")
    @classmethod
    def _listify_severity(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("customers")
    @classmethod
    def _check_customers(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if value is None else tuple(_address_pattern(p) for p in value)

    @field_validator("business_day", "resolution_ceiling", mode="before")
    @classmethod
    def _plain_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("first_response", "next_response", "resolution", mode="before")
    @classmethod
    def _sla_duration(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        business = info.data.get("business_hours", True)
        day = info.data.get("business_day", timedelta(hours=8)) if business else timedelta(1)
        return parse_duration(value, day=day)

    @field_validator(
        "business_day", "first_response", "next_response", "resolution", "resolution_ceiling"
    )
    @classmethod
    def _positive(cls, value: timedelta, info: ValidationInfo) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        if info.field_name == "business_day" and value > timedelta(hours=24):
            raise ValueError("a working day has at most 24 hours")
        return value

    @property
    def is_generic(self) -> bool:
        """True when the policy matches by severity alone."""
        return self.categories is None and self.customers is None

    def specificity(self, *, category: str | None, sender: str) -> int | None:
        """How specifically this policy matches (higher wins), or None when it does not.

        A customer match beats a category match, which beats severity alone.
        """
        score = 0
        if self.customers is not None:
            if address_matches(sender, self.customers) is None:
                return None
            score += 2
        if self.categories is not None:
            if category not in self.categories:
                return None
            score += 1
        return score


class RuleConfig(_Section):
    """One ``[[rules]]`` entry: conditions (all must hold) and what to do.

    Rules are tried in order and the first whose conditions all hold wins;
    the last rule must have no conditions (the default).
    """

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    # Conditions
    category: tuple[str, ...] | None = None
    min_severity: Severity | None = None
    language: tuple[str, ...] | None = None
    sender: tuple[str, ...] | None = None
    """Glob patterns on the sender's address (``*@bigcorp.com``) or bare domains."""
    vip: bool | None = None
    """True: the sender is in ``[routing] vip_customers``; false: is not."""
    mailbox: tuple[str, ...] | None = None
    """Names of ``[[mailboxes]]`` the mail arrived in."""
    to_address: tuple[str, ...] | None = None
    """Glob patterns on the To/Cc addresses (``vip@example.com``)."""
    signal: tuple[str, ...] | None = None
    """Any of these classifier signals (``legal_threat``, ``safety_risk``, ...)."""
    subject_regex: re.Pattern[str] | None = None
    """Searched in the subject, case-insensitively."""
    text_regex: re.Pattern[str] | None = None
    """Searched in the customer's text, case-insensitively."""
    unclassified: bool | None = None
    """True: only tickets the classifier could not categorise; false: only classified ones."""
    # Actions
    tier: Annotated[int, Field(ge=1, le=4)] = 1
    team: Name | None = None
    """Override the tier's team (``[tiers]``)."""
    sla_policy: Name | None = None
    """Force a policy; otherwise the most specific matching policy is chosen."""
    assignment: Strategy = "round_robin"
    tags: tuple[str, ...] = ()
    acknowledge: bool = True
    ack_template: TemplateName = "acknowledgement"

    @field_validator(
        "category", "language", "sender", "mailbox", "to_address", "signal", "tags", mode="before"
    )
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("category", "mailbox", "signal")
    @classmethod
    def _non_empty(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list never matches; remove the key instead")
        return value

    @field_validator("language")
    @classmethod
    def _check_languages(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list never matches; remove the key instead")
        return None if value is None else tuple(_check_language(v) for v in value)

    @field_validator("sender", "to_address")
    @classmethod
    def _check_patterns(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("an empty list never matches; remove the key instead")
        return None if value is None else tuple(_address_pattern(p) for p in value)

    @field_validator("subject_regex", "text_regex", mode="before")
    @classmethod
    def _compile(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            # Case-insensitive: admins write "refund", customers write "REFUND".
            return re.compile(value, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {value!r}: {exc}") from None

    @model_validator(mode="after")
    def _check_contradictions(self) -> RuleConfig:
        if self.unclassified and self.category is not None:
            raise ValueError("category and unclassified = true can never both hold")
        return self

    @property
    def is_default(self) -> bool:
        """True when the rule has no conditions (matches every ticket)."""
        return all(getattr(self, key) is None for key in _CONDITION_KEYS)


_CONDITION_KEYS: tuple[str, ...] = (
    "category",
    "min_severity",
    "language",
    "sender",
    "vip",
    "mailbox",
    "to_address",
    "signal",
    "subject_regex",
    "text_regex",
    "unclassified",
)


class RoutingSection(_Section):
    """``[routing]``: settings that are not tied to one rule."""

    vip_customers: tuple[str, ...] = ()
    """Addresses or domains (glob patterns) of customers treated as VIPs."""
    escalate_unanswered_after: Annotated[int, Field(ge=0)] = 3
    """Escalate one level after this many customer messages without an agent reply (0: off)."""
    escalation_assignment: Strategy = "round_robin"
    """How the new owner is chosen within the team a ticket escalates to."""
    notify_customer_on_escalation: bool = True
    """Tell the customer (template ``customer_escalation_note``) when a senior team takes over."""
    reopen_within: timedelta = timedelta(days=14)
    """A customer reply this long after resolution reopens the ticket; later ones open a new one."""

    @field_validator("reopen_within", mode="before")
    @classmethod
    def _reopen_duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("vip_customers")
    @classmethod
    def _check_vips(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_address_pattern(p) for p in value)


class TemplatesConfig(_Section):
    """``[templates]``: where message templates come from."""

    folder: Path | None = None
    """A folder of your own ``<name>.<language>.j2`` files; they override the shipped ones."""
    fallback_language: str = "en"
    """Used when a template does not exist in the customer's language."""
    quote_chars: Annotated[int, Field(ge=0, le=5000)] = 400
    """How much of the customer's text the acknowledgement quotes back."""

    @field_validator("fallback_language")
    @classmethod
    def _check_fallback(cls, value: str) -> str:
        return _check_language(value)


def _unknown(kind: str, name: str, known: set[str]) -> str:
    return f"unknown {kind} {name!r} (known: {', '.join(sorted(known))})"


def _error(loc: tuple[str | int, ...], message: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("routing_reference", message),
        loc=loc,
        input=value,
    )


class RoutingConfig(_Section):
    """The whole routing configuration (the root of the sections above)."""

    routing: RoutingSection = RoutingSection()
    calendars: Annotated[tuple[CalendarConfig, ...], Field(min_length=1)]
    teams: Annotated[tuple[TeamConfig, ...], Field(min_length=1)]
    tiers: TiersConfig
    sla_policies: Annotated[tuple[SlaPolicy, ...], Field(min_length=1)]
    rules: Annotated[tuple[RuleConfig, ...], Field(min_length=1)]
    templates: TemplatesConfig = TemplatesConfig()

    @model_validator(mode="after")
    def _check_references(self) -> RoutingConfig:
        errors = [
            *self._unique_names(),
            *self._team_references(),
            *self._policy_coverage(),
            *self._rule_problems(),
        ]
        if errors:
            # Raised inside a validator, pydantic nests these under the right key paths.
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self

    def _unique_names(self) -> list[InitErrorDetails]:
        errors = []
        for section in ("calendars", "teams", "sla_policies", "rules"):
            seen: set[str] = set()
            for index, item in enumerate(getattr(self, section)):
                if item.name is not None and item.name in seen:
                    errors.append(
                        _error((section, index, "name"), f"{item.name!r} is used twice", item.name)
                    )
                seen.add(item.name)
        return errors

    def _team_references(self) -> list[InitErrorDetails]:
        errors = []
        calendars = {calendar.name for calendar in self.calendars}
        teams = {team.name for team in self.teams}
        for index, team in enumerate(self.teams):
            if team.calendar not in calendars:
                message = _unknown("calendar", team.calendar, calendars)
                errors.append(_error(("teams", index, "calendar"), message, team.calendar))
        for key in ("frontline", "supervisors", "resolution_lead", "triage"):
            name = getattr(self.tiers, key)
            if name not in teams:
                errors.append(_error(("tiers", key), _unknown("team", name, teams), name))
        for category, name in self.tiers.specialists.items():
            if name not in teams:
                message = _unknown("team", name, teams)
                errors.append(_error(("tiers", "specialists", category), message, name))
        return errors

    def _policy_coverage(self) -> list[InitErrorDetails]:
        return [
            _error(
                ("sla_policies",),
                f"no policy covers severity {severity!r} for every customer and category; "
                "add one without categories and customers",
                severity,
            )
            for severity in SEVERITIES
            if not any(p.is_generic and severity in p.severity for p in self.sla_policies)
        ]

    def _rule_problems(self) -> list[InitErrorDetails]:
        errors = []
        teams = {team.name for team in self.teams}
        policies = {policy.name for policy in self.sla_policies}
        last = len(self.rules) - 1
        for index, rule in enumerate(self.rules):
            if rule.team is not None and rule.team not in teams:
                message = _unknown("team", rule.team, teams)
                errors.append(_error(("rules", index, "team"), message, rule.team))
            if rule.sla_policy is not None and rule.sla_policy not in policies:
                message = _unknown("SLA policy", rule.sla_policy, policies)
                errors.append(_error(("rules", index, "sla_policy"), message, rule.sla_policy))
            if rule.is_default and index != last:
                message = (
                    "this rule has no conditions, so the rules after it can never match; "
                    "move it to the end"
                )
                errors.append(_error(("rules", index), message, rule.name))
            if index == last and not rule.is_default:
                message = (
                    "the last rule must have no conditions (a default rule) so that every "
                    "ticket is routed; add one at the end"
                )
                errors.append(_error(("rules", index), message, rule.name))
        return errors

    def team(self, name: str) -> TeamConfig:
        """The team called ``name`` (KeyError if there is none)."""
        for team in self.teams:
            if team.name == name:
                return team
        raise KeyError(name)

    def calendar(self, name: str) -> CalendarConfig:
        """The calendar called ``name`` (KeyError if there is none)."""
        for calendar in self.calendars:
            if calendar.name == name:
                return calendar
        raise KeyError(name)

    def sla_policy(self, name: str) -> SlaPolicy:
        """The SLA policy called ``name`` (KeyError if there is none)."""
        for policy in self.sla_policies:
            if policy.name == name:
                return policy
        raise KeyError(name)

    def rule_label(self, index: int) -> str:
        """How rule ``index`` is shown to people: its name, or ``rules[index]``."""
        name = self.rules[index].name
        return name if name is not None else f"rules[{index}]"


def routing_config_from_document(document: Mapping[str, Any]) -> RoutingConfig:
    """Validate the routing sections of a parsed TOML document.

    Other top-level keys are ignored (they belong to the daemon's settings).
    When none of the core sections (calendars, teams, tiers, sla_policies,
    rules) is present, the result is :func:`default_routing_config` with the
    document's ``[routing]`` and ``[templates]`` applied. Raises pydantic's
    ``ValidationError`` whose locations are the document's key paths.
    """
    sections = {key: document[key] for key in ROUTING_SECTIONS if key in document}
    core = {"calendars", "teams", "tiers", "sla_policies", "rules"}
    if not core & sections.keys():
        base = default_routing_config().model_dump(exclude={"routing", "templates"})
        sections = {**base, **sections}
    return RoutingConfig.model_validate(sections)


# --------------------------------------------------------------------------- defaults

_DEFAULT_TEAMS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    (
        "frontline",
        "en",
        (("Anna Schmidt", "anna"), ("Bence Kovács", "bence"), ("Chloe Evans", "chloe")),
    ),
    ("triage", "en", (("Dóra Nagy", "dora"), ("Erik Weber", "erik"))),
    ("billing", "en", (("Felix Braun", "felix"), ("Gréta Tóth", "greta"))),
    ("technical", "en", (("Hannah Park", "hannah"), ("István Szabó", "istvan"))),
    ("logistics", "en", (("Jonas Fischer", "jonas"),)),
    ("privacy", "en", (("Katalin Varga", "katalin"),)),
    ("product-safety", "en", (("Lukas Hoffmann", "lukas"),)),
    ("customer-relations", "en", (("Maya Collins", "maya"),)),
    ("supervisors", "en", (("Nora Keller", "nora"), ("Oliver Grant", "oliver"))),
    ("resolution-lead", "en", (("Petra Horváth", "petra"),)),
)

_DEFAULT_SPECIALISTS = {
    "billing": "billing",
    "refund_return": "billing",
    "technical": "technical",
    "account_access": "technical",
    "delivery": "logistics",
    "privacy_security": "privacy",
    "product_quality": "product-safety",
    "safety": "product-safety",
    "service_conduct": "customer-relations",
    "other": "customer-relations",
    "default": "customer-relations",
}


def _default_document(domain: str) -> dict[str, Any]:
    teams = [
        {
            "name": name,
            "calendar": "office",
            "email": f"{name}@{domain}",
            "language": language,
            "members": [{"name": full, "email": f"{local}@{domain}"} for full, local in people],
        }
        for name, language, people in _DEFAULT_TEAMS
    ]
    return {
        "routing": {"vip_customers": []},
        "calendars": [
            {
                "name": "office",
                "time_zone": "Europe/Berlin",
                "hours": {day: ["09:00-17:00"] for day in _DAY_KEYS[:5]} | {"sat": [], "sun": []},
                "holidays_country": "DE",
            }
        ],
        "teams": teams,
        "tiers": {
            "frontline": "frontline",
            "specialists": dict(_DEFAULT_SPECIALISTS),
            "supervisors": "supervisors",
            "resolution_lead": "resolution-lead",
            "triage": "triage",
            "admins": [f"admin@{domain}"],
        },
        "sla_policies": [
            {
                "name": "critical",
                "severity": ["critical"],
                "business_hours": False,
                "first_response": "1h",
                "next_response": "2h",
                "resolution": "1d",
            },
            {
                "name": "high",
                "severity": ["high"],
                "first_response": "4h",
                "next_response": "8h",
                "resolution": "3d",
            },
            {
                "name": "medium",
                "severity": ["medium"],
                "first_response": "8h",
                "next_response": "1d",
                "resolution": "10d",
            },
            {
                "name": "low",
                "severity": ["low"],
                "first_response": "2d",
                "next_response": "3d",
                "resolution": "30d",
            },
        ],
        "rules": [
            {"name": "unclassified to triage", "unclassified": True, "tags": ["triage"]},
            {
                "name": "critical to specialists",
                "min_severity": "critical",
                "tier": 2,
                "tags": ["critical"],
            },
            {
                "name": "VIP customers to specialists",
                "vip": True,
                "tier": 2,
                "tags": ["vip"],
                "assignment": "least_loaded",
            },
            {"name": "default", "tier": 1, "assignment": "round_robin"},
        ],
    }


def default_routing_config(domain: str = "example.com") -> RoutingConfig:
    """A ready-to-run configuration (used by the demo and when none is given).

    One frontline team, a triage team for unclassified tickets, specialist
    teams covering the default categories, supervisors and a resolution lead,
    all on a Europe/Berlin Mon-Fri 09:00-17:00 calendar with German public
    holidays; agents' addresses are ``<first name>@<domain>``. SLA by
    severity: critical 1h/2h/1d (24x7), high 4h/8h/3d, medium 8h/1d/10d, low
    2d/3d/30d (business hours; a day is an 8-hour working day).
    """
    return RoutingConfig.model_validate(_default_document(domain))


_EXAMPLE_TOML = """\
# ---------------------------------------------------------------- routing
# Who handles what, when, and how fast. Check with `complaintd check-config`.

[routing]
# Customers treated as VIPs by rules with `vip = true`: addresses, globs or domains.
vip_customers = ["ceo@bigcorp.example", "*@vip.example", "important.example"]
# Escalate one level after this many customer mails without an agent reply (0: off).
escalate_unanswered_after = 3
# Who takes an escalated ticket within the next tier's team: "round_robin",
# "least_loaded" or "none" (the team address is told, nobody is assigned).
escalation_assignment = "round_robin"
# Tell the customer when a senior team takes over (template customer_escalation_note).
notify_customer_on_escalation = true
# A customer reply within this time of resolution reopens the ticket; a later
# one starts a new ticket.
reopen_within = "14d"

# Business calendars. Hours are wall-clock in `time_zone`; several intervals per
# day are fine; an empty list is a closed day. Public holidays come from the
# `holidays` package (country and optional region); `closed_dates` adds your own.
[[calendars]]
name = "office"
time_zone = "Europe/Berlin"
holidays_country = "DE"
# holidays_subdivision = "BY"              # regional holidays (Bavaria)
closed_dates = [2025-12-24, 2025-12-31]   # company holidays
# Days open with their own hours even on a weekend or holiday (e.g. stock-taking):
# open_dates = [{ date = 2025-10-04, hours = ["10:00-14:00"] }]
# Weekend days the law makes working days in exchange for a bridge day off
# (Hungary, for one) are open with the usual weekday hours; false ignores them.
# weekend_workdays = true
# Days you leave out are closed; without any hours it is Mon-Fri 09:00-17:00.
# Inline works too: hours = { mon = ["09:00-17:00"], sat = ["10:00-14:00"] }
[calendars.hours]
mon = ["09:00-17:00"]
tue = ["09:00-17:00"]
wed = ["09:00-17:00"]
thu = ["09:00-17:00"]
fri = ["09:00-17:00"]
sat = []
sun = []

[[calendars]]
name = "budapest"
time_zone = "Europe/Budapest"
holidays_country = "HU"
[calendars.hours]                          # a lunch break: two intervals a day
mon = ["08:00-12:00", "12:30-16:30"]
tue = ["08:00-12:00", "12:30-16:30"]
wed = ["08:00-12:00", "12:30-16:30"]
thu = ["08:00-12:00", "12:30-16:30"]
fri = ["08:00-14:00"]

[[calendars]]
name = "always"
time_zone = "UTC"
always_open = true                         # 24x7

# Teams. `calendar` names one of the calendars above; `email` is told about
# tickets nobody could be assigned (everyone away or full). `language` is the
# language of the notices the team receives.
[[teams]]
name = "frontline"
calendar = "office"
email = "frontline@example.com"
language = "en"
[[teams.members]]
name = "Anna Schmidt"
email = "anna@example.com"
max_open = 25                              # no new tickets beyond 25 open ones
[[teams.members]]
name = "Bence Kovács"
email = "bence@example.com"
away = true                                # on holiday: not assigned

[[teams]]
name = "triage"
calendar = "office"
email = "triage@example.com"

[[teams]]
name = "billing"
calendar = "budapest"
email = "billing@example.com"
language = "hu"
[[teams.members]]
name = "Gréta Tóth"
email = "greta@example.com"

[[teams]]
name = "technical"
calendar = "office"
email = "technical@example.com"
language = "de"

[[teams]]
name = "customer-relations"
calendar = "office"
email = "relations@example.com"

[[teams]]
name = "supervisors"
calendar = "office"
email = "supervisors@example.com"

[[teams]]
name = "resolution-lead"
calendar = "always"
email = "lead@example.com"

# The escalation matrix: tier 1 frontline, tier 2 the specialist team of the
# ticket's category (functional), tier 3 supervisors, tier 4 the resolution
# lead. A deadline passed at tier 4 is a breach, reported to `admins`.
[tiers]
frontline = "frontline"
supervisors = "supervisors"
resolution_lead = "resolution-lead"
triage = "triage"                          # unclassified tickets
admins = ["admin@example.com"]
[tiers.specialists]                        # tier 2: a team per category
billing = "billing"
refund_return = "billing"
technical = "technical"
account_access = "technical"
default = "customer-relations"             # every other category

# SLA policies. The most specific matching policy wins (customers, then
# categories, then severity alone); every severity needs one policy without
# `categories` and `customers`. Durations: "30m", "4h", "1h30m", "2d". With
# business_hours = true (the default) only the owning team's business hours
# count and a "d" is one working day of `business_day` hours (default "8h");
# with business_hours = false the clock runs 24x7 and a "d" is 24 hours.
# Resolution is never later than `resolution_ceiling` (default "30d" of elapsed
# time, pauses excluded) after opening. Owners are warned when `warn_at` of the
# time is used.
[[sla_policies]]
name = "critical"
severity = ["critical"]
business_hours = false
first_response = "1h"
next_response = "2h"
resolution = "1d"

[[sla_policies]]
name = "high"
severity = ["high"]
first_response = "4h"
next_response = "8h"
resolution = "3d"
warn_at = 0.8

[[sla_policies]]
name = "medium"
severity = ["medium"]
first_response = "8h"
next_response = "1d"
resolution = "10d"

[[sla_policies]]
name = "low"
severity = ["low"]
first_response = "2d"
next_response = "3d"
resolution = "30d"

[[sla_policies]]
name = "bigcorp"
severity = ["medium", "high"]
customers = ["*@bigcorp.example"]          # or a bare domain: "bigcorp.example"
# categories = ["billing"]                 # optionally only some categories
first_response = "2h"
next_response = "4h"
resolution = "2d"

# Routing rules: tried in order, the first whose conditions all hold wins.
# Conditions: category, min_severity, language, sender (globs), vip, mailbox,
# to_address (globs), signal (classifier signals), subject_regex, text_regex
# (case-insensitive), unclassified. Actions: tier (1-4), team (overrides the
# tier's team), sla_policy, assignment ("round_robin", "least_loaded", "none"),
# tags, acknowledge, ack_template. The last rule must have no conditions.
[[rules]]
name = "unclassified to triage"
unclassified = true                        # goes to the [tiers] triage team

[[rules]]
name = "legal threats to supervisors"
signal = ["legal_threat", "regulator"]
tier = 3
tags = ["legal"]

[[rules]]
name = "VIPs to specialists"
vip = true
tier = 2
assignment = "least_loaded"
tags = ["vip"]

[[rules]]
name = "Hungarian billing"
category = ["billing", "refund_return"]
language = ["hu"]
min_severity = "medium"
tier = 2
team = "billing"

[[rules]]
name = "press"
sender = ["*@newspaper.example"]
subject_regex = "interview|press|article"
team = "supervisors"
tier = 3
acknowledge = false

[[rules]]
name = "default"
tier = 1
assignment = "round_robin"

# Message templates. Put your own <name>.<language>.j2 files in `folder` to
# override the shipped ones (acknowledgement, assignment_notice,
# escalation_notice, previous_owner_notice, customer_escalation_note,
# breach_report, sla_warning) or to add languages; a <name>.<language>.html.j2
# file adds an HTML part.
[templates]
# folder = "templates"                     # relative to this file
fallback_language = "en"
quote_chars = 400                          # how much of the customer's text to quote back
"""


def example_routing_toml() -> str:
    """A commented TOML example of every routing section (for ``complaintd init``)."""
    return _EXAMPLE_TOML
