"""Benchmark: a burst of complaints from IMAP APPEND to the acknowledgement delivered by SMTP.

Starts a private Dovecot (pymap when Dovecot is missing) and an aiosmtpd
sink on loopback, runs the daemon (IDLE, SQLite, the default model and
routing), appends N complaints as fast as one IMAP connection allows, and
reports the median and 99th percentile of the time from each APPEND to the
arrival of its acknowledgement at the SMTP sink.

The sink runs in its own process, like any real SMTP relay, and stamps each
acknowledgement (``time.monotonic()``, one clock for every process on Linux)
as its DATA arrives: an in-process sink, and parsing every received message
to find the acknowledgements, took about 2 ms of this process's GIL per
complaint, time the daemon itself never spends in production.
``--in-process`` measures the old way (the test suite's ``SmtpSink`` thread
and a watcher thread that parses each received message). Usage::

    .venv/bin/python bench/end_to_end.py [-n 1000] [--in-process]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.app import Application  # noqa: E402
from daemon.demo_servers import PymapServer, SmtpSink, free_port  # noqa: E402
from daemon.settings import settings_from_document  # noqa: E402
from tests.support.dovecot import DovecotServer, dovecot_available  # noqa: E402
from tests.support.imap_tools import connect  # noqa: E402

_BODIES = [
    "I was charged twice for my last invoice and nobody answers the phone.",
    "Meine Bestellung ist seit zwei Wochen unterwegs und niemand weiß, wo sie ist.",
    "A rendelésem még mindig nem érkezett meg, pedig már kifizettem.",
    "The app crashes every time I try to pay. Please fix it.",
]


def _complaint(number: int) -> bytes:
    message = EmailMessage()
    message["From"] = f"Customer {number} <c{number}@customers.example>"
    message["To"] = "support@example.com"
    message["Subject"] = f"Complaint {number}"
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = f"<e2e-{number}@customers.example>"
    message.set_content(_BODIES[number % len(_BODIES)] + f"\n\nOrder {100000 + number}\n")
    return bytes(message)


def _watch(sink: SmtpSink, arrivals: dict[str, float], stop: threading.Event) -> None:
    """Stamp each acknowledgement with the time it was first seen at the sink."""
    seen = 0
    while not stop.is_set():
        messages = list(sink.messages)
        now = time.monotonic()
        for item in messages[seen:]:
            message = item.message
            if message["Auto-Submitted"] == "auto-replied" and message["In-Reply-To"]:
                arrivals.setdefault(str(message["In-Reply-To"]), now)
        seen = len(messages)
        time.sleep(0.005)


_HEADER = re.compile(rb"^(In-Reply-To|Auto-Submitted):[ \t]*(.*?)\r?$", re.I | re.M)


def _acknowledged(data: bytes) -> str | None:
    """The In-Reply-To of an acknowledgement (our ``Auto-Submitted: auto-replied`` mail)."""
    end = data.find(b"\r\n\r\n")
    headers: dict[bytes, bytes] = {
        name.lower(): value.strip() for name, value in _HEADER.findall(data[: max(end, 0)])
    }
    parent = headers.get(b"in-reply-to")
    if headers.get(b"auto-submitted") == b"auto-replied" and parent:
        return parent.decode("ascii", "replace")
    return None


def _sink_process(port: int) -> None:
    """``--sink PORT``: accept and discard mail, print ``<monotonic> <In-Reply-To>`` per ack."""
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            stamp = time.monotonic()
            mid = _acknowledged(bytes(getattr(envelope, "original_content", b"") or b""))
            if mid is not None:
                sys.stdout.write(f"{stamp:.6f} {mid}\n")
                sys.stdout.flush()
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port, ready_timeout=15.0)
    controller.start()
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # until the parent closes our stdin
    controller.stop()


@contextmanager
def _sink(arrivals: dict[str, float]) -> Iterator[tuple[str, int]]:
    """An SMTP sink in its own process; ``arrivals`` fills in as acknowledgements arrive."""
    port = free_port()
    command = [sys.executable, __file__, "--sink", str(port)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdin is not None
    if process.stdout.readline().strip() != "ready":
        process.kill()
        raise RuntimeError("the SMTP sink did not start")

    def read(stream: Iterator[str]) -> None:
        for line in stream:
            stamp, _, mid = line.strip().partition(" ")
            arrivals.setdefault(mid, float(stamp))

    reader = threading.Thread(target=read, args=(process.stdout,))
    reader.start()
    try:
        yield "127.0.0.1", port
    finally:
        process.stdin.close()
        process.wait(timeout=30)
        reader.join()


@contextmanager
def _in_process_sink(arrivals: dict[str, float]) -> Iterator[tuple[str, int]]:
    """The old way: the test suite's sink thread and a watcher thread in this process."""
    with SmtpSink() as sink:
        watching = threading.Event()
        watcher = threading.Thread(target=_watch, args=(sink, arrivals, watching))
        watcher.start()
        try:
            yield sink.host, sink.port
        finally:
            watching.set()
            watcher.join()


def main() -> int:
    """Run the benchmark and print the latency figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="complaints in the burst")
    parser.add_argument("--in-process", action="store_true", help="sink thread in this process")
    parser.add_argument("--sink", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink is not None:
        _sink_process(args.sink)
        return 0
    arrivals: dict[str, float] = {}
    sink = _in_process_sink(arrivals) if args.in_process else _sink(arrivals)
    with tempfile.TemporaryDirectory() as tmp, sink as (sink_host, sink_port):
        server = DovecotServer(users={"support": "bench"}) if dovecot_available() else None
        imap = server.__enter__() if server else PymapServer("support", "bench").__enter__()
        kind = "dovecot" if server else "pymap"
        os.environ["E2E_IMAP_PASSWORD"] = "bench"
        os.environ.setdefault("COMPLAINTD_SECRET", "bench-secret-bench-secret-bench-secret")
        settings = settings_from_document(
            {
                "database": {"url": f"sqlite:///{Path(tmp) / 'e2e.db'}"},
                "classifier": {"model_dir": str(Path(tmp) / "models")},
                "mailboxes": [{
                    "name": "support", "host": imap.host, "port": imap.port, "tls": "none",
                    "username": "support", "password_env": "E2E_IMAP_PASSWORD",
                    "address": "support@example.com",
                }],
                "smtp": {"host": sink_host, "port": sink_port, "tls": "none",
                         "from_address": "Support <support@example.com>"},
                "outbox": {"flood_cap_count": 1000},
            },
            base_dir=Path(tmp),
        )  # fmt: skip
        app = Application.build(settings, progress=False)
        stop = threading.Event()
        daemon = threading.Thread(target=app.run, args=(stop,))
        daemon.start()
        time.sleep(1.0)  # the worker reaches IDLE
        appended: dict[str, float] = {}
        mails = [_complaint(n) for n in range(args.n)]
        started = time.monotonic()
        with connect(imap.host, imap.port, "support", "bench", timeout=120) as client:
            for number, raw in enumerate(mails):
                client.append("INBOX", raw)
                appended[f"<e2e-{number}@customers.example>"] = time.monotonic()
        append_seconds = time.monotonic() - started
        deadline = time.monotonic() + 300
        while len(arrivals) < args.n and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        daemon.join(timeout=60)
        app.close()
        (server or imap).__exit__(None, None, None)
    latencies = sorted(arrivals[mid] - appended[mid] for mid in arrivals if mid in appended)
    if not latencies:
        print("no acknowledgement arrived")
        return 1
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    where = "in this process" if args.in_process else "own process"
    print(
        f"server: {kind}; SMTP sink: {where}; "
        f"{args.n} complaints appended in {append_seconds:.1f} s"
    )
    print(f"acknowledged: {len(latencies)} of {args.n}")
    print(f"APPEND -> acknowledgement delivered: median {statistics.median(latencies):.2f} s, "
          f"p99 {p99:.2f} s, max {latencies[-1]:.2f} s")  # fmt: skip
    return 0 if len(latencies) == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
