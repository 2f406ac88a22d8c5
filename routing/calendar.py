"""Business-time arithmetic on a team's calendar.

Opening hours are wall-clock intervals in the calendar's time zone, so a
09:00-17:00 day holds 8 hours of business time on the days clocks change too.
Arithmetic is done on absolute instants (UTC): business time is real elapsed
time while the calendar is open. A wall-clock time that does not exist (inside
a spring-forward gap) is read as PEP 495 reads it (``fold=0``), and any
resulting overlap between intervals is merged, so sums stay consistent.

Every method takes timezone-aware datetimes (naive ones raise
:class:`~routing.errors.CalendarError`) and returns them in UTC: Python
compares two datetimes of the *same* zone by wall clock, ignoring ``fold``,
which gets the repeated autumn hour wrong; UTC values compare correctly and
store as they are. Convert for display only (see :mod:`routing.text`).
Public holidays are computed per year, on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays

from routing.config import CalendarConfig, parse_interval
from routing.errors import CalendarError

__all__ = ["BusinessCalendar"]

Interval = tuple[datetime, datetime]
DayHours = tuple[tuple[int, int], ...]
_ZERO = timedelta(0)
_DAY = timedelta(days=1)
# A calendar with weekly hours cannot be closed for longer than a run of
# holidays; a year without one open minute means the configuration is wrong.
_MAX_CLOSED_DAYS = 370


def _require_aware(value: datetime, what: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(UTC)


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue  # an interval swallowed by a DST gap
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


@dataclass(frozen=True)
class BusinessCalendar:
    """A team's business hours: weekly hours, time zone, holidays, closed dates.

    Build one with :meth:`from_config`, :meth:`weekly` or :meth:`always`.
    Instances are immutable values (the caches are private and do not take
    part in equality).
    """

    time_zone: ZoneInfo
    hours: tuple[tuple[tuple[int, int], ...], ...] = ((),) * 7
    """Per weekday (Monday first): (start, end) in minutes since local midnight."""
    holidays_country: str | None = None
    holidays_subdivision: str | None = None
    closed_dates: frozenset[date] = frozenset()
    always_open: bool = False
    name: str = ""
    open_dates: tuple[tuple[date, DayHours], ...] = ()
    """Dates open with their own hours, whatever the week, holidays and closed dates say."""
    weekend_workdays: bool = True
    """Open, with the usual weekday hours, on weekend days the law makes working days."""
    _holidays: dict[int, frozenset[date]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _workdays: dict[int, frozenset[date]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )
    _days: dict[date, tuple[Interval, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if len(self.hours) != 7:
            raise CalendarError("hours needs seven weekdays, Monday first")
        if not self.always_open and not any(self.hours):
            raise CalendarError("the calendar is never open")
        if len({day for day, _ in self.open_dates}) != len(self.open_dates):
            raise CalendarError("open_dates lists a date more than once")

    # ------------------------------------------------------------ constructors

    @classmethod
    def from_config(cls, config: CalendarConfig) -> BusinessCalendar:
        """The calendar described by a ``[[calendars]]`` section."""
        return cls(
            time_zone=ZoneInfo(config.time_zone),
            hours=config.hours.by_weekday(),
            holidays_country=config.holidays_country,
            holidays_subdivision=config.holidays_subdivision,
            closed_dates=frozenset(config.closed_dates),
            always_open=config.always_open,
            name=config.name,
            open_dates=tuple((entry.date, entry.parsed_hours()) for entry in config.open_dates),
            weekend_workdays=config.weekend_workdays,
        )

    @classmethod
    def weekly(
        cls,
        time_zone: str,
        hours: Mapping[str, Sequence[str]],
        *,
        holidays_country: str | None = None,
        holidays_subdivision: str | None = None,
        closed_dates: Iterable[date] = (),
        open_dates: Mapping[date, Sequence[str]] | None = None,
        weekend_workdays: bool = True,
        name: str = "",
    ) -> BusinessCalendar:
        """A calendar from ``{"mon": ["09:00-17:00"], ...}``; absent days are closed."""
        keys = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        unknown = set(hours) - set(keys)
        if unknown:
            raise CalendarError(f"unknown weekday keys: {', '.join(sorted(unknown))}")
        parsed = tuple(
            tuple(sorted(parse_interval(text) for text in hours.get(key, ()))) for key in keys
        )
        return cls(
            time_zone=ZoneInfo(time_zone),
            hours=parsed,
            holidays_country=holidays_country,
            holidays_subdivision=holidays_subdivision,
            closed_dates=frozenset(closed_dates),
            open_dates=tuple(
                (day, tuple(sorted(parse_interval(text) for text in texts)))
                for day, texts in sorted((open_dates or {}).items())
            ),
            weekend_workdays=weekend_workdays,
            name=name,
        )

    @classmethod
    def always(cls, time_zone: str | ZoneInfo = "UTC", *, name: str = "24x7") -> BusinessCalendar:
        """A 24x7 calendar (the time zone only matters for displaying results)."""
        zone = time_zone if isinstance(time_zone, ZoneInfo) else ZoneInfo(time_zone)
        return cls(time_zone=zone, always_open=True, name=name)

    def twenty_four_seven(self) -> BusinessCalendar:
        """A 24x7 calendar in this calendar's time zone (for 24x7 SLA policies)."""
        return self if self.always_open else BusinessCalendar.always(self.time_zone)

    # ------------------------------------------------------------ days

    def is_closed_date(self, day: date) -> bool:
        """True when ``day`` (local) is a public holiday or an extra closed date.

        An open date is never closed, whatever else falls on it.
        """
        if self.always_open or self._open_date_hours(day) is not None:
            return False
        if day in self.closed_dates:
            return True
        if self.holidays_country is None:
            return False
        self._load_holiday_year(day.year)
        return day in self._holidays[day.year]

    def _load_holiday_year(self, year: int) -> None:
        if year in self._holidays or self.holidays_country is None:
            return
        calendar = holidays.country_holidays(
            self.holidays_country, subdiv=self.holidays_subdivision, years=year
        )
        # Weekend days worked in exchange for a bridge day off (e.g. Hungary).
        # Stored before the holidays: another thread (calendars are shared by the
        # mailbox workers and the scheduler) takes a present holiday year to mean
        # both are there.
        self._workdays[year] = frozenset(calendar.weekend_workdays)
        self._holidays[year] = frozenset(calendar)

    def _open_date_hours(self, day: date) -> DayHours | None:
        for open_day, hours in self.open_dates:
            if open_day == day:
                return hours
        return None

    def is_weekend_workday(self, day: date) -> bool:
        """True when the law makes ``day``, a weekend day, a working day (and we follow it)."""
        if not self.weekend_workdays or self.holidays_country is None or self.always_open:
            return False
        self._load_holiday_year(day.year)
        return day in self._workdays[day.year]

    def _usual_weekday_hours(self) -> DayHours:
        """The most common non-empty Monday-to-Friday hours (the earliest weekday on a tie)."""
        weekdays = [hours for hours in self.hours[:5] if hours]
        if not weekdays:
            return next(hours for hours in self.hours if hours)
        return max(weekdays, key=weekdays.count)

    def hours_on(self, day: date) -> DayHours:
        """The opening hours of local date ``day`` (minutes since midnight); empty when closed."""
        explicit = self._open_date_hours(day)
        if explicit is not None:
            return explicit
        if self.is_closed_date(day):
            return ()
        if self.is_weekend_workday(day):
            return self._usual_weekday_hours()
        return self.hours[day.weekday()]

    def _instant(self, day: date, minute: int) -> datetime:
        if minute >= 24 * 60:
            day, minute = day + _DAY, minute - 24 * 60
        local = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=self.time_zone)
        return local.astimezone(UTC)

    def open_intervals(self, day: date) -> tuple[Interval, ...]:
        """The open intervals of local date ``day`` as UTC instants, merged and sorted."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        if self.always_open:
            intervals: tuple[Interval, ...] = (
                (self._instant(day, 0), self._instant(day + _DAY, 0)),
            )
        else:
            intervals = _merge(
                (self._instant(day, start), self._instant(day, end))
                for start, end in self.hours_on(day)
            )
        self._days[day] = intervals
        return intervals

    def _intervals_from(self, instant: datetime) -> Iterable[Interval]:
        """Open intervals ending after ``instant`` (UTC), in order, forever."""
        day = instant.astimezone(self.time_zone).date()
        closed_run = 0
        while True:
            intervals = self.open_intervals(day)
            closed_run = 0 if intervals else closed_run + 1
            if closed_run > _MAX_CLOSED_DAYS:
                raise CalendarError(
                    f"calendar {self.name or '(unnamed)'} is closed for over a year after {day}"
                )
            for start, end in intervals:
                if end > instant:
                    yield start, end
            day += _DAY

    # ------------------------------------------------------------ queries

    def is_open(self, at: datetime) -> bool:
        """True when ``at`` is business time (intervals include their start, not their end)."""
        instant = _require_aware(at, "at")
        if self.always_open:
            return True
        day = instant.astimezone(self.time_zone).date()
        return any(start <= instant < end for start, end in self.open_intervals(day))

    def next_open(self, at: datetime) -> datetime:
        """``at`` itself when open, otherwise the next moment the calendar opens (UTC)."""
        instant = _require_aware(at, "at")
        if self.always_open:
            return instant
        start, _ = next(iter(self._intervals_from(instant)))
        return max(start, instant)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The instant (UTC) ``duration`` of business time after ``start``.

        A positive result always falls inside an open interval or exactly at its
        end (a deadline of 17:00 on the dot). ``add(start, 0)`` is ``start``.
        Raises :class:`CalendarError` for naive datetimes or negative durations.
        """
        instant = _require_aware(start, "start")
        if duration < _ZERO:
            raise CalendarError(f"duration must not be negative, got {duration}")
        if duration == _ZERO or self.always_open:
            return instant + duration
        remaining = duration
        for interval_start, interval_end in self._intervals_from(instant):
            begin = max(interval_start, instant)
            available = interval_end - begin
            if remaining <= available:
                return begin + remaining
            remaining -= available
        raise AssertionError("unreachable: _intervals_from never ends")  # pragma: no cover

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Business time from ``start`` to ``end``; negative when ``end`` is earlier."""
        first = _require_aware(start, "start")
        last = _require_aware(end, "end")
        if last < first:
            return -self.business_time_between(end, start)
        if self.always_open:
            return last - first
        total = _ZERO
        day = first.astimezone(self.time_zone).date()
        last_day = last.astimezone(self.time_zone).date()
        while day <= last_day:
            for interval_start, interval_end in self.open_intervals(day):
                overlap = min(interval_end, last) - max(interval_start, first)
                if overlap > _ZERO:
                    total += overlap
            day += _DAY
        return total
