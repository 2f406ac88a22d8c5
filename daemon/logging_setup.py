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

# OAuth2 tokens are fetched at every connect: remember the newest ones only.
_MAX_TOKENS = 64

_fixed: set[str] = set()  # passwords and the server secret: few, kept for good
_tokens: dict[str, None] = {}  # insertion-ordered: the oldest token goes first
_by_length: tuple[str, ...] = ()
_secrets_lock = threading.Lock()


def redact_in_logs(value: str, *, rotating: bool = False) -> None:
    """Register a secret value: from now on it never appears in a log line of this process.

    ``rotating`` marks short-lived values fetched again and again (OAuth2 access
    tokens): only the newest :data:`_MAX_TOKENS` of them are kept, so the list
    and the cost of every log line stay bounded in a daemon that runs for months.
    """
    global _by_length  # noqa: PLW0603 - one registry per process, swapped whole
    if len(value) < _MIN_SECRET_LENGTH:
        return
    with _secrets_lock:
        if rotating:
            _tokens.pop(value, None)
            _tokens[value] = None
            while len(_tokens) > _MAX_TOKENS:
                del _tokens[next(iter(_tokens))]
        else:
            _fixed.add(value)
        # Longest first, so a secret that contains another is replaced whole.
        _by_length = tuple(sorted({*_fixed, *_tokens}, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by :data:`REDACTED`."""
    for secret in _by_length:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _RedactSecrets(logging.Filter):
    """A handler filter: rewrites records that would show a registered secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad log call: logging's own handler reports it, not the caller
            return True
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
