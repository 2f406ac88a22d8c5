"""Benchmark: the escalation sweep on a million tickets, in SQLite and in PostgreSQL.

For each backend it builds N tickets (default 1,000,000): a tenth open, with
SLA clocks (one ``sla`` state built once with ``TicketClocks.open`` and reused;
``sla_check_at`` spread over the next ten days so the index holds distinct
keys), one inbound message and two events each; the rest closed, with
``sla_check_at`` NULL. Rows go in as plain rows (``executemany`` on SQLite,
``COPY`` on PostgreSQL). Then exactly 1,000 of the open tickets are made due:
their first-response deadline (policy ``critical``, 24x7, 1 h) passed up to
an hour ago. It then measures

1. the sweep's claim query (the statement ``EscalationSweep`` sends, captured
   from the driver): its plan (``EXPLAIN QUERY PLAN`` / ``EXPLAIN (ANALYZE,
   BUFFERS)``) and the time to find the due tickets, one batch (LIMIT
   ``sweep_batch_size``) and all 1,000 at once (LIMIT 1,000) as ORM rows;
2. a full ``EscalationSweep.run()`` escalating all 1,000 (new owner, new
   clocks, events, three outbox mails each), with the time its claim
   statements took inside it;
3. the lag from a deadline to the escalation notice in the outbox with the
   real ``DaemonScheduler`` (periodic sweep every ``--interval`` s plus its
   wake-up at the next known deadline): ``--lag-tickets`` tickets whose
   deadlines fall at spread instants over the next ``--lag-window`` seconds,
   each timed by the notice's ``created_at`` (the sweep's "now") and by when a
   poller on another connection first sees the committed row.

SQLite runs as the daemon runs it (WAL, ``synchronous=FULL``, no ``ANALYZE``);
PostgreSQL is the test suite's private cluster (``fsync=off``), vacuumed and
analysed after loading, as autovacuum would have done long before a real
database held a million tickets. Usage::

    .venv/bin/python bench/escalation.py [--tickets 1000000] [--interval 30]
        [--backend sqlite postgresql] [--lag-tickets 300] [--lag-window 90]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, Table, bindparam, event, func, select, update  # noqa: E402

from classifier import DEFAULT_CATEGORIES  # noqa: E402
from daemon.app import Application  # noqa: E402
from daemon.references import format_ticket_ref  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from daemon.ticket_sla import SlaBook  # noqa: E402
from models import Event, Message, OutboxMail, Ticket  # noqa: E402
from routing.ticket_clocks import TicketClocks  # noqa: E402
from tests.support.postgres import PostgresCluster, postgres_unavailable_reason  # noqa: E402

_SECRET = "bench-secret-0123456789abcdef0123456789"
_CHUNK = 50_000
_SEVERITIES = ("low", "medium", "high", "critical")
_FRONTLINE_AGENT = "anna@example.com"
_BODY = (
    "Hello,\n\nthe kettle I bought last week caught fire on its first use.\n"
    "If I hear nothing today I will talk to my lawyer.\n\nRegards\n"
)

_TICKET_COLUMNS = [column.name for column in Ticket.__table__.columns]
_MESSAGE_COLUMNS = [c.name for c in Message.__table__.columns if c.name != "id"]
_EVENT_COLUMNS = [c.name for c in Event.__table__.columns if c.name != "id"]


# -- building ---------------------------------------------------------------------


@dataclass
class Writer:
    """Bulk-inserts plain rows: ``executemany`` on SQLite, ``COPY`` on PostgreSQL."""

    engine: Engine

    @property
    def postgres(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    def write(self, table: str, columns: list[str], rows: Iterable[Sequence[Any]]) -> int:
        """Insert ``rows`` (Python values, JSON already serialised), chunk by chunk."""
        dialect = self.engine.dialect
        types = {c.name: c.type for c in _table(table).columns}
        # SQLite stores datetimes as text in SQLAlchemy's format; convert with its own
        # bind processors so the sweep's comparisons see exactly what the ORM writes.
        convert: list[Callable[[Any], Any] | None] = [
            types[name].dialect_impl(dialect).bind_processor(dialect)
            if not self.postgres and _is_datetime(types[name])
            else None
            for name in columns
        ]
        written = 0
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            if self.postgres:
                copy_sql = f"COPY {table} ({', '.join(_quote(c) for c in columns)}) FROM STDIN"
                for chunk in _chunks(rows, _CHUNK):
                    with cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined, unused-ignore]
                        for row in chunk:
                            copy.write_row(row)
                    raw.commit()
                    written += len(chunk)
            else:
                marks = ", ".join("?" for _ in columns)
                names = ", ".join(_quote(c) for c in columns)
                # Names come from our own model, never from input.
                sql = f"INSERT INTO {table} ({names}) VALUES ({marks})"  # noqa: S608
                for chunk in _chunks(rows, _CHUNK):
                    converted = [
                        tuple(
                            f(v) if f is not None and v is not None else v
                            for f, v in zip(convert, row, strict=True)
                        )
                        for row in chunk
                    ]
                    cursor.execute("BEGIN")
                    cursor.executemany(sql, converted)
                    cursor.execute("COMMIT")
                    written += len(chunk)
            cursor.close()
        finally:
            raw.close()
        return written


def _table(name: str) -> Any:
    return {"tickets": Ticket, "messages": Message, "events": Event}[name].__table__


def _is_datetime(type_: Any) -> bool:
    return getattr(type_, "python_type", None) is datetime or type_.__class__.__name__ in {
        "UTCDateTime",
        "DateTime",
    }


def _quote(name: str) -> str:
    return f'"{name}"'


def _chunks(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    chunk: list[Sequence[Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Population:
    """The tickets of one database and what the bench needs to know about them."""

    open_ids: list[int]
    due_ids: list[int] = field(default_factory=list)
    next_id: int = 1


def _ticket_row(
    number: int,
    *,
    now: datetime,
    open_: bool,
    sla: str,
    check_at: Any,
    dues: tuple[datetime | None, datetime | None] = (None, None),
) -> tuple[Any, ...]:
    """One ``tickets`` row as plain values, in ``_TICKET_COLUMNS`` order."""
    opened = now - timedelta(days=30) + timedelta(seconds=number % 2_500_000)
    category = DEFAULT_CATEGORIES[number % len(DEFAULT_CATEGORIES)]
    values: dict[str, Any] = {
        "id": number,
        "ref": format_ticket_ref(number),
        "status": "new" if open_ else "closed",
        "customer_email": f"customer{number}@customers.example",
        "customer_name": f"Customer {number}",
        "subject": f"Complaint {number}: my order did not arrive",
        "language": "en",
        "category": category,
        "category_confidence": 0.8,
        "severity": "critical" if open_ else _SEVERITIES[number % 4],
        "severity_confidence": 0.7,
        "signals": "[]",
        "model_version": "bench",
        "tier": 1,
        "team": "frontline",
        "assignee": _FRONTLINE_AGENT,
        "mailbox": "support",
        "routing_rule": "default",
        "tags": "[]",
        "sla_policy": "critical" if open_ else None,
        "first_response_due_at": dues[0],
        "next_response_due_at": None,
        "resolution_due_at": dues[1],
        "sla": sla,
        "sla_check_at": check_at,
        "unanswered_count": 1,
        "first_responded_at": None if open_ else opened + timedelta(hours=2),
        "last_customer_at": opened,
        "last_agent_reply_at": None if open_ else opened + timedelta(hours=2),
        "escalated_at": None,
        "breach_reported_at": None,
        "resolved_at": None if open_ else opened + timedelta(days=2),
        "created_at": opened,
        "updated_at": opened,
    }
    return tuple(values[name] for name in _TICKET_COLUMNS)


def _message_row(ticket_id: int, at: datetime) -> tuple[Any, ...]:
    values: dict[str, Any] = {
        "ticket_id": ticket_id,
        "direction": "in",
        "kind": "customer",
        "message_id": f"<bench-{ticket_id}@customers.example>",
        "dedup_key": f"<bench-{ticket_id}@customers.example>",
        "fingerprint": f"{ticket_id:064x}",
        "in_reply_to": "[]",
        "references": "[]",
        "from_email": f"customer{ticket_id}@customers.example",
        "from_name": f"Customer {ticket_id}",
        "to": '["support@example.com"]',
        "cc": "[]",
        "subject": f"Complaint {ticket_id}: my order did not arrive",
        "text": _BODY,
        "full_text": _BODY,
        "date": at,
        "received_at": at,
        "raw_id": None,
        "mailbox": "support",
        "uidvalidity": 1,
        "uid": ticket_id,
    }
    return tuple(values[name] for name in _MESSAGE_COLUMNS)


def _event_rows(ticket_id: int, at: datetime) -> list[tuple[Any, ...]]:
    routed = {"tier": 1, "team": "frontline", "assignee": _FRONTLINE_AGENT, "rule": "default"}
    rows = []
    for kind, actor, data in (
        ("created", f"customer{ticket_id}@customers.example", {}),
        ("routed", "system", routed),
    ):
        values = {"ticket_id": ticket_id, "at": at, "kind": kind, "actor": actor}
        values["data"] = json.dumps(data)
        rows.append(tuple(values[name] for name in _EVENT_COLUMNS))
    return rows


def _clocks_json(app: Application, opened_at: datetime, *, warned: bool = False) -> TicketClocks:
    routing = app.settings.routing
    policy = routing.sla_policy("critical")
    calendar_name, calendar = SlaBook(routing).team_calendar("frontline")
    clocks = TicketClocks.open(policy, calendar_name, calendar, opened_at)
    return clocks.mark("first_response", warned=True) if warned else clocks


def build(app: Application, total: int, open_count: int, now: datetime) -> Population:
    """``total`` tickets of which ``open_count`` open (every ``total // open_count``-th)."""
    writer = Writer(app.engine)
    # One realistic clock state for every open ticket (critical, opened now); their
    # search key is spread over ten days so the index holds distinct values.
    shared = _clocks_json(app, now)
    sla = json.dumps(shared.to_json())
    dues = (shared.due("first_response"), shared.due("resolution"))
    step = max(1, total // max(1, open_count))
    open_ids = [number for number in range(1, total + 1) if number % step == 0][:open_count]
    is_open = set(open_ids)
    horizon = timedelta(days=10).total_seconds()

    def tickets() -> Iterator[tuple[Any, ...]]:
        for number in range(1, total + 1):
            if number in is_open:
                offset = timedelta(hours=1, seconds=horizon * (number / total))
                yield _ticket_row(
                    number, now=now, open_=True, sla=sla, check_at=now + offset, dues=dues
                )
            else:
                yield _ticket_row(number, now=now, open_=False, sla="{}", check_at=None)

    at = now - timedelta(minutes=5)
    writer.write("tickets", _TICKET_COLUMNS, tickets())
    writer.write("messages", _MESSAGE_COLUMNS, (_message_row(i, at) for i in open_ids))
    writer.write("events", _EVENT_COLUMNS, (row for i in open_ids for row in _event_rows(i, at)))
    if writer.postgres:
        with app.engine.begin() as connection:
            connection.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('tickets', 'id'), max(id)) FROM tickets"
            )
    return Population(open_ids=open_ids, next_id=total + 1)


def make_due(app: Application, population: Population, count: int, now: datetime) -> None:
    """Give ``count`` open tickets a first-response deadline that passed in the last hour."""
    step = max(1, len(population.open_ids) // count)
    chosen = population.open_ids[::step][:count]
    rows = []
    for index, ticket_id in enumerate(chosen):
        opened = now - timedelta(hours=1, seconds=1 + index * 3600 / count)
        clocks = _clocks_json(app, opened, warned=True)
        check_at = clocks.next_check()
        assert check_at is not None and check_at < now
        rows.append(
            {
                "tid": ticket_id,
                "sla": clocks.to_json(),
                "sla_check_at": check_at,
                "first_response_due_at": clocks.due("first_response"),
                "resolution_due_at": clocks.due("resolution"),
            }
        )
    tickets = cast(Table, Ticket.__table__)
    statement = (
        update(tickets)
        .where(tickets.c.id == bindparam("tid"))
        .values(
            **{
                name: bindparam(name, type_=tickets.c[name].type)
                for name in ("sla", "sla_check_at", "first_response_due_at", "resolution_due_at")
            }
        )
    )
    with app.engine.begin() as connection:
        connection.execute(statement, rows)
    population.due_ids = chosen


def add_lag_tickets(
    app: Application, population: Population, deadlines: list[datetime]
) -> dict[int, datetime]:
    """Open tickets whose first-response deadline is each of ``deadlines``; id -> deadline."""
    writer = Writer(app.engine)
    first = population.next_id
    rows, by_id = [], {}
    now = datetime.now(UTC)
    for index, deadline in enumerate(deadlines):
        ticket_id = first + index
        clocks = _clocks_json(app, deadline - timedelta(hours=1), warned=True)
        assert clocks.next_check() == deadline
        values = _ticket_row(ticket_id, now=now, open_=True, sla="", check_at=None)
        row = dict(zip(_TICKET_COLUMNS, values, strict=True))
        row["sla"] = json.dumps(clocks.to_json())
        row["sla_check_at"] = deadline
        row["first_response_due_at"] = clocks.due("first_response")
        row["resolution_due_at"] = clocks.due("resolution")
        row["created_at"] = row["updated_at"] = row["last_customer_at"] = deadline - timedelta(
            hours=1
        )
        rows.append(tuple(row[name] for name in _TICKET_COLUMNS))
        by_id[ticket_id] = deadline
    at = now - timedelta(hours=1)
    writer.write("tickets", _TICKET_COLUMNS, rows)
    writer.write("messages", _MESSAGE_COLUMNS, (_message_row(i, at) for i in by_id))
    writer.write("events", _EVENT_COLUMNS, (row for i in by_id for row in _event_rows(i, at)))
    if writer.postgres:
        with app.engine.begin() as connection:
            connection.exec_driver_sql(
                "SELECT setval(pg_get_serial_sequence('tickets', 'id'), max(id)) FROM tickets"
            )
    population.next_id = first + len(deadlines)
    return by_id


# -- measuring --------------------------------------------------------------------


@dataclass
class Statement:
    """One statement the driver executed, with when it started and how long execute took."""

    sql: str
    parameters: Any
    started: float
    execute: float


@contextmanager
def _recorded(engine: Engine) -> Iterator[list[Statement]]:
    """Every statement sent through ``engine`` meanwhile (from any thread)."""
    statements: list[Statement] = []
    lock = threading.Lock()

    def before(conn: Any, _cursor: Any, sql: str, parameters: Any, *_args: Any) -> None:
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn: Any, _cursor: Any, sql: str, parameters: Any, *_args: Any) -> None:
        started = conn.info["bench_started"].pop()
        with lock:
            statements.append(Statement(sql, parameters, started, time.perf_counter() - started))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)


def _is_claim(sql: str) -> bool:
    text = " ".join(sql.split())
    return text.startswith("SELECT tickets.id,") and "tickets.sla_check_at <=" in text


def _claim_query(app: Application, now: datetime, limit: int) -> Any:
    """The sweep's claim, built as ``EscalationSweep._run_batch`` builds it (checked below)."""
    query = (
        select(Ticket).where(Ticket.sla_check_at <= now).order_by(Ticket.sla_check_at).limit(limit)
    )
    if app.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return query


def time_claim(
    app: Application, now: datetime, limit: int, repeat: int
) -> tuple[list[float], Statement]:
    """Seconds to claim ``limit`` due tickets as ORM rows (rolled back), per run; the SQL."""
    times: list[float] = []
    with _recorded(app.engine) as statements:
        for _ in range(repeat):
            with app.sessions() as session:
                started = time.perf_counter()
                found = session.scalars(_claim_query(app, now, limit)).all()
                times.append(time.perf_counter() - started)
                session.rollback()
            if len(found) != limit:
                raise RuntimeError(f"the claim found {len(found)} due tickets, not {limit}")
    claim = next(s for s in statements if _is_claim(s.sql))
    return times, claim


def explain(app: Application, claim: Statement) -> list[str]:
    """The plan of the claim statement exactly as the driver received it."""
    with app.engine.connect() as connection:
        if app.engine.dialect.name == "postgresql":
            rows = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, BUFFERS) " + claim.sql, claim.parameters
            ).all()
            lines = [str(row[0]) for row in rows]
        else:
            rows = connection.exec_driver_sql(
                "EXPLAIN QUERY PLAN " + claim.sql, tuple(claim.parameters)
            ).all()
            depth: dict[int, int] = {0: -1}
            lines = []
            for node, parent, _unused, detail in rows:
                depth[node] = depth.get(parent, -1) + 1
                lines.append("  " * depth[node] + str(detail))
        connection.rollback()
    return lines


@dataclass
class SweepResult:
    """One full sweep over the due tickets."""

    seconds: float
    escalations: int
    notices: int
    errors: int
    claim_seconds: float
    claims: int
    same_sql: bool
    top: list[tuple[str, int, float]]


def full_sweep(app: Application, now: datetime, claim: Statement) -> SweepResult:
    """``EscalationSweep.run(now)`` over every due ticket, timed, with its statements."""
    assert app.sweep is not None
    with _recorded(app.engine) as statements:
        started = time.perf_counter()
        report = app.sweep.run(now)
        seconds = time.perf_counter() - started
    end = started + seconds
    claims = [i for i, s in enumerate(statements) if _is_claim(s.sql)]
    # A claim's time runs until the next statement starts: executing it, fetching
    # its rows and building the ORM objects (SQLite steps rows lazily at fetch).
    claim_seconds = sum(
        (statements[i + 1].started if i + 1 < len(statements) else end) - statements[i].started
        for i in claims
    )
    by_kind: dict[str, list[float]] = {}
    for statement in statements:
        key = " ".join(statement.sql.split())[:90]
        by_kind.setdefault(key, []).append(statement.execute)
    top = sorted(
        ((key, len(times), sum(times)) for key, times in by_kind.items()),
        key=lambda item: -item[2],
    )[:6]
    with app.sessions() as session:
        notices = session.scalar(
            select(func.count())
            .select_from(OutboxMail)
            .where(OutboxMail.kind == "escalation_notice")
        )
    return SweepResult(
        seconds=seconds,
        escalations=report.escalations,
        notices=int(notices or 0),
        errors=report.errors,
        claim_seconds=claim_seconds,
        claims=len(claims),
        same_sql=all(statements[i].sql == claim.sql for i in claims) and bool(claims),
        top=top,
    )


@dataclass
class LagResult:
    """Deadline-to-outbox lag of the tickets that fell due while the scheduler ran."""

    tickets: int
    escalated: int
    by_created_at: list[float]
    by_visible: list[float]


def measure_lag(
    app: Application,
    population: Population,
    url: str,
    count: int,
    window: float,
    lead: float,
) -> LagResult:
    """Start the real scheduler and time each deadline to its escalation notice."""
    rng = random.Random(0)
    base = datetime.now(UTC) + timedelta(seconds=lead)
    deadlines = sorted(
        base + timedelta(seconds=window * (index + rng.random()) / count) for index in range(count)
    )
    by_id = add_lag_tickets(app, population, deadlines)
    seen: dict[int, float] = {}  # ticket id -> wall clock (epoch seconds) first seen
    stop = threading.Event()
    poller = threading.Thread(target=_poll, args=(url, set(by_id), seen, stop), daemon=True)
    poller.start()
    scheduler = app.scheduler()
    assert scheduler is not None
    scheduler.start()
    give_up = deadlines[-1] + timedelta(seconds=app.settings.scheduler.sweep_interval_seconds + 30)
    try:
        while len(seen) < count and datetime.now(UTC) < give_up:
            time.sleep(0.2)
    finally:
        scheduler.shutdown()
        stop.set()
        poller.join()
    with app.sessions() as session:
        created = dict(
            session.execute(
                select(OutboxMail.ticket_id, OutboxMail.created_at).where(
                    OutboxMail.kind == "escalation_notice", OutboxMail.ticket_id.in_(list(by_id))
                )
            ).all()
        )
    return LagResult(
        tickets=count,
        escalated=len(created),
        by_created_at=sorted(
            (created[i] - by_id[i]).total_seconds() for i in by_id if i in created
        ),
        by_visible=sorted(seen[i] - by_id[i].timestamp() for i in by_id if i in seen),
    )


def _poll(url: str, ids: set[int], seen: dict[int, float], stop: threading.Event) -> None:
    """Note when each escalation notice of ``ids`` is first visible to another connection."""
    from sqlalchemy import create_engine, text

    # A plain engine: the daemon's SQLite engine begins every transaction IMMEDIATE,
    # which would make this reader queue for the write lock.
    engine = create_engine(url)
    query = text(
        "SELECT id, ticket_id FROM outbox WHERE kind = 'escalation_notice' AND id > :last"
        " ORDER BY id"
    )
    last = 0
    try:
        with engine.connect() as connection:
            while not stop.is_set():
                rows = connection.execute(query, {"last": last}).all()
                connection.rollback()  # a fresh snapshot next time
                now = time.time()
                for row_id, ticket_id in rows:
                    last = max(last, row_id)
                    if ticket_id in ids:
                        seen.setdefault(ticket_id, now)
                stop.wait(0.02)
    finally:
        engine.dispose()


# -- running ----------------------------------------------------------------------


@dataclass
class BackendResult:
    """Everything measured on one backend."""

    name: str
    tickets: int
    open: int
    due: int
    build_seconds: float
    batch_size: int
    claim_batch: list[float]
    claim_all: list[float]
    plan: list[str]
    sweep: SweepResult
    lag: LagResult | None


def _settings(url: str, interval: float, base_dir: Path) -> Settings:
    os.environ.setdefault("COMPLAINTD_SECRET", _SECRET)
    return Settings.model_validate(
        {
            "base_dir": base_dir,
            "database": {"url": url},
            "classifier": {"train_on_first_run": False},
            "scheduler": {"sweep_interval_seconds": interval},
        }
    )


def run_backend(name: str, url: str, args: argparse.Namespace, workdir: Path) -> BackendResult:
    """Build, claim, sweep and (unless ``--no-lag``) measure the lag on one database."""
    app = Application.build(_settings(url, args.interval, workdir), load_model=False)
    try:
        assert app.sweep is not None
        open_count = args.open if args.open is not None else args.tickets // 10
        now = datetime.now(UTC)
        started = time.perf_counter()
        population = build(app, args.tickets, open_count, now)
        if name == "postgresql":
            with app.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        build_seconds = time.perf_counter() - started
        _say(
            f"{name}: built {args.tickets:,} tickets ({open_count:,} open) in {build_seconds:.0f} s"
        )
        make_due(app, population, args.due, now)
        sweep_now = datetime.now(UTC)
        with app.sessions() as session:
            due = (
                session.scalar(
                    select(func.count()).select_from(Ticket).where(Ticket.sla_check_at <= sweep_now)
                )
                or 0
            )
        if due != args.due:
            raise RuntimeError(f"{due} tickets are due, not {args.due}")
        batch = app.sweep.batch_size
        claim_batch, claim = time_claim(app, sweep_now, min(batch, args.due), args.repeat)
        claim_all, _ = time_claim(app, sweep_now, args.due, args.repeat)
        plan = explain(app, claim)
        sweep = full_sweep(app, sweep_now, claim)
        _say(f"{name}: sweep of {args.due} due tickets took {sweep.seconds:.2f} s")
        lag = None
        if not args.no_lag:
            _say(f"{name}: measuring the lag over {args.lag_window:g} s with the scheduler")
            lag = measure_lag(app, population, url, args.lag_tickets, args.lag_window, args.lead)
        return BackendResult(
            name, args.tickets, open_count, int(due), build_seconds, batch,
            claim_batch, claim_all, plan, sweep, lag,
        )  # fmt: skip
    finally:
        app.close()


@contextmanager
def _database(name: str, workdir: Path) -> Iterator[str]:
    if name == "sqlite":
        yield f"sqlite:///{workdir / 'escalation.db'}"
        return
    reason = postgres_unavailable_reason()
    if reason is not None:
        raise SystemExit(f"PostgreSQL: {reason}")
    with PostgresCluster("escalation_bench") as cluster:
        yield cluster.url


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted ``values``."""
    return values[max(0, math.ceil(fraction * len(values)) - 1)]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.1f} s"


def _say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def report(results: list[BackendResult], args: argparse.Namespace) -> None:
    """Print the figures, the plans and whether each target is met."""
    print()
    print(
        f"{args.tickets:,} tickets, {args.due:,} due; sweep interval {args.interval:g} s; "
        f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        "| backend | build | claim one batch (median / max) | claim all due (first / median)"
        " | full sweep | of which claims | escalated | lag median | lag p99 | lag max |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        s = r.sweep
        cells = ["-", "-", "-"]
        if r.lag is not None and r.lag.by_created_at:
            lag = r.lag.by_created_at
            cells = [_ms(statistics.median(lag)), _ms(_percentile(lag, 0.99)), _ms(lag[-1])]
        row = [
            r.name,
            f"{r.build_seconds:.0f} s",
            f"{_ms(statistics.median(r.claim_batch))} / {_ms(max(r.claim_batch))}"
            f" (LIMIT {r.batch_size})",
            f"{_ms(r.claim_all[0])} / {_ms(statistics.median(r.claim_all))} (LIMIT {r.due})",
            _ms(s.seconds),
            f"{_ms(s.claim_seconds)} ({s.claims} claims)",
            f"{s.escalations} ({s.notices} notices, {s.errors} errors)",
            *cells,
        ]
        print("| " + " | ".join(row) + " |")
    for r in results:
        print(
            f"\n{r.name}: plan of the claim statement"
            f" (the sweep sent the same SQL: {r.sweep.same_sql})"
        )
        print("\n".join("    " + line for line in r.plan))
        print(f"{r.name}: slowest statements in the sweep (driver execute time, count):")
        for key, count, total in r.sweep.top:
            print(f"    {_ms(total):>10}  {count:6d}x  {key}")
        if r.lag is not None:
            lag_result = r.lag
            print(
                f"{r.name}: lag over {lag_result.tickets} deadlines,"
                f" {lag_result.escalated} escalated while the scheduler ran"
            )
            for label, values in (
                ("created_at", lag_result.by_created_at),
                ("visible", lag_result.by_visible),
            ):
                if values:
                    print(
                        f"    {label:>10}: median {_ms(statistics.median(values))}, p99"
                        f" {_ms(_percentile(values, 0.99))}, max {_ms(values[-1])}"
                        f" ({len(values)} tickets, {sum(v > 1 for v in values)} over 1 s)"
                    )
        found = statistics.median(r.claim_all)
        print(
            f"{r.name}: target: find {r.due} due tickets < 1 s: {'met' if found < 1 else 'NOT met'}"
        )
        if r.lag is not None and r.lag.by_created_at:
            p99 = _percentile(r.lag.by_created_at, 0.99)
            ok = p99 <= args.interval + 1 and r.lag.escalated == r.lag.tickets
            print(f"{r.name}: target: lag p99 <= interval + 1 s: {'met' if ok else 'NOT met'}")


def main() -> int:
    """Run the benchmark on each backend and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1_000_000, help="default 1,000,000")
    parser.add_argument("--open", type=int, default=None, help="open tickets (default 10%%)")
    parser.add_argument("--due", type=int, default=1000, help="tickets made due (default 1000)")
    parser.add_argument("--interval", type=float, default=30.0, help="sweep interval, s")
    parser.add_argument("--lag-tickets", type=int, default=300, help="default 300")
    parser.add_argument("--lag-window", type=float, default=90.0, help="seconds (default 90)")
    parser.add_argument("--lead", type=float, default=10.0, help="seconds before the first")
    parser.add_argument("--no-lag", action="store_true", help="skip the scheduler lag run")
    parser.add_argument("--repeat", type=int, default=5, help="claim timings (default 5)")
    parser.add_argument(
        "--backend", nargs="+", choices=["sqlite", "postgresql"], default=["sqlite", "postgresql"]
    )
    args = parser.parse_args()
    results = []
    for name in args.backend:
        with tempfile.TemporaryDirectory(prefix="complaintd-bench-") as tmp:
            workdir = Path(tmp)
            with _database(name, workdir) as url:
                results.append(run_backend(name, url, args, workdir))
    report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
