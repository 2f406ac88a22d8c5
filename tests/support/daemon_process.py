"""The real ``complaintd run`` in a subprocess: its config file, its log, and SIGKILL.

Each :class:`DaemonProcess` is one daemon instance with its own config file and
log (stdout and stderr, appended across restarts). Secrets reach it through the
environment, as in production. :class:`DaemonPool` kills whatever is still
running when the test ends, so a failing test leaves no daemon behind holding
database connections or IMAP sessions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.app_factory import TEST_SECRET
from tests.support.imap_tools import ImapAccount

__all__ = ["DaemonPool", "DaemonProcess", "daemon_pool", "wait_until", "write_config"]

ROOT = Path(__file__).resolve().parents[2]
_PASSWORD_ENV = "COMPLAINTD_TEST_IMAP_PASSWORD"


def write_config(
    path: Path,
    *,
    database_url: str,
    mailbox: ImapAccount,
    sweep_interval_seconds: float = 1.0,
    sweep_batch_size: int = 50,
    mailbox_lock_retry_seconds: float = 0.5,
) -> Path:
    """A complete daemon configuration: one mailbox, no SMTP, a fast scheduler."""
    path.write_text(
        f"""
[database]
url = "{database_url}"

[[mailboxes]]
name = "support"
host = "{mailbox.host}"
port = {mailbox.port}
tls = "none"
username = "{mailbox.username}"
password_env = "{_PASSWORD_ENV}"
after = "move:Processed"
address = "support@example.com"
poll_interval = 0.5

[classifier]
train_on_first_run = false

[intake]
reconnect_initial_delay = 0.2
reconnect_max_delay = 1.0
aliases = ["support@example.com"]

[scheduler]
sweep_interval_seconds = {sweep_interval_seconds}
sweep_batch_size = {sweep_batch_size}
mailbox_lock_retry_seconds = {mailbox_lock_retry_seconds}
""",
        encoding="utf-8",
    )
    return path


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, *, every: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


@dataclass
class DaemonProcess:
    """One ``complaintd --config CONFIG run`` instance."""

    name: str
    config: Path
    mailbox: ImapAccount
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    log_start: int = 0
    """Where the log of the current run starts (the file is appended across restarts)."""

    def start(self) -> None:
        """Start the daemon (again); its output is appended to :attr:`log_path`."""
        assert not self.running, f"{self.name} is already running"
        env = {
            **os.environ,
            _PASSWORD_ENV: self.mailbox.password,
            "COMPLAINTD_SECRET": TEST_SECRET,
            "PYTHONPATH": str(ROOT),
        }
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon.cli", "--config", str(self.config), "run"],
                env=env, cwd=self.config.parent, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, open transactions die with the process."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait for a clean exit (SIGKILL if it does not come); the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(f"{self.name} did not stop on SIGTERM") from None
        return self.process.returncode

    def log(self, *, current_run: bool = False) -> str:
        """The daemon's output so far (of every run, or only of the current one)."""
        if not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[self.log_start if current_run else 0 :].decode("utf-8", "replace")

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Wait until the current run has logged ``text``; fail with the log if it does not."""
        try:
            wait_until(
                lambda: text in self.log(current_run=True) or not self.running,
                timeout,
                f"{self.name} to log {text!r}",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- {self.name} log ---\n{self.tail()}") from None
        if text not in self.log(current_run=True):
            raise AssertionError(
                f"{self.name} exited ({self.process and self.process.returncode}) "
                f"before logging {text!r}\n--- log ---\n{self.tail()}"
            )

    def tail(self, chars: int = 4000) -> str:
        """The end of the log, for failure messages."""
        return self.log()[-chars:]


@dataclass
class DaemonPool:
    """Daemon instances made for one test; :func:`daemon_pool` kills them all at the end."""

    folder: Path
    mailbox: ImapAccount
    database_url: str
    scheduler: dict[str, Any] = field(default_factory=dict)
    daemons: list[DaemonProcess] = field(default_factory=list)

    def new(self, name: str) -> DaemonProcess:
        """A daemon instance (not started) with its own config file and log."""
        config = write_config(
            self.folder / f"{name}.toml",
            database_url=self.database_url,
            mailbox=self.mailbox,
            **self.scheduler,
        )
        daemon = DaemonProcess(name, config, self.mailbox, self.folder / f"{name}.log")
        self.daemons.append(daemon)
        return daemon

    def logs(self) -> str:
        """Every instance's log, for failure messages."""
        return "\n".join(f"--- {d.name} ---\n{d.tail()}" for d in self.daemons)


@contextmanager
def daemon_pool(
    folder: Path, mailbox: ImapAccount, database_url: str, **scheduler: Any
) -> Iterator[DaemonPool]:
    """A :class:`DaemonPool` whose processes are all killed when the block ends."""
    pool = DaemonPool(folder, mailbox, database_url, scheduler)
    try:
        yield pool
    finally:
        for daemon in pool.daemons:
            daemon.kill()
