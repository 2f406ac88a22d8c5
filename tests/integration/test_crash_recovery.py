"""Crash safety: SIGKILL the daemon mid-burst, again and again; every mail ends as one ticket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from models import Message, Ticket
from tests.support.app_factory import TEST_SECRET
from tests.support.imap_tools import ImapAccount, append_many, folder_uids
from tests.support.mail_factory import complaint

ROOT = Path(__file__).resolve().parents[2]
BURST = 500


def _config(tmp_path: Path, mailbox: ImapAccount) -> Path:
    path = tmp_path / "complaintd.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "crash.db"}"

[[mailboxes]]
name = "support"
host = "{mailbox.host}"
port = {mailbox.port}
tls = "none"
username = "{mailbox.username}"
password_env = "CRASH_IMAP_PASSWORD"
after = "move:Processed"
address = "support@example.com"

[classifier]
train_on_first_run = false

[intake]
fetch_batch_messages = 25
reconnect_initial_delay = 0.2
""",
        encoding="utf-8",
    )
    return path


def _counts(db_path: Path) -> tuple[int, int]:
    if not db_path.exists():
        return 0, 0
    engine = create_engine(f"sqlite:///{db_path}")
    try:
        with engine.connect() as connection:
            tables = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type='table' AND name='tickets'")
            ).all()
            if not tables:
                return 0, 0
            tickets = connection.scalar(select(func.count()).select_from(Ticket)) or 0
            messages = connection.scalar(select(func.count()).select_from(Message)) or 0
            return int(tickets), int(messages)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_sigkill_mid_burst_loses_nothing_and_duplicates_nothing(
    mailbox: ImapAccount, tmp_path: Path
) -> None:
    config = _config(tmp_path, mailbox)
    env = {
        **os.environ,
        "CRASH_IMAP_PASSWORD": mailbox.password,
        "COMPLAINTD_SECRET": TEST_SECRET,
        "PYTHONPATH": str(ROOT),
    }
    append_many(
        mailbox.host, mailbox.port, mailbox.username, mailbox.password,
        [complaint(sender=f"burst{i}@example.com") for i in range(BURST)],
    )  # fmt: skip
    command = [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"]
    db_path = tmp_path / "crash.db"
    kills_mid_burst = 0
    for attempt in range(8):
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        # Wait for real progress, then kill at a point that moves every round.
        before = _counts(db_path)[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _counts(db_path)[0] <= before:
            if process.poll() is not None:
                break
            time.sleep(0.02)
        time.sleep(0.05 * (attempt % 4))
        process.send_signal(signal.SIGKILL)
        _, stderr = process.communicate(timeout=30)
        assert b"Traceback" not in stderr, stderr.decode(errors="replace")[-3000:]
        done = _counts(db_path)[0]
        if 0 < done < BURST:
            kills_mid_burst += 1
        if done >= BURST:
            break
    assert kills_mid_burst >= 3, "the daemon was never killed mid-burst; the test proved nothing"

    finish = subprocess.run(
        [*command, "--once"], env=env, cwd=tmp_path, capture_output=True, timeout=300, check=False
    )
    assert finish.returncode == 0, finish.stderr.decode(errors="replace")[-3000:]
    tickets, messages = _counts(db_path)
    assert tickets == BURST
    assert messages == BURST
    assert folder_uids(mailbox.host, mailbox.port, mailbox.username, mailbox.password) == []
    processed = folder_uids(
        mailbox.host, mailbox.port, mailbox.username, mailbox.password, "Processed"
    )
    assert len(processed) >= BURST
