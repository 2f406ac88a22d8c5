"""Benchmark: a burst of complaints from IMAP APPEND to the acknowledgement delivered by SMTP.

Starts a private Dovecot (pymap when Dovecot is missing) and an aiosmtpd
sink on loopback, runs the daemon (IDLE, SQLite, the default model and
routing), appends N complaints as fast as one IMAP connection allows, and
reports the median and 99th percentile of the time from each APPEND to the
arrival of its acknowledgement at the SMTP sink. Usage::

    .venv/bin/python bench/end_to_end.py [-n 1000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.app import Application  # noqa: E402
from daemon.demo_servers import PymapServer, SmtpSink  # noqa: E402
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


def main() -> int:
    """Run the benchmark and print the latency figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="complaints in the burst")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SmtpSink() as sink:
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
                "smtp": {"host": sink.host, "port": sink.port, "tls": "none",
                         "from_address": "Support <support@example.com>"},
                "outbox": {"flood_cap_count": 1000},
            },
            base_dir=Path(tmp),
        )  # fmt: skip
        app = Application.build(settings, progress=False)
        stop, watching = threading.Event(), threading.Event()
        arrivals: dict[str, float] = {}
        daemon = threading.Thread(target=app.run, args=(stop,))
        watcher = threading.Thread(target=_watch, args=(sink, arrivals, watching))
        daemon.start()
        watcher.start()
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
        watching.set()
        daemon.join(timeout=60)
        watcher.join()
        app.close()
        (server or imap).__exit__(None, None, None)
    latencies = sorted(arrivals[mid] - appended[mid] for mid in arrivals if mid in appended)
    if not latencies:
        print("no acknowledgement arrived")
        return 1
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"server: {kind}; {args.n} complaints appended in {append_seconds:.1f} s")
    print(f"acknowledged: {len(latencies)} of {args.n}")
    print(f"APPEND -> acknowledgement delivered: median {statistics.median(latencies):.2f} s, "
          f"p99 {p99:.2f} s, max {latencies[-1]:.2f} s")  # fmt: skip
    return 0 if len(latencies) == args.n else 1


if __name__ == "__main__":
    sys.exit(main())
