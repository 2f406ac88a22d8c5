"""The SLA clocks of one ticket, as a value that can be stored and moved by events.

A ticket has up to three clocks (first response, next response, resolution),
each an :class:`~routing.sla.SlaClock` budget counted on the owning team's
calendar. :class:`TicketClocks` keeps what is needed to rebuild them after a
restart (business time used, calendar time elapsed, when each last started
running) plus the instants the scheduler must act on: the warning and the
deadline of every running clock. The lifecycle of a ticket moves them:

- opened: first response and resolution start;
- an agent answers: the response clocks stop (met);
- the customer writes again: the next-response clock starts (unless the first
  response is still owed), paused clocks resume;
- waiting on the customer: every clock pauses; resolved: the response clocks
  stop and the resolution clock pauses; reopened: resolution resumes;
- a deadline passes and the ticket moves up a level: that clock starts again
  with its full budget for the new owner (``restart``); at the last level it
  is marked breached instead and never fires again.

Pure: every method takes "now" and the calendar and returns a new value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from routing.calendar import BusinessCalendar
from routing.config import SlaPolicy
from routing.errors import CalendarError
from routing.sla import DeadlineKind, SlaClock

__all__ = ["CLOCK_KINDS", "ClockRecord", "DueAction", "TicketClocks"]

CLOCK_KINDS: tuple[DeadlineKind, ...] = ("first_response", "next_response", "resolution")
RESPONSE_KINDS: tuple[DeadlineKind, ...] = ("first_response", "next_response")
_ZERO = timedelta(0)
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DueAction:
    """Something the scheduler must do now: warn the owner, or act on a passed deadline."""

    kind: DeadlineKind
    action: Literal["warning", "deadline"]
    at: datetime
    """When it fell due (the warning instant or the deadline)."""


@dataclass(frozen=True)
class ClockRecord:
    """One clock's stored state; ``due``/``warn_at`` are None while it is paused."""

    kind: DeadlineKind
    budget: timedelta
    started_at: datetime
    running_since: datetime | None
    used: timedelta = _ZERO
    elapsed: timedelta = _ZERO
    ceiling: timedelta | None = None
    due: datetime | None = None
    warn_at: datetime | None = None
    warned: bool = False
    breached: bool = False
    """The deadline passed at the last level: reported once, never fires again."""

    @property
    def running(self) -> bool:
        """True while counting (not paused)."""
        return self.running_since is not None

    def clock(self, calendar: BusinessCalendar, warn_fraction: float) -> SlaClock:
        """The :class:`SlaClock` this record stands for, on ``calendar``."""
        return SlaClock(
            calendar,
            self.budget,
            self.running_since,
            used=self.used,
            elapsed=self.elapsed,
            ceiling=self.ceiling,
            warn_fraction=warn_fraction,
        )

    def with_clock(self, clock: SlaClock) -> ClockRecord:
        """This record updated from ``clock``, with its deadline and warning recomputed."""
        return replace(
            self,
            running_since=clock.running_since,
            used=clock.used,
            elapsed=clock.elapsed,
            due=clock.deadline(),
            warn_at=clock.warning(),
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (seconds for durations, ISO 8601 for instants)."""
        return {
            "kind": self.kind,
            "budget": self.budget.total_seconds(),
            "started_at": _iso(self.started_at),
            "running_since": _iso(self.running_since),
            "used": self.used.total_seconds(),
            "elapsed": self.elapsed.total_seconds(),
            "ceiling": None if self.ceiling is None else self.ceiling.total_seconds(),
            "due": _iso(self.due),
            "warn_at": _iso(self.warn_at),
            "warned": self.warned,
            "breached": self.breached,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClockRecord:
        """The inverse of :meth:`to_json`; raises :class:`CalendarError` on bad data."""
        try:
            kind = data["kind"]
            if kind not in CLOCK_KINDS:
                raise CalendarError(f"unknown SLA clock kind {kind!r}")
            ceiling = data.get("ceiling")
            started = _instant(data["started_at"])
            if started is None:
                raise CalendarError("an SLA clock without a start")
            return cls(
                kind=kind,
                budget=timedelta(seconds=float(data["budget"])),
                started_at=started,
                running_since=_instant(data.get("running_since")),
                used=timedelta(seconds=float(data.get("used", 0))),
                elapsed=timedelta(seconds=float(data.get("elapsed", 0))),
                ceiling=None if ceiling is None else timedelta(seconds=float(ceiling)),
                due=_instant(data.get("due")),
                warn_at=_instant(data.get("warn_at")),
                warned=bool(data.get("warned", False)),
                breached=bool(data.get("breached", False)),
            )
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            # OverflowError: durations or instants outside datetime's range.
            raise CalendarError(f"stored SLA clock is malformed: {exc}") from exc


@dataclass(frozen=True)
class TicketClocks:
    """Every SLA clock of one ticket under one policy, on one team calendar.

    ``calendar`` is the name of the owning team's calendar; methods receive the
    :class:`BusinessCalendar` it names (the caller owns the configuration) and
    count 24x7 when the policy says so.
    """

    policy: str
    calendar: str
    business_hours: bool
    warn_fraction: float
    clocks: tuple[ClockRecord, ...] = ()

    # -- building -------------------------------------------------------------

    @classmethod
    def open(
        cls, policy: SlaPolicy, calendar_name: str, calendar: BusinessCalendar, now: datetime
    ) -> TicketClocks:
        """The clocks of a ticket opened at ``now``: first response and resolution run."""
        empty = cls(policy.name, calendar_name, policy.business_hours, policy.warn_at)
        started = empty.start("first_response", policy, calendar, now)
        return started.start("resolution", policy, calendar, now)

    def record(self, kind: DeadlineKind) -> ClockRecord | None:
        """The clock of ``kind``, or None when it is not there (never started or met)."""
        return next((record for record in self.clocks if record.kind == kind), None)

    def start(
        self,
        kind: DeadlineKind,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
        now: datetime,
        *,
        ceiling: bool = True,
    ) -> TicketClocks:
        """(Re)start ``kind`` at ``now`` with the policy's full budget.

        ``ceiling=False`` drops the resolution ceiling: after an escalation the
        new level gets a full budget even when the original promise is spent.
        """
        now = _utc(now)
        budget: timedelta = getattr(policy, kind)
        limit = policy.resolution_ceiling if kind == "resolution" and ceiling else None
        clock = SlaClock.start(
            self._counting(calendar), budget, now, ceiling=limit, warn_fraction=self.warn_fraction
        )
        record = ClockRecord(kind, budget, now, now, ceiling=limit).with_clock(clock)
        return self._put(record)

    def stop(self, *kinds: DeadlineKind) -> TicketClocks:
        """Remove the clocks of ``kinds`` (their deadline was met or no longer applies)."""
        return replace(self, clocks=tuple(r for r in self.clocks if r.kind not in kinds))

    # -- pausing --------------------------------------------------------------

    def pause(
        self,
        calendar: BusinessCalendar,
        now: datetime,
        kinds: tuple[DeadlineKind, ...] = CLOCK_KINDS,
    ) -> TicketClocks:
        """Pause the running clocks of ``kinds`` at ``now`` (waiting on the customer)."""
        now = _utc(now)
        counting = self._counting(calendar)
        updated = self
        for record in self.clocks:
            if record.kind in kinds and record.running:
                assert record.running_since is not None
                at = max(now, record.running_since)
                paused = record.clock(counting, self.warn_fraction).pause(at)
                updated = updated._put(record.with_clock(paused))
        return updated

    def resume(self, calendar: BusinessCalendar, now: datetime) -> TicketClocks:
        """Resume every paused clock at ``now``."""
        now = _utc(now)
        counting = self._counting(calendar)
        updated = self
        for record in self.clocks:
            if not record.running:
                resumed = record.clock(counting, self.warn_fraction).resume(now)
                updated = updated._put(record.with_clock(resumed))
        return updated

    @property
    def paused(self) -> bool:
        """True when there are clocks and none of them runs."""
        return bool(self.clocks) and not any(record.running for record in self.clocks)

    # -- moving between owners and policies -----------------------------------

    def move_to(
        self,
        calendar_name: str,
        old_calendar: BusinessCalendar,
        new_calendar: BusinessCalendar,
        now: datetime,
    ) -> TicketClocks:
        """Count on another team's calendar from ``now`` on (time used so far is kept)."""
        running = tuple(record.kind for record in self.clocks if record.running)
        paused = self.pause(old_calendar, now)
        moved = replace(paused, calendar=calendar_name)
        counting = moved._counting(new_calendar)
        for record in moved.clocks:
            if record.kind in running:
                resumed = record.clock(counting, self.warn_fraction).resume(_utc(now))
                moved = moved._put(record.with_clock(resumed))
        return moved

    def with_policy(
        self, policy: SlaPolicy, calendar: BusinessCalendar, now: datetime
    ) -> TicketClocks:
        """Apply another policy's budgets, keeping the time already used.

        Used when the severity rises (e.g. to critical): a deadline that the new
        budget has already exceeded falls due at once.
        """
        now = _utc(now)
        running = tuple(record.kind for record in self.clocks if record.running)
        paused = self.pause(calendar, now)
        updated = replace(
            paused,
            policy=policy.name,
            business_hours=policy.business_hours,
            warn_fraction=policy.warn_at,
        )
        counting = updated._counting(calendar)
        for record in updated.clocks:
            budget: timedelta = getattr(policy, record.kind)
            fresh = replace(record, budget=budget)
            clock = fresh.clock(counting, updated.warn_fraction)
            if record.kind in running:
                clock = clock.resume(now)
            updated = updated._put(fresh.with_clock(clock))
        return updated

    def mark(
        self, kind: DeadlineKind, *, warned: bool = False, breached: bool = False
    ) -> TicketClocks:
        """Record that the warning of ``kind`` was sent or its final breach reported."""
        record = self.record(kind)
        if record is None:
            return self
        return self._put(
            replace(record, warned=record.warned or warned, breached=record.breached or breached)
        )

    # -- the ticket's lifecycle -------------------------------------------------

    def answered(self) -> TicketClocks:
        """An agent answered the customer: the response deadlines are met."""
        return self.stop(*RESPONSE_KINDS)

    def customer_wrote(
        self, policy: SlaPolicy, calendar: BusinessCalendar, now: datetime
    ) -> TicketClocks:
        """The customer wrote again: paused clocks resume and a reply is owed.

        The next-response clock starts unless an answer is owed already (the
        first response, or an earlier unanswered follow-up keeps its deadline).
        """
        resumed = self.resume(calendar, now)
        if resumed.record("first_response") or resumed.record("next_response"):
            return resumed
        return resumed.start("next_response", policy, calendar, now)

    def resolved(self, calendar: BusinessCalendar, now: datetime) -> TicketClocks:
        """Resolved: nothing is owed; the resolution clock pauses in case it reopens."""
        return self.stop(*RESPONSE_KINDS).pause(calendar, now)

    def reopened(
        self,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
        now: datetime,
        *,
        reply_owed: bool = True,
    ) -> TicketClocks:
        """Back from resolution: resolution resumes and, when the customer wrote, a reply is owed.

        ``reply_owed=False`` for a reopen by staff: nobody is waiting for an answer yet.
        """
        clocks = self.resume(calendar, now)
        if clocks.record("resolution") is None:
            clocks = clocks.start("resolution", policy, calendar, now, ceiling=False)
        if not reply_owed:
            return clocks
        return clocks.start("next_response", policy, calendar, now)

    def escalated(
        self,
        fired: DeadlineKind | None,
        policy: SlaPolicy,
        calendar: BusinessCalendar,
        now: datetime,
    ) -> TicketClocks:
        """New deadlines for the new level after an escalation.

        The deadline that ``fired`` starts again with its full budget (no
        ceiling: the new owner gets the whole time); for any other trigger the
        response clock that is owed starts again, so the new owner also gets a
        full response budget. ``calendar`` is the new owner's. Any other
        deadline that has passed by ``now`` starts again too: one escalation
        answers all of them (a daemon that was down for days moves a ticket one
        level, not one per overdue clock).
        """
        now = _utc(now)
        kinds: tuple[DeadlineKind, ...]
        if fired is not None:
            kinds = (fired,)
        else:
            kinds = tuple(k for k in RESPONSE_KINDS if self.record(k) is not None)
        overdue = tuple(
            record.kind
            for record in self.clocks
            if record.running and not record.breached and record.due is not None
            and record.due <= now and record.kind not in kinds
        )  # fmt: skip
        kinds = (*kinds, *overdue)
        clocks = self
        for kind in kinds:
            record = clocks.record(kind)
            was_running = record is None or record.running
            clocks = clocks.start(kind, policy, calendar, now, ceiling=False)
            if not was_running:
                clocks = clocks.pause(calendar, now, (kind,))
        return clocks

    # -- what is due ------------------------------------------------------------

    def due_actions(self, now: datetime) -> tuple[DueAction, ...]:
        """What has fallen due by ``now``, earliest first.

        A passed deadline makes its own warning moot (it is not listed).
        """
        now = _utc(now)
        found: list[DueAction] = []
        for record in self.clocks:
            if not record.running or record.breached:
                continue
            if record.due is not None and record.due <= now:
                found.append(DueAction(record.kind, "deadline", record.due))
            elif record.warn_at is not None and not record.warned and record.warn_at <= now:
                found.append(DueAction(record.kind, "warning", record.warn_at))
        return tuple(sorted(found, key=lambda action: (action.at, CLOCK_KINDS.index(action.kind))))

    def next_check(self) -> datetime | None:
        """The next instant something falls due (a warning or a deadline), or None."""
        instants: list[datetime] = []
        for record in self.clocks:
            if not record.running or record.breached:
                continue
            if record.warn_at is not None and not record.warned:
                instants.append(record.warn_at)
            if record.due is not None:
                instants.append(record.due)
        return min(instants, default=None)

    def remaining(
        self, kind: DeadlineKind, calendar: BusinessCalendar, now: datetime
    ) -> timedelta | None:
        """Time left on ``kind`` at ``now``, counted as the policy counts (None: no such clock)."""
        record = self.record(kind)
        if record is None:
            return None
        return record.clock(self._counting(calendar), self.warn_fraction).remaining(_utc(now))

    def due(self, kind: DeadlineKind) -> datetime | None:
        """The deadline of ``kind`` while it runs, else None."""
        record = self.record(kind)
        return record.due if record is not None and record.running else None

    # -- storing ----------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for the ticket's ``sla`` column."""
        return {
            "version": _FORMAT_VERSION,
            "policy": self.policy,
            "calendar": self.calendar,
            "business_hours": self.business_hours,
            "warn_fraction": self.warn_fraction,
            "clocks": [record.to_json() for record in self.clocks],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TicketClocks:
        """The inverse of :meth:`to_json`; raises :class:`CalendarError` on bad data."""
        try:
            return cls(
                policy=str(data["policy"]),
                calendar=str(data["calendar"]),
                business_hours=bool(data["business_hours"]),
                warn_fraction=float(data["warn_fraction"]),
                clocks=tuple(ClockRecord.from_json(item) for item in data.get("clocks", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CalendarError(f"stored SLA state is malformed: {exc}") from exc

    # -- helpers ----------------------------------------------------------------

    def _counting(self, calendar: BusinessCalendar) -> BusinessCalendar:
        return calendar if self.business_hours else calendar.twenty_four_seven()

    def _put(self, record: ClockRecord) -> TicketClocks:
        others = [r for r in self.clocks if r.kind != record.kind]
        ordered = sorted([*others, record], key=lambda r: CLOCK_KINDS.index(r.kind))
        return replace(self, clocks=tuple(ordered))


def _utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CalendarError(f"a timezone-aware datetime is needed, got {value!r}")
    return value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _instant(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(str(value))
    return _utc(parsed)
