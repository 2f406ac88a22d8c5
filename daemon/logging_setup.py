"""Process-wide logging, configured by the CLI only (never at import time)."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; quiet the libraries that narrate every command."""
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # imapclient at DEBUG logs every IMAP line (mail bodies included); keep it at INFO+.
    for noisy in ("imapclient", "alembic", "mail.log", "aiosmtpd", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.getLevelName(level), logging.WARNING))
