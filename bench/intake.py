"""Benchmark: raw IMAP fetch+parse rate versus complaintd's ingest rate, in one run.

Appends N realistic complaint mails to a private Dovecot (pymap when Dovecot
is missing), then measures

1. the raw rate: imapclient fetching every mail (BODY.PEEK[]) and the
   standard library parsing it with ``policy.default`` and reading its text;
2. the ingest rate: ``Application.run_once()`` storing the same mails as
   tickets in SQLite (a fresh copy of the mailbox, so both read the same mail);

and prints both rates and their ratio. Usage::

    .venv/bin/python bench/intake.py [-n 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from daemon.app import Application  # noqa: E402
from daemon.demo_servers import PymapServer  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from tests.support.dovecot import DovecotServer, dovecot_available  # noqa: E402
from tests.support.imap_tools import connect  # noqa: E402

_OPENINGS = [
    "Hello,", "Dear support team,", "Hi there,", "Sehr geehrte Damen und Herren,", "Hallo,",
    "Tisztelt Ügyfélszolgálat!", "Jó napot!", "To whom it may concern,",
]  # fmt: skip
_PROBLEMS = [
    "I was charged twice for invoice {n}. Please refund the second payment.",
    "My parcel {n} has not arrived after two weeks and tracking shows nothing.",
    "Die Lieferung {n} kam beschädigt an, der Karton war völlig zerdrückt.",
    "Ich kann mich seit gestern nicht mehr in mein Konto einloggen (Kundennummer {n}).",
    "A {n} számú rendelésem még mindig nem érkezett meg, pedig már kifizettem.",
    "Az alkalmazás minden indításkor összeomlik, a hibakód {n}.",
    "The agent I spoke to about case {n} was rude and hung up on me.",
    "The heater I bought (serial {n}) gets dangerously hot after ten minutes.",
]  # fmt: skip


def _mails(count: int, seed: int = 0) -> list[bytes]:
    rng = random.Random(seed)
    demo = resources.files("daemon").joinpath("demo_mail")
    samples = [demo.joinpath(name).read_bytes() for name in sorted(
        item.name for item in demo.iterdir() if item.name.endswith(".eml")
    )]  # fmt: skip
    start = datetime(2026, 11, 1, tzinfo=UTC)
    mails = []
    for number in range(count):
        if number % 10 == 0:
            # Every tenth mail is one of the demo's real-looking mails, given a new identity.
            sample = samples[number // 10 % len(samples)]
            mails.append(sample.replace(b"Message-ID: <demo-", f"Message-ID: <b{number}-".encode()))
            continue
        message = EmailMessage()
        message["From"] = f"Customer {number} <customer{number}@example.com>"
        message["To"] = "support@example.com"
        message["Subject"] = f"Complaint {number}: " + rng.choice(["order", "invoice", "account"])
        message["Date"] = format_datetime(start + timedelta(seconds=number * 37))
        message["Message-ID"] = f"<bench-{number}@mail.example>"
        body = "\n\n".join(
            [rng.choice(_OPENINGS), rng.choice(_PROBLEMS).format(n=100000 + number),
             "Thank you.\n\n-- \nA customer\n+44 20 7946 0000"]
        )  # fmt: skip
        message.set_content(body)
        mails.append(bytes(message))
    return mails


@contextmanager
def _server() -> Iterator[tuple[str, str, int, str, str]]:
    if dovecot_available():
        with DovecotServer(users={"support": "bench"}) as dovecot:
            yield "dovecot", dovecot.host, dovecot.port, "support", "bench"
    else:
        with PymapServer("support", "bench") as pymap:
            yield "pymap", pymap.host, pymap.port, "support", "bench"


def _append(
    host: str, port: int, user: str, password: str, folder: str, mails: list[bytes]
) -> None:
    with connect(host, port, user, password, timeout=120) as client:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        for raw in mails:
            client.append(folder, raw)


def _raw_fetch_and_parse(host: str, port: int, user: str, password: str, folder: str) -> float:
    """Seconds to fetch every mail in ``folder`` and parse it with the standard library."""
    started = time.perf_counter()
    with connect(host, port, user, password, timeout=120) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), 200):
            fetched = client.fetch(uids[start : start + 200], ["BODY.PEEK[]"])
            for data in fetched.values():
                message = message_from_bytes(data[b"BODY[]"], policy=policy.default)
                body = message.get_body(preferencelist=("plain", "html"))
                if body is not None:
                    body.get_content()
    return time.perf_counter() - started


def _ingest(host: str, port: int, user: str, password: str, folder: str, workdir: Path) -> float:
    """Seconds for ``run --once`` (in process) to store every mail in ``folder``."""
    os.environ["BENCH_IMAP_PASSWORD"] = password
    os.environ.setdefault("COMPLAINTD_SECRET", "bench-secret-bench-secret-bench-secret")
    settings = Settings.model_validate({
        "base_dir": workdir,
        "database": {"url": f"sqlite:///{workdir / 'bench.db'}"},
        "mailboxes": [{
            "name": "bench", "host": host, "port": port, "tls": "none", "username": user,
            "password_env": "BENCH_IMAP_PASSWORD", "folder": folder, "after": "flag",
            "address": "support@example.com",
        }],
    })  # fmt: skip
    app = Application.build(settings)  # the schema migration is not part of the timing
    try:
        started = time.perf_counter()
        report = app.run_once()["bench"]
        elapsed = time.perf_counter() - started
    finally:
        app.close()
    print(f"  stored {report.stored} mails, flagged {report.acknowledged}")
    return elapsed


def main() -> int:
    """Run the benchmark and print the rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="mails to append (default 5000)")
    args = parser.parse_args()
    mails = _mails(args.n)
    with _server() as (kind, host, port, user, password), tempfile.TemporaryDirectory() as tmp:
        print(f"server: {kind} on {host}:{port}; appending {len(mails)} mails...")
        _append(host, port, user, password, "Bench", mails)
        raw_seconds = _raw_fetch_and_parse(host, port, user, password, "Bench")
        raw_rate = len(mails) / raw_seconds
        print(f"raw fetch+parse:   {raw_rate:8.0f} mails/s ({raw_seconds:.2f} s)")
        ingest_seconds = _ingest(host, port, user, password, "Bench", Path(tmp))
        ingest_rate = len(mails) / ingest_seconds
        print(f"complaintd ingest: {ingest_rate:8.0f} mails/s ({ingest_seconds:.2f} s)")
        print(f"ratio ingest/raw:  {ingest_rate / raw_rate:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
