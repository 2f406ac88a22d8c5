"""SLA deadlines: when an answer and a resolution are due, and when to warn.

A deadline is a budget of business time (24x7 for policies with
``business_hours = false``) counted on the owning team's calendar from a start
instant. While the ticket waits on the customer the clocks pause: an
:class:`SlaClock` is an immutable value that accumulates the business time used
so far, so it can be stored (``used``, ``elapsed``, ``running_since``) and
rebuilt after a restart. Nothing here reads the clock; "now" is always passed in.
Every datetime returned is in UTC (see :mod:`routing.calendar` for why).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Literal

from routing.calendar import BusinessCalendar
from routing.config import SlaPolicy
from routing.errors import CalendarError

__all__ = [
    "Deadline",
    "DeadlineKind",
    "Deadlines",
    "SlaClock",
    "compute_deadlines",
    "sla_clock",
]

DeadlineKind = Literal["first_response", "next_response", "resolution"]
_ZERO = timedelta(0)


def _utc(value: datetime, what: str) -> datetime:
    # Same-zone datetimes compare by wall clock (fold ignored); UTC ones by instant.
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Deadline:
    """One deadline of a ticket and the moment its owner is warned."""

    kind: DeadlineKind
    due: datetime
    warn_at: datetime
    budget: timedelta
    """The policy's duration for this deadline (business time unless 24x7)."""

    def state(self, now: datetime) -> Literal["ok", "warning", "breached"]:
        """Where ``now`` falls: before the warning, after it, or at/after the deadline."""
        instant = _utc(now, "now")
        if instant >= self.due:
            return "breached"
        return "warning" if instant >= self.warn_at else "ok"


@dataclass(frozen=True)
class SlaClock:
    """A pausable business-time budget: a value, every method returns a new clock.

    ``used`` and ``elapsed`` hold the business time and the calendar time
    consumed up to the last pause; ``running_since`` is None while paused.
    ``ceiling`` caps the deadline in calendar time (the 30-day rule); time
    spent paused does not count against it either.
    """

    calendar: BusinessCalendar
    budget: timedelta
    running_since: datetime | None
    used: timedelta = _ZERO
    elapsed: timedelta = _ZERO
    ceiling: timedelta | None = None
    warn_fraction: float = 0.8

    @classmethod
    def start(
        cls,
        calendar: BusinessCalendar,
        budget: timedelta,
        at: datetime,
        *,
        ceiling: timedelta | None = None,
        warn_fraction: float = 0.8,
    ) -> SlaClock:
        """A running clock with nothing used, started at ``at``."""
        at = _utc(at, "at")
        if budget <= _ZERO:
            raise CalendarError(f"an SLA budget must be positive, got {budget}")
        if not 0 < warn_fraction < 1:
            raise CalendarError(f"warn_fraction must be between 0 and 1, got {warn_fraction}")
        return cls(calendar, budget, at, ceiling=ceiling, warn_fraction=warn_fraction)

    @property
    def paused(self) -> bool:
        """True while the clock is paused (waiting on the customer)."""
        return self.running_since is None

    def pause(self, at: datetime) -> SlaClock:
        """Stop counting at ``at``; pausing a paused clock changes nothing."""
        at = _utc(at, "at")
        if self.running_since is None:
            return self
        if at < self.running_since:
            raise CalendarError(
                f"cannot pause at {at}, before the clock ran ({self.running_since})"
            )
        return replace(
            self,
            running_since=None,
            used=self.used + self.calendar.business_time_between(self.running_since, at),
            elapsed=self.elapsed + (at - self.running_since),
        )

    def resume(self, at: datetime) -> SlaClock:
        """Count again from ``at``; resuming a running clock changes nothing."""
        at = _utc(at, "at")
        return self if self.running_since is not None else replace(self, running_since=at)

    def used_at(self, now: datetime) -> timedelta:
        """Business time used up to ``now``."""
        now = _utc(now, "now")
        if self.running_since is None or now <= self.running_since:
            return self.used
        return self.used + self.calendar.business_time_between(self.running_since, now)

    def remaining(self, now: datetime) -> timedelta:
        """Business time left at ``now`` (negative once overdue)."""
        return self.budget - self.used_at(now)

    def deadline(self) -> datetime | None:
        """When the budget runs out, or None while paused."""
        if self.running_since is None:
            return None
        due = self.calendar.add(self.running_since, max(self.budget - self.used, _ZERO))
        return self._capped(due, 1.0)

    def warning(self) -> datetime | None:
        """When ``warn_fraction`` of the budget is used, or None while paused.

        Already past (equal to ``running_since``) when the fraction was used
        before the last pause.
        """
        if self.running_since is None:
            return None
        left = self.budget * self.warn_fraction - self.used
        due = self.calendar.add(self.running_since, max(left, _ZERO))
        return self._capped(due, self.warn_fraction)

    def _capped(self, due: datetime, fraction: float) -> datetime:
        if self.ceiling is None or self.running_since is None:
            return due
        left = max(self.ceiling * fraction - self.elapsed, _ZERO)
        return min(due, self.running_since + left)


@dataclass(frozen=True)
class Deadlines:
    """The deadlines of one ticket under one policy (None: not running)."""

    policy: str
    business_hours: bool
    first_response: Deadline | None
    next_response: Deadline | None
    resolution: Deadline | None

    def all(self) -> tuple[Deadline, ...]:
        """The running deadlines, earliest first."""
        found = [self.first_response, self.next_response, self.resolution]
        return tuple(sorted((d for d in found if d is not None), key=lambda d: d.due))


def sla_clock(
    policy: SlaPolicy, calendar: BusinessCalendar, kind: DeadlineKind, at: datetime
) -> SlaClock:
    """A clock for deadline ``kind`` of ``policy``, started at ``at``.

    24x7 policies count on a 24x7 calendar in the team's time zone; the
    resolution clock carries the policy's ceiling.
    """
    counting = calendar if policy.business_hours else calendar.twenty_four_seven()
    budget: timedelta = getattr(policy, kind)
    ceiling = policy.resolution_ceiling if kind == "resolution" else None
    return SlaClock.start(counting, budget, at, ceiling=ceiling, warn_fraction=policy.warn_at)


def _deadline(
    kind: DeadlineKind,
    clock: SlaClock,
    pauses: Iterable[tuple[datetime, datetime | None]],
    start: datetime,
) -> Deadline | None:
    for paused_at, resumed_at in pauses:
        if resumed_at is not None and resumed_at <= start:
            continue  # a pause that ended before this clock started
        clock = clock.pause(max(paused_at, start))
        if resumed_at is not None:
            clock = clock.resume(resumed_at)
    due, warn = clock.deadline(), clock.warning()
    if due is None or warn is None:
        return None
    return Deadline(kind, due, warn, clock.budget)


def compute_deadlines(
    policy: SlaPolicy,
    calendar: BusinessCalendar,
    opened_at: datetime,
    *,
    follow_up_at: datetime | None = None,
    pauses: Iterable[tuple[datetime, datetime | None]] = (),
) -> Deadlines:
    """The deadlines of a ticket opened at ``opened_at`` under ``policy``.

    ``calendar`` is the owning team's; 24x7 policies ignore its hours.
    ``follow_up_at`` is the customer's latest unanswered follow-up (starts the
    next-response clock). ``pauses`` are (paused_at, resumed_at) windows spent
    waiting on the customer, oldest first; an open window (resumed_at None)
    means the clocks are paused now, so their deadlines are None.
    """
    opened_at = _utc(opened_at, "opened_at")
    windows = sorted(
        ((_utc(paused, "a pause"), None if resumed is None else _utc(resumed, "a resume"))
         for paused, resumed in pauses),
        key=lambda window: window[0],
    )  # fmt: skip
    for paused_at, resumed_at in windows:
        if resumed_at is not None and resumed_at < paused_at:
            raise CalendarError(f"a pause ends ({resumed_at}) before it starts ({paused_at})")
    next_response = None
    if follow_up_at is not None:
        follow_up_at = _utc(follow_up_at, "follow_up_at")
        clock = sla_clock(policy, calendar, "next_response", follow_up_at)
        next_response = _deadline("next_response", clock, windows, follow_up_at)
    return Deadlines(
        policy=policy.name,
        business_hours=policy.business_hours,
        first_response=_deadline(
            "first_response",
            sla_clock(policy, calendar, "first_response", opened_at),
            windows,
            opened_at,
        ),
        next_response=next_response,
        resolution=_deadline(
            "resolution", sla_clock(policy, calendar, "resolution", opened_at), windows, opened_at
        ),
    )
