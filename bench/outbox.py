"""Benchmark: how fast the outbox sender empties a queue into a loopback SMTP server.

Queues N acknowledgements (default 2,000) in a fresh SQLite database, then
times ``OutboxSender.send_due()`` sending all of them to an aiosmtpd server
on 127.0.0.1, once with 1 connection and once with 10 (connections are kept
open across the batch). The time covers everything the daemon does: claiming
rows, building each MIME message, SMTP, and recording the results.

For scale, the same run measures the **ceiling**: bare aiosmtplib sending one
pre-built message over the same number of connections, with no database and
no message building.

The server runs in its own process (``python -m aiosmtpd``, discarding mail)
so it does not share the sender's GIL; ``--in-process`` uses the test suite's
``SmtpSink`` thread instead. Usage::

    .venv/bin/python bench/outbox.py [-n 2000] [--connections 1 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiosmtplib  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from daemon.demo_servers import SmtpSink, free_port  # noqa: E402
from daemon.outbox import OutboxConfig, enqueue  # noqa: E402
from daemon.settings import SmtpSettings  # noqa: E402
from daemon.smtp_sender import OutboxSender  # noqa: E402
from models import (  # noqa: E402
    OutboxMail,
    Ticket,
    create_database_engine,
    session_factory,
    upgrade_schema,
)

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
CONFIG = OutboxConfig(
    secret=b"bench-secret-bench-secret-bench-secret",
    domain="support.example.com",
    loop_value="complaintd@support.example.com",
    from_address="Example Support <support@example.com>",
    own_addresses=frozenset({"support@example.com"}),
    flood_cap_count=1_000_000,  # every mail goes to a different customer anyway
)
_BODY = (
    "Dear {name},\n\nthank you for your message. We registered your complaint as "
    "{ref} and a member of our team will answer within one business day.\n\n"
    "Please keep the reference in the subject when you reply.\n\n"
    "Kind regards,\nExample Support\n"
)


def _queue(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as session:
        for number in range(count):
            customer = f"customer{number}@example.com"
            ticket = Ticket(
                customer_email=customer, subject=f"Complaint {number}",
                created_at=NOW, updated_at=NOW,
            )  # fmt: skip
            session.add(ticket)
            session.flush()
            ref = f"CMP-{ticket.id:06d}"
            enqueue(
                session, ticket=ticket, kind="acknowledgement",
                to=[(f"Customer Nümber {number}", customer)],
                subject=f"We received your complaint [{ref}]",
                text=_BODY.format(name=f"Customer {number}", ref=ref),
                in_reply_to=f"<bench-{number}@mail.example>", audience="customer",
                automatic=True, config=CONFIG, now=NOW,
            )  # fmt: skip


@contextmanager
def _server(in_process: bool) -> Iterator[int]:
    if in_process:
        with SmtpSink() as sink:
            yield sink.port
        return
    port = free_port()
    command = [
        sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
        "-c", "aiosmtpd.handlers.Sink",
    ]  # fmt: skip
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for_greeting(port, process)
            yield port
        finally:
            process.terminate()
            process.wait(timeout=10)


def _wait_for_greeting(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if sock.recv(1024).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"aiosmtpd did not greet on port {port} within {timeout:g} s")


def _run(count: int, connections: int, port: int, workdir: Path) -> float:
    """Mails per second sending ``count`` queued mails over ``connections`` connections."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = workdir / f"outbox-{connections}.db"
    engine = create_database_engine(f"sqlite:///{database}")
    upgrade_schema(engine)
    sessions = session_factory(engine)
    try:
        _queue(sessions, count)
        smtp = SmtpSettings(host="127.0.0.1", port=port, tls="none", from_address="support@x.test")
        sender = OutboxSender(sessions, smtp, None, lambda: NOW, connections=connections)
        started = time.perf_counter()
        report = asyncio.run(sender.send_due(NOW))
        elapsed = time.perf_counter() - started
        with sessions() as session:
            sent = session.scalar(
                select(func.count()).select_from(OutboxMail).where(OutboxMail.status == "sent")
            )
        if report.sent != count or sent != count:
            raise RuntimeError(f"only {report.sent} of {count} mails were sent: {report}")
    finally:
        engine.dispose()
    return count / elapsed


async def _ceiling(count: int, connections: int, port: int) -> float:
    """Mails per second of bare aiosmtplib sending one pre-built message ``count`` times."""
    data = (
        b"From: support@x.test\r\nTo: customer@x.test\r\nSubject: ceiling\r\n"
        b"Message-ID: <ceiling@x.test>\r\n\r\n" + _BODY.encode() * 2
    )
    clients = [
        aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, local_hostname="x.test")
        for _ in range(connections)
    ]
    for client in clients:
        await client.connect()

    async def send(client: aiosmtplib.SMTP, share: int) -> None:
        for _ in range(share):
            await client.sendmail("support@x.test", ["customer@x.test"], data)

    started = time.perf_counter()
    await asyncio.gather(*(send(client, count // connections) for client in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.quit()
    return (count // connections * connections) / elapsed


def main() -> int:
    """Run the benchmark and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="mails to send (default 2000)")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--in-process", action="store_true", help="SMTP server as a thread")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (default 3)")
    args = parser.parse_args()
    where = "in-process thread" if args.in_process else "separate process"
    print(f"{args.n} mails, aiosmtpd on loopback ({where}), {os.cpu_count()} CPU(s)")
    with _server(args.in_process) as port, tempfile.TemporaryDirectory() as tmp:
        for connections in args.connections:
            rates, ceilings = [], []
            for run in range(args.repeat):
                rates.append(_run(args.n, connections, port, Path(tmp) / f"run{run}"))
                ceilings.append(asyncio.run(_ceiling(args.n, connections, port)))
            best, median = max(rates), statistics.median(rates)
            print(
                f"  {connections:2d} connection(s): outbox best {best:5.0f} mails/s, median"
                f" {median:5.0f}; bare aiosmtplib median {statistics.median(ceilings):5.0f}"
                f" ({args.repeat} runs each, interleaved)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
