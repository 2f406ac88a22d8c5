"""Business calendars: hours, time zones, DST, holidays, 24x7 and their invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.calendar import BusinessCalendar
from routing.config import CalendarConfig
from routing.errors import CalendarError

BERLIN = ZoneInfo("Europe/Berlin")
BUDAPEST = ZoneInfo("Europe/Budapest")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

OFFICE = BusinessCalendar.weekly(
    "Europe/Berlin", {day: ["09:00-17:00"] for day in WEEKDAYS}, holidays_country="DE"
)
EVERY_DAY = BusinessCalendar.weekly(
    "Europe/Berlin", {day: ["09:00-17:00"] for day in (*WEEKDAYS, "sat", "sun")}
)
ROUND_THE_CLOCK_SUNDAY = BusinessCalendar.weekly("Europe/Berlin", {"sun": ["00:00-24:00"]})
BUDAPEST_OFFICE = BusinessCalendar.weekly(
    "Europe/Budapest",
    {day: ["08:00-12:00", "12:30-16:30"] for day in WEEKDAYS},
    holidays_country="HU",
    closed_dates=[date(2025, 12, 31)],
)
# Night shifts around the DST switch hours: wall-clock times that do not exist or
# happen twice must still give consistent arithmetic.
NIGHTS = BusinessCalendar.weekly(
    "Europe/Berlin",
    {day: ["00:00-02:30", "02:30-03:30", "22:00-24:00"] for day in (*WEEKDAYS, "sat", "sun")},
)
NEW_YORK_WEEKENDS = BusinessCalendar.weekly(
    "America/New_York", {"sat": ["10:00-14:00"], "sun": ["10:00-14:00"]}, holidays_country="US"
)
ALWAYS = BusinessCalendar.always("Europe/Berlin")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def budapest(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BUDAPEST)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


# ---------------------------------------------------------------- fixed examples


def test_within_one_day() -> None:
    assert OFFICE.add(berlin(2025, 3, 4, 10, 0), hours(3)) == berlin(2025, 3, 4, 13, 0)


def test_before_opening_starts_at_opening() -> None:
    assert OFFICE.add(berlin(2025, 3, 4, 7, 0), hours(1)) == berlin(2025, 3, 4, 10, 0)


def test_a_full_day_ends_at_closing_time_not_next_morning() -> None:
    assert OFFICE.add(berlin(2025, 3, 4, 9, 0), hours(8)) == berlin(2025, 3, 4, 17, 0)


def test_carries_over_to_the_next_day() -> None:
    assert OFFICE.add(berlin(2025, 3, 4, 16, 0), hours(2)) == berlin(2025, 3, 5, 10, 0)


def test_weekend_is_skipped() -> None:
    friday = berlin(2025, 3, 7, 16, 0)
    assert OFFICE.add(friday, hours(2)) == berlin(2025, 3, 10, 10, 0)
    assert OFFICE.add(berlin(2025, 3, 8, 12, 0), hours(1)) == berlin(2025, 3, 10, 10, 0)


def test_dst_spring_weekend_in_berlin() -> None:
    # Clocks go forward on Sunday 30 March 2025; Friday is CET (+01), Monday CEST (+02).
    friday, monday = berlin(2025, 3, 28, 16, 0), berlin(2025, 3, 31, 10, 0)
    assert friday.utcoffset() == hours(1) and monday.utcoffset() == hours(2)
    assert OFFICE.add(friday, hours(2)) == monday
    week = OFFICE.business_time_between(berlin(2025, 3, 28, 9), berlin(2025, 3, 31, 17))
    assert week == hours(16)


def test_dst_days_have_eight_business_hours_from_nine_to_five() -> None:
    for sunday in (berlin(2025, 3, 30, 9, 0), berlin(2025, 10, 26, 9, 0)):
        assert EVERY_DAY.add(sunday, hours(8)) == sunday.replace(hour=17)
        assert EVERY_DAY.business_time_between(sunday, sunday.replace(hour=17)) == hours(8)


def test_dst_days_open_round_the_clock_are_23_and_25_hours_long() -> None:
    spring = ROUND_THE_CLOCK_SUNDAY.business_time_between(
        berlin(2025, 3, 30, 0, 0), berlin(2025, 3, 31, 0, 0)
    )
    autumn = ROUND_THE_CLOCK_SUNDAY.business_time_between(
        berlin(2025, 10, 26, 0, 0), berlin(2025, 10, 27, 0, 0)
    )
    assert (spring, autumn) == (hours(23), hours(25))


def test_dst_autumn_in_berlin() -> None:
    # Clocks go back on Sunday 26 October 2025.
    friday = berlin(2025, 10, 24, 15, 0)
    assert OFFICE.add(friday, hours(4)) == berlin(2025, 10, 27, 11, 0)
    assert OFFICE.add(friday, hours(4)) == datetime(2025, 10, 27, 10, 0, tzinfo=UTC)


def test_night_hours_through_the_switch_count_real_elapsed_time() -> None:
    # 00:00-03:30 wall clock: 2.5 real hours in spring (02:00-03:00 does not
    # exist), 4.5 in autumn (02:00-03:00 happens twice).
    def night(day: int, month: int) -> timedelta:
        return NIGHTS.business_time_between(
            berlin(2025, month, day, 0, 0), berlin(2025, month, day, 12, 0)
        )

    assert (night(30, 3), night(26, 10), night(27, 10)) == (hours(2.5), hours(4.5), hours(3.5))


def test_24x7_counts_real_elapsed_time_across_dst() -> None:
    saturday = berlin(2025, 3, 29, 12, 0)
    assert ALWAYS.add(saturday, hours(24)) == berlin(2025, 3, 30, 13, 0)
    assert ALWAYS.is_open(berlin(2025, 12, 25, 3, 0))
    assert ALWAYS.next_open(saturday) == saturday
    assert ALWAYS.add(saturday, timedelta(0)) == saturday


def test_german_public_holiday() -> None:
    # Friday 3 October 2025 is German Unity Day.
    assert OFFICE.is_closed_date(date(2025, 10, 3))
    assert not OFFICE.is_open(berlin(2025, 10, 3, 11, 0))
    assert OFFICE.add(berlin(2025, 10, 2, 16, 0), hours(2)) == berlin(2025, 10, 6, 10, 0)


def test_regional_holidays_follow_the_subdivision() -> None:
    # Corpus Christi (Thursday 19 June 2025) is a holiday in Bavaria, not in Berlin.
    config = {"name": "c", "time_zone": "Europe/Berlin", "holidays_country": "DE"}
    bavaria = BusinessCalendar.from_config(
        CalendarConfig.model_validate({**config, "holidays_subdivision": "BY"})
    )
    berlin_state = BusinessCalendar.from_config(
        CalendarConfig.model_validate({**config, "holidays_subdivision": "BE"})
    )
    corpus_christi = berlin(2025, 6, 19, 12, 0)
    assert not bavaria.is_open(corpus_christi)
    assert berlin_state.is_open(corpus_christi)
    assert bavaria.next_open(corpus_christi) == berlin(2025, 6, 20, 9, 0)


def test_hungarian_national_day_and_bridge_day() -> None:
    # Thursday 23 October 2025 is a national holiday and Friday 24 a bridge day off.
    wednesday = budapest(2025, 10, 22, 15, 30)
    assert BUDAPEST_OFFICE.add(wednesday, hours(2)) == budapest(2025, 10, 27, 9, 0)


def test_lunch_break_is_not_business_time() -> None:
    morning = budapest(2025, 3, 4, 11, 0)
    assert BUDAPEST_OFFICE.add(morning, hours(2)) == budapest(2025, 3, 4, 13, 30)
    assert not BUDAPEST_OFFICE.is_open(budapest(2025, 3, 4, 12, 15))
    assert BUDAPEST_OFFICE.next_open(budapest(2025, 3, 4, 12, 15)) == budapest(2025, 3, 4, 12, 30)
    assert BUDAPEST_OFFICE.business_time_between(
        budapest(2025, 3, 4, 8, 0), budapest(2025, 3, 4, 17, 0)
    ) == hours(8)


def test_extra_closed_dates() -> None:
    assert BUDAPEST_OFFICE.is_closed_date(date(2025, 12, 31))
    # 31 December is closed by us, 1 January is New Year's Day and Friday
    # 2 January 2026 a Hungarian bridge day: the next business time is Monday.
    assert BUDAPEST_OFFICE.add(budapest(2025, 12, 30, 16, 0), hours(1)) == budapest(
        2026, 1, 5, 8, 30
    )


def test_a_hungarian_working_saturday_is_open_with_the_usual_hours() -> None:
    # Monday 19 August 2024 was a bridge day off, worked on Saturday 3 August.
    friday_afternoon = budapest(2024, 8, 2, 16, 0)
    assert BUDAPEST_OFFICE.is_weekend_workday(date(2024, 8, 3))
    assert BUDAPEST_OFFICE.hours_on(date(2024, 8, 3)) == BUDAPEST_OFFICE.hours[0]
    assert BUDAPEST_OFFICE.add(friday_afternoon, hours(1)) == budapest(2024, 8, 3, 8, 30)
    assert BUDAPEST_OFFICE.is_closed_date(date(2024, 8, 19))
    assert not BUDAPEST_OFFICE.is_open(budapest(2024, 8, 10, 10, 0))  # an ordinary Saturday


def test_working_saturdays_can_be_ignored() -> None:
    ignoring = BusinessCalendar.weekly(
        "Europe/Budapest",
        {day: ["08:00-12:00", "12:30-16:30"] for day in WEEKDAYS},
        holidays_country="HU",
        weekend_workdays=False,
    )
    assert not ignoring.is_weekend_workday(date(2024, 8, 3))
    assert ignoring.add(budapest(2024, 8, 2, 16, 0), hours(1)) == budapest(2024, 8, 5, 8, 30)


def test_open_dates_open_a_weekend_or_a_holiday_with_their_own_hours() -> None:
    stock_taking = BusinessCalendar.weekly(
        "Europe/Berlin",
        {day: ["09:00-17:00"] for day in WEEKDAYS},
        holidays_country="DE",
        open_dates={date(2025, 10, 4): ["10:00-14:00"], date(2025, 10, 3): ["12:00-13:00"]},
    )
    # Friday 3 October is German Unity Day, Saturday 4 a stock-taking day.
    assert not OFFICE.is_open(berlin(2025, 10, 3, 12, 30))
    assert stock_taking.is_open(berlin(2025, 10, 3, 12, 30))
    assert not stock_taking.is_closed_date(date(2025, 10, 3))
    assert stock_taking.business_time_between(
        berlin(2025, 10, 2, 17, 0), berlin(2025, 10, 6, 9, 0)
    ) == hours(5)
    assert stock_taking.add(berlin(2025, 10, 3, 12, 30), hours(2)) == berlin(2025, 10, 4, 11, 30)


def test_open_and_closed_dates_are_checked_in_the_config() -> None:
    base = {"name": "office", "time_zone": "Europe/Berlin"}
    one = {"date": date(2025, 10, 4), "hours": ["10:00-14:00"]}
    problems: list[tuple[dict[str, Any], str]] = [
        ({"open_dates": [one, one]}, "more than once"),
        ({"open_dates": [one], "closed_dates": [date(2025, 10, 4)]}, "both open_dates and"),
        ({"open_dates": [{"date": date(2025, 10, 4), "hours": []}]}, "needs its hours"),
        ({"open_dates": [one], "always_open": True, "hours": {}}, "remove"),
    ]
    for extra, message in problems:
        with pytest.raises(ValueError, match=message):
            CalendarConfig.model_validate({**base, **extra})
    config = CalendarConfig.model_validate(
        {**base, "open_dates": [{"date": date(2025, 10, 4), "hours": "10:00-14:00"}]}
    )
    assert BusinessCalendar.from_config(config) == BusinessCalendar.weekly(
        "Europe/Berlin",
        {day: ["09:00-17:00"] for day in WEEKDAYS},
        open_dates={date(2025, 10, 4): ["10:00-14:00"]},
        name="office",
    )


def test_is_open_includes_the_start_and_excludes_the_end() -> None:
    assert OFFICE.is_open(berlin(2025, 3, 4, 9, 0))
    assert not OFFICE.is_open(berlin(2025, 3, 4, 17, 0))
    assert OFFICE.next_open(berlin(2025, 3, 4, 17, 0)) == berlin(2025, 3, 5, 9, 0)
    assert OFFICE.next_open(berlin(2025, 3, 4, 12, 0)) == berlin(2025, 3, 4, 12, 0)


def test_results_are_utc_whatever_the_input_zone() -> None:
    result = OFFICE.add(budapest(2025, 3, 4, 9, 0), hours(1))
    assert result == berlin(2025, 3, 4, 10, 0)
    assert result.tzinfo is UTC
    assert OFFICE.next_open(budapest(2025, 3, 8, 9, 0)).tzinfo is UTC


def test_business_time_between_is_signed() -> None:
    a, b = berlin(2025, 3, 4, 10, 0), berlin(2025, 3, 5, 10, 0)
    assert OFFICE.business_time_between(a, b) == hours(8)
    assert OFFICE.business_time_between(b, a) == -hours(8)
    assert OFFICE.business_time_between(a, a) == timedelta(0)


def test_zero_duration_is_the_start_itself() -> None:
    saturday = berlin(2025, 3, 8, 12, 0)
    assert OFFICE.add(saturday, timedelta(0)) == saturday


def test_naive_datetimes_and_negative_durations_are_refused() -> None:
    with pytest.raises(CalendarError, match="timezone-aware"):
        OFFICE.add(datetime(2025, 3, 4, 10, 0), hours(1))
    with pytest.raises(CalendarError, match="timezone-aware"):
        OFFICE.business_time_between(berlin(2025, 3, 4), datetime(2025, 3, 5))
    with pytest.raises(CalendarError, match="negative"):
        OFFICE.add(berlin(2025, 3, 4, 10, 0), -hours(1))


def test_a_calendar_that_never_opens_is_refused() -> None:
    with pytest.raises(CalendarError, match="never open"):
        BusinessCalendar.weekly("Europe/Berlin", {})
    nearly_never = BusinessCalendar.weekly(
        "Europe/Berlin",
        {"mon": ["09:00-10:00"]},
        closed_dates=[date(2025, 1, 6) + timedelta(weeks=n) for n in range(60)],
    )
    with pytest.raises(CalendarError, match="closed for over a year"):
        nearly_never.add(berlin(2025, 1, 1), hours(2))


def test_from_config_matches_weekly() -> None:
    config = CalendarConfig.model_validate(
        {"name": "office", "time_zone": "Europe/Berlin", "holidays_country": "DE"}
    )
    assert BusinessCalendar.from_config(config) == BusinessCalendar.weekly(
        "Europe/Berlin",
        {day: ["09:00-17:00"] for day in WEEKDAYS},
        holidays_country="DE",
        name="office",
    )


# ---------------------------------------------------------------- properties

CALENDARS = [OFFICE, BUDAPEST_OFFICE, ALWAYS, NIGHTS, NEW_YORK_WEEKENDS, EVERY_DAY]
ZONES = [UTC, BERLIN, BUDAPEST, ZoneInfo("America/New_York")]

calendars = st.sampled_from(CALENDARS)
instants = st.datetimes(
    # Naive bounds: hypothesis attaches the zones (imaginary and folded times included).
    min_value=datetime(2024, 1, 1),
    max_value=datetime(2027, 12, 31),
    timezones=st.sampled_from(ZONES),
)
durations = st.builds(
    timedelta,
    minutes=st.integers(min_value=0, max_value=120 * 60),
    microseconds=st.integers(min_value=0, max_value=59_999_999),
)
positive_durations = durations.filter(lambda d: d > timedelta(0))

PROPERTY_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@PROPERTY_SETTINGS
@given(calendars, instants, positive_durations)
def test_deadlines_fall_inside_working_hours(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    deadline = calendar.add(start, duration)
    assert deadline > start.astimezone(UTC)
    # Inside an open interval, or exactly at its end (17:00 on the dot).
    assert calendar.is_open(deadline - timedelta(microseconds=1))


@PROPERTY_SETTINGS
@given(calendars, instants, durations, durations)
def test_add_is_associative(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    assert calendar.add(calendar.add(start, first), second) == calendar.add(start, first + second)


@PROPERTY_SETTINGS
@given(calendars, instants, durations)
def test_business_time_between_inverts_add(
    calendar: BusinessCalendar, start: datetime, duration: timedelta
) -> None:
    assert calendar.business_time_between(start, calendar.add(start, duration)) == duration


@PROPERTY_SETTINGS
@given(calendars, instants, instants, durations)
def test_add_is_monotonic_in_start(
    calendar: BusinessCalendar, first: datetime, second: datetime, duration: timedelta
) -> None:
    # Sorted as instants: Python compares same-zone datetimes by wall clock.
    early, late = sorted((first, second), key=lambda value: value.astimezone(UTC))
    assert calendar.add(early, duration) <= calendar.add(late, duration)


@PROPERTY_SETTINGS
@given(calendars, instants, durations, durations)
def test_add_is_monotonic_in_duration(
    calendar: BusinessCalendar, start: datetime, first: timedelta, second: timedelta
) -> None:
    short, long = sorted((first, second))
    assert calendar.add(start, short) <= calendar.add(start, long)


@PROPERTY_SETTINGS
@given(calendars, instants)
def test_next_open_is_open_and_not_earlier(calendar: BusinessCalendar, at: datetime) -> None:
    opening = calendar.next_open(at)
    assert opening >= at.astimezone(UTC)
    assert calendar.is_open(opening)
    assert calendar.business_time_between(at, opening) == timedelta(0)
