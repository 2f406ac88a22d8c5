"""The outbox sender in a process of its own, beside the daemon's intake.

Intake (parsing, classifying, storing) and sending (building MIME, SMTP)
are both CPU work in Python. In one process they share one interpreter
lock: each waits for the other at every database call and socket write,
and a machine's second core stays idle. During a burst that made sending
fall seconds behind intake. The daemon therefore starts the sender as a
child process (``[outbox] sender_process``, on by default).

One pipe (the child's stdin) carries everything the child needs: first the
settings (pickled; parent and child run the same code), then one byte each
time the daemon wants the sender woken (a commit queued mail, the
scheduler's retry tick). End of file means stop, also when the daemon
died without saying so (the kernel closes the pipe), so the child never
outlives it. Nothing else is shared: the child opens its own database
connections and claims rows like any other sender instance would, so a
crash of either process loses and duplicates nothing the outbox does not
already handle (leases, stable Message-IDs).
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import struct
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from daemon.settings import Settings, resolve_secret

__all__ = ["SenderProcess"]

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")  # length of the pickled settings that follow
_WAKE = b"w"
_STOP_WAIT = 30.0  # seconds the child gets to finish its round and exit
_RESTART_MIN, _RESTART_MAX = 1.0, 60.0  # seconds before starting a child that exited
_BUSY_TIMEOUT = 0.02  # SQLite sleeps 1, 2, 5 and 10 ms, then the sender retries itself


class SenderProcess:
    """Runs ``OutboxSender.run_forever`` in a child process; woken through ``wake``.

    ``wake`` is the daemon's outbox event (set by intake and the scheduler).
    A supervising thread starts the child, turns each wake-up into a byte on
    its stdin, and starts it again (after 1 s, doubling up to a minute) if it
    ever exits while the daemon runs: mail waits in the outbox meanwhile.
    """

    def __init__(self, settings: Settings, wake: threading.Event) -> None:
        self._settings = settings
        self._wake = wake
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the supervising thread, which starts the child."""
        self._thread = threading.Thread(target=self._supervise, name="smtp-outbox")
        self._thread.start()

    def stop(self) -> None:
        """Tell the child to stop (end of file) and wait for it; kill it if it hangs."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=2 * _STOP_WAIT)

    def _supervise(self) -> None:
        delay = _RESTART_MIN
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                process = self._spawn()
            except OSError as exc:
                logger.error("cannot start the outbox sender process: %s", exc)
            else:
                self._relay(process)
                if self._stopping.is_set():
                    break
                logger.error(
                    "outbox sender process %d exited (%s); starting it again in %.0f s",
                    process.pid, process.returncode, delay,
                )  # fmt: skip
            if time.monotonic() - started > _RESTART_MAX:
                delay = _RESTART_MIN  # it ran for a good while: not a crash loop
            self._stopping.wait(delay)
            delay = min(delay * 2, _RESTART_MAX)

    def _spawn(self) -> subprocess.Popen[bytes]:
        # -m runs the module by name: the child must find this code where we found it.
        root = str(Path(__file__).resolve().parents[1])
        path = os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))
        process = subprocess.Popen(
            [sys.executable, "-m", "daemon.sender_process"],
            stdin=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        logger.info("outbox sender started in process %d", process.pid)
        return process

    def _relay(self, process: subprocess.Popen[bytes]) -> None:
        """Forward wake-ups until the daemon stops or the child dies; then close its stdin."""
        pipe = process.stdin
        assert pipe is not None
        try:
            payload = self._payload()
            pipe.write(_HEADER.pack(len(payload)) + payload)
            pipe.flush()
            while not self._stopping.is_set() and process.poll() is None:
                if not self._wake.wait(1.0):
                    continue
                self._wake.clear()
                if not self._stopping.is_set():
                    pipe.write(_WAKE)
                    pipe.flush()
        except OSError:
            logger.debug("the outbox sender's pipe closed", exc_info=True)
        finally:
            try:
                pipe.close()
            except OSError:
                logger.debug("ignoring an error while closing the sender's pipe")
        try:
            process.wait(timeout=_STOP_WAIT)
        except subprocess.TimeoutExpired:
            logger.warning("outbox sender process %d did not stop; killing it", process.pid)
            process.kill()
            process.wait()

    def _payload(self) -> bytes:
        root = logging.getLogger()
        level = logging.getLevelName(root.level) if root.handlers else None
        return pickle.dumps((self._settings, level))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _read_settings(stdin: IO[bytes]) -> tuple[Settings, str | None]:
    header = stdin.read(_HEADER.size)
    if len(header) != _HEADER.size:
        raise SystemExit("complaintd sender: no settings on stdin")
    (length,) = _HEADER.unpack(header)
    # Written by our own parent process, running this same code: trusted.
    settings, level = pickle.loads(stdin.read(length))  # noqa: S301
    if not isinstance(settings, Settings):
        raise SystemExit("complaintd sender: unexpected settings on stdin")
    return settings, level


def _listen(stdin: int, wake: threading.Event, stop: threading.Event) -> None:
    """Each byte wakes the sender; end of file (the daemon stopped or died) stops it."""
    try:
        while os.read(stdin, 4096):
            wake.set()
    finally:
        stop.set()
        wake.set()


def main() -> int:
    """The child: send until the daemon closes our stdin."""
    # Ctrl-C reaches the whole process group; the daemon decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdin = sys.stdin.buffer
    settings, level = _read_settings(stdin)
    if level is not None:
        from daemon.logging_setup import configure_logging  # noqa: PLC0415

        configure_logging(level)
    smtp = settings.smtp
    if smtp is None:
        return 0
    from daemon.smtp_sender import OutboxSender  # noqa: PLC0415
    from models import create_database_engine, session_factory  # noqa: PLC0415

    stop, wake = threading.Event(), threading.Event()

    def terminate(*_args: object) -> None:
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, terminate)
    password = None
    if smtp.password_env or smtp.password_file:
        password = resolve_secret(
            "smtp.password",
            env=smtp.password_env,
            file=smtp.password_file,
            base_dir=settings.base_dir,
        )
    # Intake in the parent commits batch after batch with short gaps between; SQLite's
    # own waiting sleeps up to 100 ms at a time and keeps missing them. A short busy
    # timeout hands the waiting to the sender, which asks again every few milliseconds.
    engine = create_database_engine(
        settings.database_url(), echo=settings.database.echo, busy_timeout=_BUSY_TIMEOUT
    )
    try:
        sender = OutboxSender.from_settings(
            session_factory(engine), smtp, password, _utc_now, settings.outbox
        )
        listener = threading.Thread(target=_listen, args=(stdin.fileno(), wake, stop), daemon=True)
        listener.start()
        sender.run_forever(stop, wake)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
