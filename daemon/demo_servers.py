"""Loopback IMAP and SMTP servers for ``complaintd demo`` and for the tests.

:class:`PymapServer` runs pymap's in-memory IMAP server as a subprocess and
:class:`SmtpSink` runs an aiosmtpd server in a thread that keeps every message
it receives. Both listen on 127.0.0.1 only, on a free port, and stop cleanly
when their ``with`` block ends.
"""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import IO, Any, Self

from aiosmtpd.controller import Controller

__all__ = [
    "PymapServer",
    "ReceivedMessage",
    "ServerStartError",
    "SmtpSink",
    "free_port",
    "wait_for_imap_greeting",
]

LOOPBACK = "127.0.0.1"
_POLL_INTERVAL = 0.02
# pymap 0.36 ships no ``__main__``, so ``python -m pymap`` fails; calling its
# console-script target keeps us on the same interpreter as the caller.
_PYMAP_BOOT = "import sys; from pymap.main import main; sys.exit(main())"


class ServerStartError(RuntimeError):
    """A loopback server did not come up in time or exited during start-up."""


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The port is released before returning, so another process could take it
    first; on loopback in a test run that race is rare enough to accept.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _read_greeting(host: str, port: int, timeout: float) -> bytes | None:
    """Connect once and return the first line the server sends, or None."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data or None
    except OSError:
        return None


def wait_for_imap_greeting(
    host: str,
    port: int,
    *,
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    log: IO[bytes] | None = None,
    name: str = "IMAP server",
) -> bytes:
    """Poll until ``host:port`` accepts a connection and sends ``* OK``.

    Returns the greeting line. Raises :class:`ServerStartError` after
    ``timeout`` seconds, or at once if ``process`` exits, with the tail of
    ``log`` (the server's output) in the message.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ServerStartError(
                f"{name} exited with code {process.returncode} during start-up{_log_tail(log)}"
            )
        remaining = deadline - time.monotonic()
        greeting = _read_greeting(host, port, timeout=min(1.0, max(remaining, _POLL_INTERVAL)))
        if greeting is not None and greeting.startswith(b"* OK"):
            return greeting
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{name} on {host}:{port} sent no IMAP greeting within {timeout:g} s"
                f"{_log_tail(log)}"
            )
        time.sleep(_POLL_INTERVAL)


def _log_tail(log: IO[bytes] | None, limit: int = 2000) -> str:
    """The last ``limit`` bytes of a server log, formatted for an error message."""
    if log is None:
        return ""
    log.flush()
    log.seek(0)
    text = log.read()[-limit:].decode("utf-8", "replace").strip()
    return f"; server output:\n{text}" if text else ""


class PymapServer:
    """pymap's in-memory (``dict``) IMAP server in a subprocess, plaintext, on loopback.

    The one user exists from start with an empty INBOX and may CREATE further
    folders (``Processed``). ``--demo-data`` is not passed: it would add
    sample mail plus Sent and Trash folders. Clients should set TCP_NODELAY:
    without it each command stalls ~40 ms on Nagle's algorithm. Keywords added
    with STORE are silently dropped (APPEND keeps them): rely on system flags.

    Usage::

        with PymapServer(username="support", password="secret") as imap:
            IMAPClient(imap.host, imap.port, ssl=False)
    """

    def __init__(
        self,
        username: str = "demouser",
        password: str = "demopass",  # noqa: S107 - loopback demo credential
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.username = username
        self.password = password
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def command(self) -> list[str]:
        """The argument list that starts the server."""
        return [
            sys.executable, "-c", _PYMAP_BOOT,
            "--no-tls", "--host", self.host, "--port", str(self.port),
            "dict", "--demo-user", self.username, "--demo-password", self.password,
        ]  # fmt: skip

    def start(self) -> None:
        """Start pymap and return once it greets IMAP clients."""
        if self._process is not None:
            raise ServerStartError("pymap is already running")
        # Kept open for the server's lifetime so start-up errors can quote it.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_imap_greeting(
                self.host, self.port, timeout=self.start_timeout,
                process=self._process, log=self._log, name="pymap",
            )  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Terminate pymap (kill it if it ignores SIGTERM) and release its log."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class ReceivedMessage:
    """One message as the SMTP sink received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        """The raw bytes parsed with the modern email policy."""
        return email.message_from_bytes(self.data, policy=email.policy.default)


class _SinkHandler:
    """aiosmtpd handler hooks that record mail or refuse it on demand."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # Refusing at MAIL FROM makes the whole transaction fail with one
        # code, like a relay that is down or throttling.
        failure = self._sink.fail_with
        if failure is not None:
            code, text = failure
            return f"{code} {text}"
        # A handler that answers MAIL must fill the envelope itself.
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        raw = envelope.original_content or envelope.content
        self._sink._record(
            ReceivedMessage(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(raw),
            )
        )
        return "250 Message accepted for delivery"


class SmtpSink:
    """An aiosmtpd SMTP server on loopback that keeps every message it accepts.

    ``messages`` is appended to from the server thread; read it directly or
    use :meth:`wait_for`. Set ``fail_with = (451, "try later")`` at any time to
    refuse new transactions at MAIL FROM with that reply; set it back to
    ``None`` to accept again.
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int | None = None,
        fail_with: tuple[int, str] | None = None,
    ) -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self.fail_with = fail_with
        self.messages: list[ReceivedMessage] = []
        self._changed = threading.Condition()
        self._controller: Controller | None = None

    def _record(self, message: ReceivedMessage) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Block until at least ``count`` messages arrived; return a copy of them.

        Raises :class:`TimeoutError` naming how many did arrive.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(
                    f"SMTP sink got {len(self.messages)} of {count} messages in {timeout:g} s"
                )
            return list(self.messages)

    def clear(self) -> None:
        """Forget the messages received so far."""
        with self._changed:
            self.messages.clear()

    def start(self) -> None:
        """Start the server thread; returns once it accepts connections."""
        if self._controller is not None:
            raise ServerStartError("SMTP sink is already running")
        controller = Controller(
            _SinkHandler(self),
            hostname=self.host,
            port=self.port,
            # aiosmtpd's 1 s default is tight on a loaded CI machine.
            ready_timeout=15.0,
            enable_SMTPUTF8=True,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        """Stop the server thread."""
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
