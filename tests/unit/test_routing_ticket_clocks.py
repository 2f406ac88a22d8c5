"""A ticket's SLA clocks: lifecycle moves, warnings, escalation restarts and storage.

Every instant is passed in ("now" is injected); nothing reads the real clock.
The dates are in 2026 so that Europe/Berlin's DST changes (29 March and
25 October) and the German Easter holidays fall where the examples need them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.calendar import BusinessCalendar
from routing.config import CalendarConfig, SlaPolicy
from routing.errors import CalendarError
from routing.sla import DeadlineKind
from routing.ticket_clocks import CLOCK_KINDS, ClockRecord, DueAction, TicketClocks

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
MICROSECOND = timedelta(microseconds=1)

OFFICE = BusinessCalendar.weekly(
    "Europe/Berlin",
    {day: ["09:00-17:00"] for day in WEEKDAYS},
    holidays_country="DE",
    name="office",
)
# Built from configuration like the daemon builds it: Christmas Eve is a company holiday.
SUPPORT = BusinessCalendar.from_config(
    CalendarConfig.model_validate(
        {
            "name": "support",
            "time_zone": "Europe/Berlin",
            "holidays_country": "DE",
            "closed_dates": ["2026-12-24"],
        }
    )
)
EVERY_DAY = BusinessCalendar.weekly(
    "Europe/Berlin", {day: ["09:00-17:00"] for day in (*WEEKDAYS, "sat", "sun")}
)
SUNDAYS = BusinessCalendar.weekly("Europe/Berlin", {"sun": ["00:00-24:00"]})
LUNCH_BREAK = BusinessCalendar.weekly(
    "Europe/Budapest",
    {day: ["08:00-12:00", "12:30-16:30"] for day in WEEKDAYS},
    holidays_country="HU",
)
NEW_YORK_OFFICE = BusinessCalendar.weekly(
    "America/New_York", {day: ["09:00-17:00"] for day in WEEKDAYS}, holidays_country="US"
)
ALWAYS = BusinessCalendar.always("Europe/Berlin")


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def hours(value: float) -> timedelta:
    return timedelta(hours=value)


def _policy(**changes: Any) -> SlaPolicy:
    fields = {
        "name": "high",
        "severity": ["high"],
        "first_response": "4h",
        "next_response": "8h",
        "resolution": "3d",  # three 8-hour business days
    }
    return SlaPolicy.model_validate({**fields, **changes})


HIGH = _policy()
CRITICAL_24X7 = _policy(
    name="critical",
    severity=["critical"],
    business_hours=False,
    first_response="1h",
    next_response="2h",
    resolution="1d",
)


def _record(clocks: TicketClocks, kind: DeadlineKind) -> ClockRecord:
    record = clocks.record(kind)
    assert record is not None, f"no {kind} clock"
    return record


def _kinds(clocks: TicketClocks) -> list[str]:
    return [record.kind for record in clocks.clocks]


# ---------------------------------------------------------------- opening and deadlines


def test_open_runs_first_response_and_resolution() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 15, 0))  # Monday
    assert _kinds(clocks) == ["first_response", "resolution"]
    assert (clocks.policy, clocks.calendar, clocks.business_hours) == ("high", "office", True)
    assert clocks.warn_fraction == 0.8
    # Two hours left on Monday, two more on Tuesday.
    assert clocks.due("first_response") == berlin(2026, 3, 3, 11, 0)
    # 80% of 4 business hours is 3h12m: 2h on Monday, 1h12m on Tuesday.
    assert _record(clocks, "first_response").warn_at == berlin(2026, 3, 3, 10, 12)
    assert clocks.due("resolution") == berlin(2026, 3, 5, 15, 0)
    assert clocks.due("next_response") is None
    assert _record(clocks, "resolution").ceiling == timedelta(days=30)
    assert _record(clocks, "first_response").ceiling is None
    assert clocks.next_check() == berlin(2026, 3, 3, 10, 12)
    assert not clocks.paused
    # Every stored instant is UTC, whatever zone "now" came in.
    for record in clocks.clocks:
        for instant in (record.started_at, record.running_since, record.due, record.warn_at):
            assert instant is not None and instant.tzinfo is UTC


def test_a_ticket_opened_out_of_hours_counts_from_the_next_opening() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 7, 11, 0))  # Saturday
    assert clocks.due("first_response") == berlin(2026, 3, 9, 13, 0)
    assert _record(clocks, "first_response").started_at == berlin(2026, 3, 7, 11, 0)


def test_deadlines_skip_the_weekend() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 6, 16, 0))  # Friday
    assert clocks.due("first_response") == berlin(2026, 3, 9, 12, 0)
    # 24 business hours: Fri 1h, Mon 8h, Tue 8h, Wed 7h.
    assert clocks.due("resolution") == berlin(2026, 3, 11, 16, 0)


def test_deadlines_skip_the_easter_holidays() -> None:
    # Thursday 2 April 2026; Good Friday and Easter Monday are German holidays.
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 4, 2, 15, 0))
    assert clocks.due("first_response") == berlin(2026, 4, 7, 11, 0)
    assert _record(clocks, "first_response").warn_at == berlin(2026, 4, 7, 10, 12)


def test_deadlines_skip_holidays_and_closed_dates_of_a_configured_calendar() -> None:
    # Wednesday 23 December 2026: Christmas Eve closed by config, then the holidays.
    clocks = TicketClocks.open(HIGH, "support", SUPPORT, berlin(2026, 12, 23, 16, 0))
    assert clocks.due("first_response") == berlin(2026, 12, 28, 12, 0)


def test_deadlines_across_the_spring_dst_change() -> None:
    # Friday 27 March 2026 16:00 CET; clocks go forward on Sunday 29 March.
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 27, 16, 0))
    assert clocks.due("first_response") == berlin(2026, 3, 30, 12, 0)
    assert clocks.due("first_response") == utc(2026, 3, 30, 10, 0)  # CEST
    # A team open every day: 09:00-17:00 on the short day is still 8 hours.
    daily = TicketClocks.open(HIGH, "daily", EVERY_DAY, berlin(2026, 3, 28, 16, 0))
    assert daily.due("first_response") == berlin(2026, 3, 29, 12, 0)
    assert daily.due("resolution") == berlin(2026, 3, 31, 16, 0)


def test_a_round_the_clock_day_is_23_hours_long_in_spring() -> None:
    # Open all Sunday: 29 March 2026 holds only 23 hours, the 24th is a week later.
    clocks = TicketClocks.open(
        _policy(first_response="24h"), "sundays", SUNDAYS, berlin(2026, 3, 29, 0, 0)
    )
    assert clocks.due("first_response") == berlin(2026, 4, 5, 1, 0)


def test_deadlines_across_the_autumn_dst_change() -> None:
    # Friday 23 October 2026 16:00 CEST; clocks go back on Sunday 25 October.
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 10, 23, 16, 0))
    assert clocks.due("first_response") == berlin(2026, 10, 26, 12, 0)
    assert clocks.due("first_response") == utc(2026, 10, 26, 11, 0)  # CET
    # Open all Sunday: 25 October 2026 holds 25 hours, so 24 end at 23:00.
    sundays = TicketClocks.open(
        _policy(first_response="24h"), "sundays", SUNDAYS, berlin(2026, 10, 25, 0, 0)
    )
    assert sundays.due("first_response") == berlin(2026, 10, 25, 23, 0)


def test_24x7_policies_count_elapsed_time_across_dst() -> None:
    spring = TicketClocks.open(CRITICAL_24X7, "office", OFFICE, berlin(2026, 3, 28, 12, 0))
    assert not spring.business_hours
    assert spring.due("first_response") == berlin(2026, 3, 28, 13, 0)
    # 24 real hours: 13:00 on the wall clock after the spring-forward night.
    assert spring.due("resolution") == berlin(2026, 3, 29, 13, 0)
    autumn = TicketClocks.open(CRITICAL_24X7, "office", OFFICE, berlin(2026, 10, 24, 12, 0))
    assert autumn.due("resolution") == berlin(2026, 10, 25, 11, 0)


def test_the_resolution_ceiling_caps_a_long_budget_in_elapsed_time() -> None:
    opened = berlin(2026, 3, 2, 9, 0).astimezone(UTC)  # UTC: elapsed time, not wall clock
    clocks = TicketClocks.open(_policy(resolution="60d"), "office", OFFICE, opened)
    # 30 x 24 hours, not 30 wall-clock days: the spring DST change lies between.
    assert clocks.due("resolution") == opened + timedelta(days=30)
    assert clocks.due("resolution") == berlin(2026, 4, 1, 10, 0)
    assert _record(clocks, "resolution").warn_at == opened + timedelta(days=24)


def test_paused_time_does_not_count_against_the_ceiling() -> None:
    opened = berlin(2026, 3, 2, 9, 0).astimezone(UTC)
    clocks = TicketClocks.open(_policy(resolution="60d"), "office", OFFICE, opened).answered()
    # Waiting on the customer over a weekend: no business time, but 2 days of elapsed time.
    paused_at = berlin(2026, 3, 6, 17, 0)
    resumed = clocks.pause(OFFICE, paused_at).resume(OFFICE, paused_at + timedelta(days=2))
    assert resumed.due("resolution") == opened + timedelta(days=32)


def test_naive_now_is_refused() -> None:
    with pytest.raises(CalendarError, match="timezone-aware"):
        TicketClocks.open(HIGH, "office", OFFICE, datetime(2026, 3, 2, 9, 0))
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    with pytest.raises(CalendarError):
        clocks.due_actions(datetime(2026, 3, 2, 12, 0))
    with pytest.raises(CalendarError):
        clocks.pause(OFFICE, datetime(2026, 3, 2, 12, 0))


# ---------------------------------------------------------------- warnings and due actions


def test_warning_then_deadline() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    warn_at = berlin(2026, 3, 2, 12, 12)  # 80% of 4 hours
    assert clocks.due_actions(warn_at - MICROSECOND) == ()
    assert clocks.due_actions(warn_at) == (DueAction("first_response", "warning", warn_at),)
    warned = clocks.mark("first_response", warned=True)
    assert _record(warned, "first_response").warned
    assert warned.due_actions(berlin(2026, 3, 2, 12, 59)) == ()
    assert warned.next_check() == berlin(2026, 3, 2, 13, 0)
    # At the deadline only the deadline is listed.
    assert warned.due_actions(berlin(2026, 3, 2, 13, 0)) == (
        DueAction("first_response", "deadline", berlin(2026, 3, 2, 13, 0)),
    )
    # A deadline that passed unwarned makes its warning moot.
    assert clocks.due_actions(berlin(2026, 3, 2, 14, 0)) == (
        DueAction("first_response", "deadline", berlin(2026, 3, 2, 13, 0)),
    )


def test_warn_fraction_comes_from_the_policy() -> None:
    clocks = TicketClocks.open(_policy(warn_at=0.5), "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    assert clocks.warn_fraction == 0.5
    assert _record(clocks, "first_response").warn_at == berlin(2026, 3, 2, 11, 0)
    # Half of 24 business hours: Monday and half of Tuesday.
    assert _record(clocks, "resolution").warn_at == berlin(2026, 3, 3, 13, 0)


def test_due_actions_list_every_clock_earliest_first() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    late = berlin(2026, 3, 9, 9, 0)
    assert clocks.due_actions(late) == (
        DueAction("first_response", "deadline", berlin(2026, 3, 2, 13, 0)),
        DueAction("resolution", "deadline", berlin(2026, 3, 4, 17, 0)),
    )
    # 80% of 24 hours is 19h12m: Monday, Tuesday and 3h12m on Wednesday.
    resolution_warning = DueAction("resolution", "warning", berlin(2026, 3, 4, 12, 12))
    assert resolution_warning not in clocks.due_actions(berlin(2026, 3, 4, 12, 11))
    assert clocks.due_actions(berlin(2026, 3, 4, 12, 12)) == (
        DueAction("first_response", "deadline", berlin(2026, 3, 2, 13, 0)),
        resolution_warning,
    )


def test_mark_breached_never_fires_again_and_mark_of_a_missing_clock_is_a_no_op() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    breached = clocks.mark("first_response", breached=True)
    assert _record(breached, "first_response").breached
    assert [a.kind for a in breached.due_actions(berlin(2026, 3, 9, 9, 0))] == ["resolution"]
    assert breached.next_check() == _record(clocks, "resolution").warn_at
    # Marking never clears a flag, and an absent clock is left alone.
    assert breached.mark("first_response") == breached
    assert breached.mark("next_response", warned=True) == breached
    # The deadline is still shown (the CLI explains it) though it no longer fires.
    assert breached.due("first_response") == berlin(2026, 3, 2, 13, 0)


# ---------------------------------------------------------------- pausing


def test_pause_and_resume_shift_deadlines_by_the_paused_business_time() -> None:
    opened = berlin(2026, 3, 2, 9, 0)  # Monday
    clocks = TicketClocks.open(HIGH, "office", OFFICE, opened)
    paused = clocks.pause(OFFICE, berlin(2026, 3, 2, 11, 0))
    assert paused.paused
    assert paused.due("first_response") is None and paused.due("resolution") is None
    assert paused.next_check() is None
    assert paused.due_actions(berlin(2027, 1, 1)) == ()
    assert _record(paused, "first_response").used == hours(2)
    assert paused.pause(OFFICE, berlin(2026, 3, 3, 9, 0)) == paused  # already paused

    resumed = paused.resume(OFFICE, berlin(2026, 3, 4, 10, 0))  # Wednesday
    assert not resumed.paused
    # 2 of 4 hours were used before the pause; the other 2 from Wednesday 10:00.
    assert resumed.due("first_response") == berlin(2026, 3, 4, 12, 0)
    # 22 business hours left: Wednesday 7h, Thursday 8h, Friday 7h.
    assert resumed.due("resolution") == berlin(2026, 3, 6, 16, 0)
    paused_business_time = OFFICE.business_time_between(
        berlin(2026, 3, 2, 11, 0), berlin(2026, 3, 4, 10, 0)
    )
    assert paused_business_time == hours(15)
    for kind in ("first_response", "resolution"):
        before, after = clocks.due(kind), resumed.due(kind)
        assert before is not None and after is not None
        assert OFFICE.business_time_between(before, after) == paused_business_time
    assert resumed.resume(OFFICE, berlin(2026, 3, 5, 9, 0)) == resumed  # already running


def test_a_pause_outside_business_hours_moves_nothing() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 6, 15, 0))  # Friday
    weekend = clocks.pause(OFFICE, berlin(2026, 3, 6, 18, 0)).resume(
        OFFICE, berlin(2026, 3, 9, 8, 30)
    )
    assert weekend.due("first_response") == clocks.due("first_response")
    assert weekend.due("resolution") == clocks.due("resolution")


def test_a_pause_across_the_dst_change_counts_business_time_not_wall_clock() -> None:
    clocks = TicketClocks.open(HIGH, "daily", EVERY_DAY, berlin(2026, 3, 28, 9, 0))
    paused = clocks.pause(EVERY_DAY, berlin(2026, 3, 28, 11, 0))
    resumed = paused.resume(EVERY_DAY, berlin(2026, 3, 29, 11, 0))
    # Sat 9-11 used 2h; 2h left from Sunday 11:00 (CEST).
    assert resumed.due("first_response") == berlin(2026, 3, 29, 13, 0)
    assert resumed.due("first_response") == utc(2026, 3, 29, 11, 0)


def test_pausing_some_kinds_only_and_before_the_clock_ran() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    only = clocks.pause(OFFICE, berlin(2026, 3, 2, 10, 0), ("first_response",))
    assert not _record(only, "first_response").running
    assert _record(only, "resolution").running
    assert not only.paused  # one clock still runs
    # A "now" before the clock started (a skewed clock) pauses it with nothing used.
    early = clocks.pause(OFFICE, berlin(2026, 3, 2, 8, 0))
    assert _record(early, "first_response").used == timedelta(0)


def test_24x7_pause_counts_elapsed_time() -> None:
    clocks = TicketClocks.open(CRITICAL_24X7, "office", OFFICE, berlin(2026, 3, 7, 10, 0))
    paused = clocks.pause(OFFICE, berlin(2026, 3, 7, 10, 30))  # Saturday: closed office
    assert _record(paused, "first_response").used == timedelta(minutes=30)
    resumed = paused.resume(OFFICE, berlin(2026, 3, 7, 20, 0))
    assert resumed.due("first_response") == berlin(2026, 3, 7, 20, 30)


# ---------------------------------------------------------------- the lifecycle


def test_answered_meets_the_response_deadlines() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    answered = clocks.answered()
    assert _kinds(answered) == ["resolution"]
    assert answered.due("resolution") == clocks.due("resolution")
    assert answered.next_check() == _record(clocks, "resolution").warn_at


def test_customer_follow_up_starts_the_next_response_clock_once() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    # The first response is still owed: no second clock.
    early = clocks.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 2, 10, 0))
    assert early == clocks
    answered = clocks.answered()
    follow_up = answered.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 3, 13, 0))
    assert follow_up.due("next_response") == berlin(2026, 3, 4, 13, 0)
    # A second follow-up before the answer keeps the earlier deadline.
    again = follow_up.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 3, 15, 0))
    assert again.due("next_response") == berlin(2026, 3, 4, 13, 0)
    assert again.answered().record("next_response") is None


def test_customer_reply_resumes_clocks_paused_while_waiting() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0)).answered()
    waiting = clocks.pause(OFFICE, berlin(2026, 3, 2, 13, 0))  # 4h of resolution used
    replied = waiting.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 4, 9, 0))
    assert not replied.paused
    # 20 hours left from Wednesday 09:00: Wed 8h, Thu 8h, Fri 4h.
    assert replied.due("resolution") == berlin(2026, 3, 6, 13, 0)
    assert replied.due("next_response") == berlin(2026, 3, 4, 17, 0)


def test_resolved_then_reopened() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    clocks = clocks.answered().customer_wrote(HIGH, OFFICE, berlin(2026, 3, 2, 12, 0))
    resolved = clocks.resolved(OFFICE, berlin(2026, 3, 3, 9, 0))  # 8h of resolution used
    assert _kinds(resolved) == ["resolution"]
    assert resolved.paused and resolved.next_check() is None
    assert resolved.due_actions(berlin(2026, 6, 1)) == ()
    assert _record(resolved, "resolution").used == hours(8)

    reopened = resolved.reopened(HIGH, OFFICE, berlin(2026, 3, 5, 9, 0))  # Thursday
    assert _kinds(reopened) == ["next_response", "resolution"]
    # 16 hours left: Thursday and Friday.
    assert reopened.due("resolution") == berlin(2026, 3, 6, 17, 0)
    assert reopened.due("next_response") == berlin(2026, 3, 5, 17, 0)
    # The resolution clock kept its ceiling and its start.
    resolution = _record(reopened, "resolution")
    assert resolution.ceiling == timedelta(days=30)
    assert resolution.started_at == berlin(2026, 3, 2, 9, 0)


def test_reopened_without_a_resolution_clock_starts_one_without_the_ceiling() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    bare = clocks.stop(*CLOCK_KINDS)
    assert bare.clocks == () and not bare.paused and bare.next_check() is None
    reopened = bare.reopened(HIGH, OFFICE, berlin(2026, 3, 3, 9, 0))
    assert _kinds(reopened) == ["next_response", "resolution"]
    assert _record(reopened, "resolution").ceiling is None
    assert reopened.due("resolution") == berlin(2026, 3, 5, 17, 0)


# ---------------------------------------------------------------- escalation and moves


def test_escalation_restarts_the_fired_clock_with_a_full_budget() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    clocks = clocks.mark("first_response", warned=True)
    fired_at = berlin(2026, 3, 2, 13, 5)
    assert [a.action for a in clocks.due_actions(fired_at)] == ["deadline"]
    escalated = clocks.escalated("first_response", HIGH, OFFICE, fired_at)
    record = _record(escalated, "first_response")
    assert record.started_at == fired_at and record.used == timedelta(0)
    assert not record.warned and not record.breached
    assert escalated.due("first_response") == berlin(2026, 3, 3, 9, 5)
    assert escalated.due_actions(fired_at) == ()
    # The other clocks are not touched.
    assert escalated.record("resolution") == clocks.record("resolution")


def test_escalating_the_resolution_clock_drops_the_ceiling() -> None:
    policy = _policy(resolution="60d")
    opened = berlin(2026, 3, 2, 9, 0).astimezone(UTC)
    clocks = TicketClocks.open(policy, "office", OFFICE, opened).answered()
    fired_at = opened + timedelta(days=30)
    assert clocks.due_actions(fired_at) == (DueAction("resolution", "deadline", fired_at),)
    escalated = clocks.escalated("resolution", policy, OFFICE, fired_at)
    record = _record(escalated, "resolution")
    assert record.ceiling is None
    assert record.due == OFFICE.add(fired_at, hours(480))
    assert record.due is not None and record.due > fired_at + timedelta(days=30)


def test_escalation_without_a_fired_clock_restarts_the_owed_response() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0)).answered()
    clocks = clocks.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 2, 10, 0))
    now = berlin(2026, 3, 2, 16, 0)
    escalated = clocks.escalated(None, HIGH, OFFICE, now)
    assert escalated.due("next_response") == berlin(2026, 3, 3, 16, 0)
    assert escalated.record("resolution") == clocks.record("resolution")
    # With no response owed only the resolution clock goes on.
    answered = clocks.answered()
    assert answered.escalated(None, HIGH, OFFICE, now) == answered


def test_escalating_a_waiting_ticket_keeps_its_clocks_paused() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    waiting = clocks.pause(OFFICE, berlin(2026, 3, 2, 11, 0))
    escalated = waiting.escalated(None, HIGH, OFFICE, berlin(2026, 3, 2, 12, 0))
    assert escalated.paused
    record = _record(escalated, "first_response")
    assert record.used == timedelta(0) and record.budget == hours(4)
    resumed = escalated.resume(OFFICE, berlin(2026, 3, 3, 9, 0))
    assert resumed.due("first_response") == berlin(2026, 3, 3, 13, 0)


def test_move_to_another_team_calendar_keeps_the_time_used() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    moved = clocks.move_to("new-york", OFFICE, NEW_YORK_OFFICE, berlin(2026, 3, 2, 11, 0))
    assert moved.calendar == "new-york"
    assert _record(moved, "first_response").used == hours(2)
    # 05:00 in New York: two hours from 09:00 EST.
    assert moved.due("first_response") == datetime(2026, 3, 2, 11, 0, tzinfo=NEW_YORK)
    # A paused clock stays paused on the new calendar.
    waiting = clocks.pause(OFFICE, berlin(2026, 3, 2, 10, 0))
    assert waiting.move_to("new-york", OFFICE, NEW_YORK_OFFICE, berlin(2026, 3, 2, 11, 0)).paused


def test_with_policy_keeps_the_time_used() -> None:
    medium = _policy(name="medium", severity=["medium"], first_response="8h", resolution="10d")
    clocks = TicketClocks.open(medium, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    now = berlin(2026, 3, 2, 12, 0)  # 3 business hours used
    high = clocks.with_policy(HIGH, OFFICE, now)
    assert high.policy == "high"
    assert _record(high, "first_response").budget == hours(4)
    assert _record(high, "first_response").used == hours(3)
    assert high.due("first_response") == berlin(2026, 3, 2, 13, 0)
    assert high.due("resolution") == berlin(2026, 3, 4, 17, 0)
    # A budget already spent falls due at once.
    tight = clocks.with_policy(_policy(first_response="2h"), OFFICE, now)
    assert tight.due_actions(now)[0] == DueAction("first_response", "deadline", now)


def test_with_policy_switching_to_24x7_counts_the_rest_in_elapsed_time() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 6, 16, 30))  # Friday
    now = berlin(2026, 3, 6, 18, 0)  # 30 business minutes used
    critical = clocks.with_policy(CRITICAL_24X7, OFFICE, now)
    assert not critical.business_hours and critical.warn_fraction == 0.8
    assert critical.due("first_response") == berlin(2026, 3, 6, 18, 30)
    # A waiting ticket stays paused under the new policy.
    waiting = clocks.pause(OFFICE, berlin(2026, 3, 6, 17, 0))
    assert waiting.with_policy(CRITICAL_24X7, OFFICE, now).paused


# ---------------------------------------------------------------- storing


def _busy_clocks() -> TicketClocks:
    """Clocks in every state: warned, breached, paused, uncapped."""
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 27, 16, 0)).answered()
    clocks = clocks.customer_wrote(HIGH, OFFICE, berlin(2026, 3, 30, 9, 0))
    clocks = clocks.mark("next_response", warned=True)
    clocks = clocks.escalated("resolution", HIGH, OFFICE, berlin(2026, 3, 31, 9, 0))
    clocks = clocks.pause(OFFICE, berlin(2026, 3, 31, 10, 30), ("resolution",))
    return clocks.mark("resolution", breached=True)


def test_json_round_trip_is_exact() -> None:
    clocks = _busy_clocks()
    stored = json.loads(json.dumps(clocks.to_json()))
    assert stored["version"] == 1
    assert TicketClocks.from_json(stored) == clocks
    fresh = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 10, 25, 2, 30))
    assert TicketClocks.from_json(json.loads(json.dumps(fresh.to_json()))) == fresh


def test_json_instants_are_utc_and_durations_are_seconds() -> None:
    clocks = TicketClocks.open(HIGH, "office", OFFICE, berlin(2026, 3, 2, 9, 0))
    record = clocks.to_json()["clocks"][0]
    assert record["started_at"] == "2026-03-02T08:00:00+00:00"
    assert record["budget"] == 4 * 3600
    assert record["ceiling"] is None and record["warned"] is False


def _stored() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps(_busy_clocks().to_json()))
    return data


def _with(changes: dict[str, Any], clock: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {**_stored(), **changes}
    if clock is not None:
        data["clocks"] = [{**data["clocks"][0], **clock}]
    return data


MALFORMED: dict[str, Any] = {
    "none": None,
    "a list": [],
    "a string": "not a mapping",
    "empty": {},
    "only clocks": {"clocks": []},
    "no warn_fraction": {k: v for k, v in _stored().items() if k != "warn_fraction"},
    "word warn_fraction": _with({"warn_fraction": "high"}),
    "clocks a number": _with({"clocks": 3}),
    "clocks null": _with({"clocks": None}),
    "clock a string": _with({"clocks": ["first_response"]}),
    "clock null": _with({"clocks": [None]}),
    "unknown kind": _with({}, {"kind": "lunch"}),
    "null kind": _with({}, {"kind": None}),
    "word budget": _with({}, {"budget": "four hours"}),
    "null budget": _with({}, {"budget": None}),
    "infinite budget": _with({}, {"budget": float("inf")}),
    "huge budget": _with({}, {"budget": 1e300}),
    "NaN used": _with({}, {"used": float("nan")}),
    "word ceiling": _with({}, {"ceiling": "30d"}),
    "no start": _with({}, {"started_at": None}),
    "word start": _with({}, {"started_at": "yesterday"}),
    "naive start": _with({}, {"started_at": "2026-03-02T09:00:00"}),
    "start before year 1 in UTC": _with({}, {"started_at": "0001-01-01T00:30:00+01:00"}),
    "number due": _with({}, {"due": 12}),
    "list running_since": _with({}, {"running_since": ["2026-03-02T08:00:00+00:00"]}),
}


@pytest.mark.parametrize("data", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_state_raises_calendar_error(data: Any) -> None:
    with pytest.raises(CalendarError, match=r"malformed|SLA clock|timezone-aware"):
        TicketClocks.from_json(data)


def test_clock_record_from_json_refuses_an_unknown_kind() -> None:
    with pytest.raises(CalendarError, match="unknown SLA clock kind"):
        ClockRecord.from_json({**_stored()["clocks"][0], "kind": "lunch"})
    with pytest.raises(CalendarError, match="without a start"):
        ClockRecord.from_json({**_stored()["clocks"][0], "started_at": None})


# ---------------------------------------------------------------- properties

PROPERTY_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
BUSINESS_CALENDARS = [OFFICE, SUPPORT, EVERY_DAY, LUNCH_BREAK, NEW_YORK_OFFICE, SUNDAYS]

calendars = st.sampled_from(BUSINESS_CALENDARS)
# Minutes into 2026 from a week before the spring change to after the autumn one.
_EPOCH = datetime(2026, 3, 20, tzinfo=UTC)
instants = st.builds(
    lambda minutes, seconds: _EPOCH + timedelta(minutes=minutes, seconds=seconds),
    st.integers(min_value=0, max_value=230 * 24 * 60),
    st.integers(min_value=0, max_value=59),
)
budgets = st.integers(min_value=1, max_value=40 * 60).map(lambda m: timedelta(minutes=m))
gaps = st.integers(min_value=0, max_value=4 * 24 * 60).map(lambda m: timedelta(minutes=m))
fractions = st.sampled_from([0.5, 0.75, 0.8, 0.9])


def _budget_policy(budget: timedelta, warn_at: float = 0.8) -> SlaPolicy:
    # No ceiling within reach: the ceiling counts elapsed time, not business time
    # (a capped deadline does move when a pause outside business hours ends).
    return SlaPolicy(
        name="p",
        severity=("high",),
        first_response=budget,
        next_response=budget,
        resolution=budget * 6,
        resolution_ceiling=timedelta(days=3650),
        warn_at=warn_at,
    )


@PROPERTY_SETTINGS
@given(calendars, instants, budgets, fractions)
def test_deadlines_and_warnings_fall_inside_working_hours(
    calendar: BusinessCalendar, start: datetime, budget: timedelta, fraction: float
) -> None:
    clocks = TicketClocks.open(_budget_policy(budget, fraction), "c", calendar, start)
    record = _record(clocks, "first_response")
    assert record.due is not None and record.warn_at is not None
    for instant in (record.due, record.warn_at):
        assert instant > start
        # Inside an open interval or at its very end (17:00 on the dot).
        assert calendar.is_open(instant - MICROSECOND)
    assert record.warn_at <= record.due
    assert calendar.business_time_between(start, record.due) == budget


@PROPERTY_SETTINGS
@given(calendars, instants, instants, budgets, budgets)
def test_deadlines_are_monotonic_in_start_and_budget(
    calendar: BusinessCalendar, first: datetime, second: datetime, small: timedelta, big: timedelta
) -> None:
    early, late = sorted((first, second))
    small, big = sorted((small, big))

    def due(start: datetime, budget: timedelta) -> datetime:
        value = TicketClocks.open(_budget_policy(budget), "c", calendar, start).due(
            "first_response"
        )
        assert value is not None
        return value

    assert due(early, small) <= due(late, small)
    assert due(early, small) <= due(early, big)


@PROPERTY_SETTINGS
@given(calendars, instants, budgets, st.floats(min_value=0, max_value=1.5), gaps)
def test_a_pause_never_brings_a_deadline_forward(
    calendar: BusinessCalendar, start: datetime, budget: timedelta, where: float, gap: timedelta
) -> None:
    clocks = TicketClocks.open(_budget_policy(budget), "c", calendar, start)
    due = clocks.due("first_response")
    assert due is not None
    paused_at = start + (due - start) * where
    resumed_at = paused_at + gap
    resumed = clocks.pause(calendar, paused_at).resume(calendar, resumed_at)
    later = resumed.due("first_response")
    assert later is not None and later >= due
    resolution_before, resolution_after = clocks.due("resolution"), resumed.due("resolution")
    assert resolution_before is not None and resolution_after is not None
    assert resolution_after >= resolution_before
    if paused_at <= due:
        # Exactly the business time spent paused is added.
        paused_time = calendar.business_time_between(paused_at, resumed_at)
        assert calendar.business_time_between(start, later) == budget + paused_time


@PROPERTY_SETTINGS
@given(calendars, instants, budgets, st.floats(min_value=0, max_value=0.99))
def test_a_pause_entirely_outside_business_hours_moves_nothing(
    calendar: BusinessCalendar, start: datetime, budget: timedelta, where: float
) -> None:
    clocks = TicketClocks.open(_budget_policy(budget), "c", calendar, start)
    due = clocks.due("first_response")
    assert due is not None
    paused_at = start + (due - start) * where
    # From a closed moment to the next opening: no business time in between.
    resumed_at = calendar.next_open(paused_at)
    assert calendar.business_time_between(paused_at, resumed_at) == timedelta(0)
    resumed = clocks.pause(calendar, paused_at).resume(calendar, resumed_at)
    assert resumed.due("first_response") == due
    assert resumed.due("resolution") == clocks.due("resolution")


# A ticket's life as a random sequence of events at increasing instants.
EVENTS = (
    "answered",
    "customer_wrote",
    "wait",
    "resume",
    "resolved",
    "reopened",
    "act",
    "severity_rose",
    "move",
)
histories = st.lists(
    st.tuples(st.sampled_from(EVENTS), gaps.map(lambda gap: gap / 4)), min_size=0, max_size=8
)


def _act(clocks: TicketClocks, calendar: BusinessCalendar, now: datetime) -> TicketClocks:
    """What the sweep does: warn, or escalate a passed deadline for the next level."""
    for action in clocks.due_actions(now):
        if action.action == "warning":
            clocks = clocks.mark(action.kind, warned=True)
        else:
            clocks = clocks.escalated(action.kind, HIGH, calendar, now)
    return clocks


_MOVES: dict[str, Any] = {
    "answered": lambda c, cal, now: c.answered(),
    "customer_wrote": lambda c, cal, now: c.customer_wrote(HIGH, cal, now),
    "wait": lambda c, cal, now: c.pause(cal, now),
    "resume": lambda c, cal, now: c.resume(cal, now),
    "resolved": lambda c, cal, now: c.resolved(cal, now),
    "reopened": lambda c, cal, now: c.reopened(HIGH, cal, now),
    "act": _act,
    "severity_rose": lambda c, cal, now: c.with_policy(CRITICAL_24X7, cal, now),
}


def _live(
    calendar: BusinessCalendar, start: datetime, history: list[tuple[str, timedelta]]
) -> tuple[TicketClocks, datetime]:
    clocks = TicketClocks.open(HIGH, "office", calendar, start)
    now = start
    for event, gap in history:
        now += gap
        if event == "move":
            clocks = clocks.move_to("new-york", calendar, NEW_YORK_OFFICE, now)
            calendar = NEW_YORK_OFFICE
        else:
            clocks = _MOVES[event](clocks, calendar, now)
    return clocks, now


@PROPERTY_SETTINGS
@given(calendars, instants, histories, gaps)
def test_next_check_is_the_earliest_pending_instant(
    calendar: BusinessCalendar,
    start: datetime,
    history: list[tuple[str, timedelta]],
    later: timedelta,
) -> None:
    clocks, now = _live(calendar, start, history)
    pending = [
        instant
        for record in clocks.clocks
        if record.running and not record.breached
        for instant in (None if record.warned else record.warn_at, record.due)
        if instant is not None
    ]
    check = clocks.next_check()
    assert check == min(pending, default=None)
    # Nothing is due before it; at it, something is, and it is the earliest action.
    for moment in (now, now + later, start):
        assert (clocks.due_actions(moment) == ()) == (check is None or moment < check)
    if check is not None:
        assert clocks.due_actions(check - MICROSECOND) == ()
        actions = clocks.due_actions(check)
        assert actions and actions[0].at == check
        assert [a.at for a in actions] == sorted(a.at for a in actions)


@PROPERTY_SETTINGS
@given(calendars, instants, histories)
def test_any_history_keeps_the_clocks_consistent_and_storable(
    calendar: BusinessCalendar, start: datetime, history: list[tuple[str, timedelta]]
) -> None:
    clocks, _ = _live(calendar, start, history)
    kinds = _kinds(clocks)
    assert kinds == sorted(set(kinds), key=CLOCK_KINDS.index)  # one of each, in order
    for record in clocks.clocks:
        if record.running:
            assert record.due is not None and record.warn_at is not None
            assert record.running_since is not None and record.warn_at <= record.due
            assert record.due >= record.running_since
        else:
            assert record.due is None and record.warn_at is None
        assert record.used >= timedelta(0) and record.elapsed >= timedelta(0)
    assert TicketClocks.from_json(json.loads(json.dumps(clocks.to_json()))) == clocks


# -- fixes after review ------------------------------------------------------------


def test_escalation_restarts_every_deadline_that_has_passed_not_only_the_fired_one() -> None:
    policy = _policy(first_response="1h", resolution="2h")
    opened = berlin(2026, 11, 23, 9)
    clocks = TicketClocks.open(policy, "office", OFFICE, opened)
    # The daemon was down for days: both deadlines have passed.
    now = berlin(2026, 11, 26, 10)
    escalated = clocks.escalated("first_response", policy, OFFICE, now)
    assert escalated.due_actions(now) == ()
    assert _record(escalated, "first_response").due == OFFICE.add(now, hours(1))
    assert _record(escalated, "resolution").due == OFFICE.add(now, hours(2))


def test_a_reopen_by_staff_owes_no_reply() -> None:
    policy = _policy()
    clocks = TicketClocks.open(policy, "office", OFFICE, berlin(2026, 11, 23, 9))
    resolved = clocks.resolved(OFFICE, berlin(2026, 11, 23, 11))
    reopened = resolved.reopened(policy, OFFICE, berlin(2026, 11, 24, 9), reply_owed=False)
    assert reopened.record("next_response") is None
    assert _record(reopened, "resolution").running


def test_remaining_counts_as_the_policy_counts() -> None:
    policy = _policy(business_hours=False, first_response="1h")
    opened = berlin(2026, 11, 27, 18)  # Friday evening: the office is closed, 24x7 is not
    clocks = TicketClocks.open(policy, "office", OFFICE, opened)
    assert clocks.remaining("first_response", OFFICE, opened + timedelta(minutes=48)) == (
        timedelta(minutes=12)
    )
    assert clocks.remaining("next_response", OFFICE, opened) is None
