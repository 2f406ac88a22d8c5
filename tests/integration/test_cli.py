"""The command line as admins and tools use it: exit codes, messages and JSON shapes."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.cli import main
from tests.support.app_factory import TEST_SECRET
from tests.support.imap_tools import ImapAccount, append_many, folder_uids
from tests.support.mail_factory import complaint

ROOT = Path(__file__).resolve().parents[2]
DEMO_MAIL = ROOT / "daemon" / "demo_mail"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures logging onto pytest's captured stderr; undo it after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _config(tmp_path: Path, mailbox: ImapAccount | None = None) -> Path:
    text = f'[database]\nurl = "sqlite:///{tmp_path / "cli.db"}"\n'
    text += "[classifier]\ntrain_on_first_run = false\n"
    if mailbox is not None:
        text += f"""
[[mailboxes]]
name = "support"
host = "{mailbox.host}"
port = {mailbox.port}
tls = "none"
username = "{mailbox.username}"
password_env = "CLI_IMAP_PASSWORD"
address = "support@example.com"
"""
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_init_writes_a_config_that_check_config_understands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "complaintd.toml"
    assert main(["init", "--path", str(target)]) == 0
    assert "[[mailboxes]]" in target.read_text(encoding="utf-8")
    assert main(["init", "--path", str(target)]) == 1  # never overwrites silently
    monkeypatch.delenv("COMPLAINTD_IMAP_PASSWORD", raising=False)
    monkeypatch.delenv("COMPLAINTD_SMTP_PASSWORD", raising=False)
    monkeypatch.delenv("COMPLAINTD_SECRET", raising=False)
    capsys.readouterr()
    assert main(["--config", str(target), "check-config"]) == 1
    out = capsys.readouterr().out
    assert "mailboxes[0].password: environment variable COMPLAINTD_IMAP_PASSWORD" in out
    assert "smtp.password: environment variable COMPLAINTD_SMTP_PASSWORD" in out
    monkeypatch.setenv("COMPLAINTD_IMAP_PASSWORD", "x")
    monkeypatch.setenv("COMPLAINTD_SMTP_PASSWORD", "y")
    monkeypatch.setenv("COMPLAINTD_SECRET", "z" * 32)
    assert main(["--config", str(target), "check-config"]) == 0


def test_check_config_reports_invalid_keys_and_exits_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[database]\nurl = 5\n[intake]\nmax_message_bytes = -1\n", encoding="utf-8")
    monkeypatch.setenv("COMPLAINTD_CONFIG", str(path))
    assert main(["check-config"]) != 0
    err = capsys.readouterr().err
    assert "database.url: " in err
    assert "intake.max_message_bytes: " in err


def test_parse_json_has_the_documented_shape(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["parse", str(DEMO_MAIL / "10-hu-minoseg.eml"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "message_id", "from_email", "from_name", "to", "cc", "subject", "date", "text",
        "full_text", "language", "attachments", "auto_submitted", "is_bounce",
    }  # fmt: skip
    assert result["from_email"] == "szabo.gabor@example.hu"
    assert result["subject"] == "Két hét után szétesett a porszívó"
    assert result["attachments"][0]["filename"] == "törött-cső.png"
    assert len(result["attachments"][0]["sha256"]) == 64
    assert "Üdv" not in result["text"]  # the signature is not part of the new text
    assert result["is_bounce"] is False


def test_run_once_then_list_show_and_quarantine(
    mailbox: ImapAccount,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _config(tmp_path, mailbox)
    monkeypatch.setenv("CLI_IMAP_PASSWORD", mailbox.password)
    monkeypatch.setenv("COMPLAINTD_SECRET", TEST_SECRET)
    bounce_without_ticket = (
        b"From: MAILER-DAEMON@mx.example.com\r\nTo: support@example.com\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n"
        b"Message-ID: <b1@mx.example.com>\r\n\r\nDelivery failed.\r\n"
    )
    append_many(
        mailbox.host, mailbox.port, mailbox.username, mailbox.password,
        [complaint(subject="Broken kettle"), bounce_without_ticket],
    )  # fmt: skip
    assert main(["--config", str(config), "run", "--once"]) == 0
    assert "stored 2" in capsys.readouterr().out

    assert main(["--config", str(config), "tickets", "list", "--json"]) == 0
    tickets = json.loads(capsys.readouterr().out)
    assert [t["subject"] for t in tickets] == ["Broken kettle"]
    ref = tickets[0]["ref"]

    assert main(["--config", str(config), "tickets", "list"]) == 0
    assert ref in capsys.readouterr().out

    assert main(["--config", str(config), "tickets", "show", ref, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["ref"] == ref
    assert shown["messages"][0]["subject"] == "Broken kettle"
    assert shown["events"][0]["kind"] == "created"
    assert main(["--config", str(config), "tickets", "show", "CMP-999999"]) == 1

    assert main(["--config", str(config), "quarantine", "list", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    assert len(entries) == 1 and entries[0]["kind"] == "rejected"
    assert main(["--config", str(config), "quarantine", "retry", str(entries[0]["id"])]) == 1
    assert "rejected" in capsys.readouterr().out


def test_run_without_mailboxes_or_secret_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["--config", str(_config(tmp_path)), "run", "--once"]) == 2
    assert "mailboxes: no mailbox configured" in capsys.readouterr().err


def test_db_upgrade_is_idempotent(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(tmp_path)
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert main(["--config", str(config), "db", "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "cli.db").exists()


def test_sigterm_stops_the_daemon_cleanly(mailbox: ImapAccount, tmp_path: Path) -> None:
    config = _config(tmp_path, mailbox)
    env = {
        **os.environ,
        "CLI_IMAP_PASSWORD": mailbox.password,
        "COMPLAINTD_SECRET": TEST_SECRET,
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "daemon.cli", "--config", str(config), "run"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        append_many(mailbox.host, mailbox.port, mailbox.username, mailbox.password, [complaint()])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and folder_uids(
            mailbox.host, mailbox.port, mailbox.username, mailbox.password
        ):
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr.decode(errors="replace")
    log = stderr.decode(errors="replace")
    assert "complaintd stopped" in log
    assert "Traceback" not in log
    assert mailbox.password not in log


def test_routing_explain_prints_the_decision_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "r.toml"
    config.write_text(
        _config(tmp_path).read_text(encoding="utf-8")
        + """
[[calendars]]
name = "office"
time_zone = "Europe/Budapest"
holidays_country = "HU"

[[teams]]
name = "desk"
calendar = "office"
email = "desk@example.com"
[[teams.members]]
name = "Eszter"
email = "eszter@example.com"

[tiers]
frontline = "desk"
supervisors = "desk"
resolution_lead = "desk"
triage = "desk"
[tiers.specialists]
default = "desk"

[[sla_policies]]
name = "all"
severity = ["low", "medium", "high", "critical"]
first_response = "4h"
next_response = "8h"
resolution = "5d"

[[rules]]
name = "press"
subject_regex = "(?i)interview"
tier = 3
acknowledge = false

[[rules]]
name = "default"
""",
        encoding="utf-8",
    )
    mail = tmp_path / "m.eml"
    mail.write_bytes(complaint(subject="Broken kettle"))
    assert main(["--config", str(config), "routing", "explain", str(mail), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {
        "rule", "reasons", "tier", "team", "assignee", "sla", "acknowledge", "why_not",
    }  # fmt: skip
    assert result["rule"] == "default"
    assert result["assignee"] == "eszter@example.com"
    assert result["sla"]["policy"] == "all"
    assert result["why_not"][0]["rule"] == "press"
    mail.write_bytes(complaint(subject="Interview request"))
    assert main(["--config", str(config), "routing", "explain", str(mail), "--json"]) == 0
    press = json.loads(capsys.readouterr().out)
    assert (press["rule"], press["tier"], press["acknowledge"]) == ("press", 3, False)
