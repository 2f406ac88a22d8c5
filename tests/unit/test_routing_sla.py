"""SLA deadlines: business hours, 24x7, warnings, the 30-day ceiling, pause and resume."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing.calendar import BusinessCalendar
from routing.config import SlaPolicy, default_routing_config
from routing.errors import CalendarError
from routing.sla import Deadline, SlaClock, compute_deadlines, sla_clock

BERLIN = ZoneInfo("Europe/Berlin")
OFFICE = BusinessCalendar.weekly(
    "Europe/Berlin",
    {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
    holidays_country="DE",
)


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def _policy(**changes: Any) -> SlaPolicy:
    fields = {
        "name": "p",
        "severity": ["high"],
        "first_response": "4h",
        "next_response": "8h",
        "resolution": "3d",
    }
    return SlaPolicy.model_validate({**fields, **changes})


def test_business_hours_deadlines_and_warnings() -> None:
    # Monday 3 March 2025, 15:00: two hours left today.
    deadlines = compute_deadlines(_policy(), OFFICE, berlin(2025, 3, 3, 15, 0))
    first = deadlines.first_response
    assert first is not None
    assert first.due == berlin(2025, 3, 4, 11, 0)
    # 80% of 4 business hours is 3h12m: 2h on Monday, 1h12m on Tuesday.
    assert first.warn_at == berlin(2025, 3, 4, 10, 12)
    assert first.budget == hours(4)
    resolution = deadlines.resolution
    assert resolution is not None
    # 3d = three 8-hour working days = 24 business hours.
    assert resolution.due == berlin(2025, 3, 6, 15, 0)
    assert deadlines.next_response is None
    assert [d.kind for d in deadlines.all()] == ["first_response", "resolution"]
    assert deadlines.business_hours and deadlines.policy == "p"


def test_24x7_policy_ignores_office_hours() -> None:
    policy = default_routing_config().sla_policy("critical")
    friday_evening = berlin(2025, 3, 7, 22, 0)
    deadlines = compute_deadlines(policy, OFFICE, friday_evening)
    assert deadlines.first_response is not None and deadlines.resolution is not None
    assert deadlines.first_response.due == berlin(2025, 3, 7, 23, 0)
    assert deadlines.resolution.due == berlin(2025, 3, 8, 22, 0)
    assert not deadlines.business_hours


def test_deadlines_skip_a_public_holiday() -> None:
    # Thursday 2 October 2025, 16:00; Friday 3 October is German Unity Day.
    deadlines = compute_deadlines(_policy(), OFFICE, berlin(2025, 10, 2, 16, 0))
    assert deadlines.first_response is not None
    assert deadlines.first_response.due == berlin(2025, 10, 6, 12, 0)


def test_deadline_across_the_spring_dst_change() -> None:
    deadlines = compute_deadlines(_policy(), OFFICE, berlin(2025, 3, 28, 16, 0))
    assert deadlines.first_response is not None
    assert deadlines.first_response.due == berlin(2025, 3, 31, 12, 0)
    assert deadlines.first_response.due == datetime(2025, 3, 31, 10, 0, tzinfo=UTC)


def test_next_response_clock_starts_at_the_follow_up() -> None:
    deadlines = compute_deadlines(
        _policy(), OFFICE, berlin(2025, 3, 3, 9, 0), follow_up_at=berlin(2025, 3, 4, 13, 0)
    )
    assert deadlines.next_response is not None
    assert deadlines.next_response.due == berlin(2025, 3, 5, 13, 0)
    assert deadlines.next_response.kind == "next_response"


def test_resolution_is_capped_at_the_ceiling() -> None:
    policy = _policy(resolution="60d")  # 480 business hours: about three months
    opened = berlin(2025, 3, 3, 9, 0).astimezone(UTC)  # UTC: elapsed time, not wall clock
    deadlines = compute_deadlines(policy, OFFICE, opened)
    assert deadlines.resolution is not None
    # 30 x 24 hours later: 08:00 UTC is 10:00 in Berlin after the DST change.
    assert deadlines.resolution.due == opened + timedelta(days=30)
    assert deadlines.resolution.due == berlin(2025, 4, 2, 10, 0)
    assert deadlines.resolution.warn_at == opened + timedelta(days=24)


def test_deadline_state() -> None:
    deadline = Deadline(
        "first_response", berlin(2025, 3, 4, 11, 0), berlin(2025, 3, 4, 10, 12), hours(4)
    )
    assert deadline.state(berlin(2025, 3, 4, 9, 0)) == "ok"
    assert deadline.state(berlin(2025, 3, 4, 10, 30)) == "warning"
    assert deadline.state(berlin(2025, 3, 4, 11, 0)) == "breached"


def test_pause_and_resume_push_deadlines_back() -> None:
    opened = berlin(2025, 3, 3, 9, 0)  # Monday
    # Waiting on the customer from Monday 11:00 to Wednesday 10:00.
    pauses = [(berlin(2025, 3, 3, 11, 0), berlin(2025, 3, 5, 10, 0))]
    deadlines = compute_deadlines(_policy(), OFFICE, opened, pauses=pauses)
    assert deadlines.first_response is not None and deadlines.resolution is not None
    # 2 of 4 hours used before the pause; the other 2 from Wednesday 10:00.
    assert deadlines.first_response.due == berlin(2025, 3, 5, 12, 0)
    # 22 business hours left after the pause: Wed 7h, Thu 8h, Fri 7h.
    assert deadlines.resolution.due == berlin(2025, 3, 7, 16, 0)


def test_while_paused_there_is_no_deadline() -> None:
    opened = berlin(2025, 3, 3, 9, 0)
    deadlines = compute_deadlines(
        _policy(), OFFICE, opened, pauses=[(berlin(2025, 3, 3, 10, 0), None)]
    )
    assert deadlines.first_response is None and deadlines.resolution is None
    assert deadlines.all() == ()


def test_pauses_before_a_follow_up_do_not_touch_its_clock() -> None:
    pauses = [(berlin(2025, 3, 3, 10, 0), berlin(2025, 3, 3, 12, 0))]
    deadlines = compute_deadlines(
        _policy(),
        OFFICE,
        berlin(2025, 3, 3, 9, 0),
        follow_up_at=berlin(2025, 3, 4, 9, 0),
        pauses=pauses,
    )
    assert deadlines.next_response is not None
    assert deadlines.next_response.due == berlin(2025, 3, 4, 17, 0)


def test_sla_clock_value_semantics() -> None:
    clock = SlaClock.start(OFFICE, hours(4), berlin(2025, 3, 3, 9, 0))
    paused = clock.pause(berlin(2025, 3, 3, 10, 30))
    assert paused.paused and not clock.paused
    assert paused.used == hours(1.5)
    assert paused.deadline() is None and paused.warning() is None
    assert paused.pause(berlin(2025, 3, 3, 12, 0)) == paused  # pausing twice: no change
    assert paused.used_at(berlin(2025, 3, 4, 12, 0)) == hours(1.5)
    resumed = paused.resume(berlin(2025, 3, 4, 16, 0))
    assert resumed.resume(berlin(2025, 3, 4, 16, 30)) == resumed
    assert resumed.deadline() == berlin(2025, 3, 5, 10, 30)  # 1h Tue + 1.5h Wed
    assert resumed.used_at(berlin(2025, 3, 5, 9, 0)) == hours(2.5)
    assert resumed.remaining(berlin(2025, 3, 5, 12, 0)) == -hours(1.5)
    # The original value is untouched.
    assert clock.deadline() == berlin(2025, 3, 3, 13, 0)


def test_warning_already_passed_before_a_pause_fires_on_resume() -> None:
    clock = SlaClock.start(OFFICE, hours(4), berlin(2025, 3, 3, 9, 0))
    clock = clock.pause(berlin(2025, 3, 3, 12, 30)).resume(berlin(2025, 3, 4, 9, 0))
    assert clock.warning() == berlin(2025, 3, 4, 9, 0)
    assert clock.deadline() == berlin(2025, 3, 4, 9, 30)


def test_pause_time_does_not_count_against_the_ceiling() -> None:
    policy = _policy(business_hours=False, resolution="45d")
    start = berlin(2025, 3, 1, 12, 0).astimezone(UTC)
    clock = sla_clock(policy, OFFICE, "resolution", start)
    assert clock.deadline() == start + timedelta(days=30)
    clock = clock.pause(start + timedelta(days=10)).resume(start + timedelta(days=15))
    assert clock.deadline() == start + timedelta(days=35)


def test_sla_clock_refuses_nonsense() -> None:
    clock = SlaClock.start(OFFICE, hours(4), berlin(2025, 3, 3, 9, 0))
    with pytest.raises(CalendarError, match="before the clock ran"):
        clock.pause(berlin(2025, 3, 3, 8, 0))
    with pytest.raises(CalendarError, match="timezone-aware"):
        clock.pause(datetime(2025, 3, 3, 10, 0))
    with pytest.raises(CalendarError, match="positive"):
        SlaClock.start(OFFICE, timedelta(0), berlin(2025, 3, 3, 9, 0))
    with pytest.raises(CalendarError, match="ends"):
        compute_deadlines(
            _policy(),
            OFFICE,
            berlin(2025, 3, 3, 9, 0),
            pauses=[(berlin(2025, 3, 3, 12, 0), berlin(2025, 3, 3, 11, 0))],
        )


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=20 * 24 * 60),
    st.integers(min_value=0, max_value=5 * 24 * 60),
    st.integers(min_value=1, max_value=40 * 60),
)
def test_a_pause_never_brings_a_deadline_forward(
    start_minutes: int, pause_minutes: int, budget_minutes: int
) -> None:
    start = berlin(2025, 3, 1, 0, 0) + timedelta(minutes=start_minutes)
    budget = timedelta(minutes=budget_minutes)
    clock = SlaClock.start(OFFICE, budget, start)
    due = clock.deadline()
    assert due is not None
    paused_at = start + (due - start) / 2
    resumed = clock.pause(paused_at).resume(paused_at + timedelta(minutes=pause_minutes))
    later = resumed.deadline()
    assert later is not None and later >= due
    # Exactly the business time spent paused is added.
    assert OFFICE.business_time_between(start, later) - budget == OFFICE.business_time_between(
        paused_at, paused_at + timedelta(minutes=pause_minutes)
    )
