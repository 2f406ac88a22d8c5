"""XOAUTH2 against a real server: Dovecot validates our bearer tokens (JWTs) itself.

Gmail and Microsoft 365 mailboxes log in with a short-lived OAuth2 access
token that an admin's command prints (``oauth2_token_command``). These tests
run the daemon against Dovecot's ``oauth2`` passdb with local JWT validation,
so the whole path is real: the command is run at each connect, the token goes
out in an ``AUTHENTICATE XOAUTH2``, the server checks signature and expiry.
pymap has no XOAUTH2; with it these tests skip (or fail under
``COMPLAINTD_REQUIRE_DOVECOT=1``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError
from sqlalchemy import func, select

from daemon.app import Application
from models import MailboxState, Ticket
from tests.support.app_factory import build_app, mailbox_settings
from tests.support.daemon_process import wait_until
from tests.support.imap_tools import ImapService, append_many, folder_uids
from tests.support.mail_factory import complaint


def _minter(imap_server: ImapService) -> Callable[[str, float], str]:
    if imap_server.bearer_token is None:
        if os.environ.get("COMPLAINTD_REQUIRE_DOVECOT", "").strip() not in {"", "0"}:
            pytest.fail("XOAUTH2 tests need Dovecot, which COMPLAINTD_REQUIRE_DOVECOT requires")
        pytest.skip("the test IMAP server (pymap) has no XOAUTH2")
    return imap_server.bearer_token


def _tickets(app: Application) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Ticket)) or 0)


def _last_error(app: Application) -> str | None:
    with app.sessions() as session:
        state = session.get(MailboxState, "support")
        return None if state is None else state.last_error


def _oauth_app(
    imap_server: ImapService, token_file: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Application:
    # The admin's token command: here it prints whatever token the test put in the file.
    entry = mailbox_settings(
        imap_server, password_env=None, oauth2_token_command=f"cat {token_file}"
    )
    return build_app(db_url, monkeypatch, mailboxes=[(imap_server, entry)])


def test_the_server_accepts_its_tokens_and_refuses_forged_or_expired_ones(
    imap_server: ImapService,
) -> None:
    mint = _minter(imap_server)
    host, port, user = imap_server.host, imap_server.port, imap_server.username
    good = IMAPClient(host, port, ssl=False, timeout=10)
    try:
        assert b"AUTH=XOAUTH2" in good.capabilities()
        good.oauth2_login(user, mint(user, 300))
        assert good.select_folder("INBOX")[b"UIDVALIDITY"]
    finally:
        good.logout()
    token = mint(user, 300)
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    for refused in (mint(user, -60), forged, mint("somebody-else", 300) + "x"):
        client = IMAPClient(host, port, ssl=False, timeout=10)
        try:
            with pytest.raises(LoginError):
                client.oauth2_login(user, refused)
        finally:
            client.shutdown()


def test_the_daemon_logs_in_with_xoauth2_and_fetches_a_fresh_token_at_each_connect(
    imap_server: ImapService, tmp_path: Path, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    mint = _minter(imap_server)
    user = imap_server.username
    token_file = tmp_path / "token"
    token_file.write_text(mint(user, -60) + "\n", encoding="utf-8")  # expired
    app = _oauth_app(imap_server, token_file, tmp_db_url, monkeypatch)
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    try:
        # An expired token is refused: recorded, retried, never a crash.
        wait_until(lambda: "refused the login" in (_last_error(app) or ""), 15, "the refusal")
        assert runner.is_alive()
        # The admin's command now prints a fresh token; the next connect uses it.
        token_file.write_text(mint(user, 300) + "\n", encoding="utf-8")
        append_many(imap_server.host, imap_server.port, user, imap_server.password, [complaint()])
        wait_until(lambda: _tickets(app) == 1, 20, "the ticket")
        wait_until(
            lambda: (
                folder_uids(imap_server.host, imap_server.port, user, imap_server.password) == []
            ),
            10,
            "the mail moved out of INBOX",
        )
    finally:
        stop.set()
        runner.join(timeout=30)
        app.close()
    assert not runner.is_alive()
