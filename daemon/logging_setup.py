"""Process-wide logging, configured by the CLI only (never at import time).

Secrets are kept out of the log twice over: they are held as ``SecretStr``
(so a ``repr`` shows ``**********``), and every secret value the process
resolves is registered with :func:`redact_in_logs`, so that a library that
echoes one back (in an error message, a protocol trace, a traceback) has it
replaced by ``[redacted]`` before the line is written.
"""

from __future__ import annotations

import logging
import sys
import threading

__all__ = ["REDACTED", "configure_logging", "redact", "redact_in_logs"]

REDACTED = "[redacted]"
# Shorter values (a PIN-like test password) would blank out ordinary words.
_MIN_SECRET_LENGTH = 4

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def redact_in_logs(value: str) -> None:
    """Register a secret value: from now on it never appears in a log line of this process."""
    if len(value) >= _MIN_SECRET_LENGTH:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`REDACTED`."""
    with _secrets_lock:
        # Longest first, so a secret that contains another is replaced whole.
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _RedactSecrets(logging.Filter):
    """A handler filter: rewrites records that would show a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; quiet the libraries that narrate every command."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactSecrets())
    # imapclient at DEBUG logs every IMAP line (mail bodies included); keep it at INFO+.
    for noisy in ("imapclient", "alembic", "mail.log", "aiosmtpd", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
