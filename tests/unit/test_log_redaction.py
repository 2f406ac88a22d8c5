"""Secrets the process resolved never reach a log line, whoever logs them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.logging_setup import REDACTED, configure_logging, redact_in_logs
from daemon.settings import resolve_secret


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("DEBUG")
    stream = io.StringIO()
    ours = root.handlers[:]
    for handler in ours:
        handler.setStream(stream)  # type: ignore[attr-defined]
    yield stream
    for handler in ours:
        root.removeHandler(handler)
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def test_a_resolved_secret_is_redacted_in_messages_arguments_and_tracebacks(
    log_text: io.StringIO, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_REDACT_PW", "Tr0ub4dor&3-from-env")
    (tmp_path / "token").write_text("ya29.file-token-value\n", encoding="utf-8")
    password = resolve_secret("k", env="TEST_REDACT_PW", file=None).get_secret_value()
    token = resolve_secret("k", env=None, file=Path("token"), base_dir=tmp_path)

    logger = logging.getLogger("some.library")
    logger.info("LOGIN support %s", password)
    logger.debug("AUTH XOAUTH2 user=support\x01auth=Bearer " + token.get_secret_value())
    try:
        raise RuntimeError(f"server said: bad password {password!r}")
    except RuntimeError:
        logger.exception("login failed")

    text = log_text.getvalue()
    assert "Tr0ub4dor&3-from-env" not in text
    assert "ya29.file-token-value" not in text
    assert text.count(REDACTED) == 3  # the argument, the token line, the exception message
    assert "LOGIN support" in text and "login failed" in text and "RuntimeError" in text


def test_ordinary_lines_are_left_alone(log_text: io.StringIO) -> None:
    logging.getLogger("complaintd.test").warning("fetched %d mails from %s", 3, "INBOX")
    assert "fetched 3 mails from INBOX" in log_text.getvalue()


def test_tokens_rotate_out_but_passwords_stay(log_text: io.StringIO) -> None:
    redact_in_logs("a-fixed-password-value")
    tokens = [f"token-{n:04d}-abcdefgh" for n in range(200)]
    for token in tokens:
        redact_in_logs(token, rotating=True)
    logger = logging.getLogger("some.library")
    logger.info("%s %s %s", "a-fixed-password-value", tokens[-1], tokens[0])
    line = log_text.getvalue()
    assert "a-fixed-password-value" not in line and tokens[-1] not in line
    assert tokens[0] in line  # long since replaced: not kept forever


def test_a_bad_log_call_does_not_raise_in_the_caller(log_text: io.StringIO) -> None:
    logging.raiseExceptions = False  # as in production: logging reports, never raises
    try:
        logging.getLogger("some.library").info("%d mails", "not a number")
    finally:
        logging.raiseExceptions = True
    logging.getLogger("some.library").info("still logging")
    assert "still logging" in log_text.getvalue()
