"""IMAP intake against a real loopback server (Dovecot, else pymap) and a real SQLite file."""

from __future__ import annotations

import select as pyselect
import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from daemon.app import Application
from daemon.demo_servers import PymapServer
from daemon.intake import _already_read
from daemon.service import MailSource
from models import Attachment, MailboxReceipt, Message, Quarantine, Ticket
from tests.support.app_factory import build_app, mailbox_settings
from tests.support.imap_tools import ImapAccount, append_many, connect, folder_flags, folder_uids
from tests.support.mail_factory import complaint


def _count(app: Application, model: type) -> int:
    with app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _uids(account: ImapAccount | PymapServer, folder: str = "INBOX") -> list[int]:
    return folder_uids(account.host, account.port, account.username, account.password, folder)


def _append(account: ImapAccount | PymapServer, mails: list[bytes], folder: str = "INBOX") -> None:
    append_many(account.host, account.port, account.username, account.password, mails, folder)


def test_run_once_stores_each_mail_then_moves_it(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(mailbox, [complaint(sender=f"c{i}@example.com") for i in range(5)])
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        report = app.run_once()["support"]
        assert (report.stored, report.acknowledged) == (5, 5)
        assert _count(app, Ticket) == 5
        assert _uids(mailbox) == []
        assert len(_uids(mailbox, "Processed")) == 5
        # A second pass finds nothing to do and creates nothing.
        assert app.run_once()["support"].stored == 0
        assert _count(app, Ticket) == 5
    finally:
        app.close()


def test_flag_mode_marks_seen_and_never_reprocesses(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _append(mailbox, [complaint() for _ in range(3)])
    entry = mailbox_settings(mailbox, after="flag")
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, entry)])
    try:
        assert app.run_once()["support"].stored == 3
        flags = folder_flags(mailbox.host, mailbox.port, mailbox.username, mailbox.password)
        assert all(b"\\Seen" in value for value in flags.values())
        assert len(flags) == 3
        _append(mailbox, [complaint()])
        assert app.run_once()["support"].stored == 1
        assert _count(app, Ticket) == 4
    finally:
        app.close()


def test_fetching_does_not_mark_mail_seen_before_it_is_stored(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BODY.PEEK: a mail whose store fails stays unseen, so nothing is silently skipped."""
    _append(mailbox, [complaint()])
    entry = mailbox_settings(mailbox, after="flag")
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, entry)])
    try:
        worker = app.workers()[0]
        client = worker._connect()
        try:
            client.select_folder("INBOX")
            batches = list(worker._batches(client, client.search(["ALL"])))
            client.fetch([uid for uid, _size in batches[0]], ["BODY.PEEK[]"])
        finally:
            client.logout()
        flags = folder_flags(mailbox.host, mailbox.port, mailbox.username, mailbox.password)
        assert all(b"\\Seen" not in value for value in flags.values())
    finally:
        app.close()


def test_crash_between_commit_and_move_is_finished_without_duplicates(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = [complaint() for _ in range(3)]
    _append(mailbox, raws)
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        # Simulate a daemon that committed the first mail and died before the MOVE.
        with connect(mailbox.host, mailbox.port, mailbox.username, mailbox.password) as client:
            validity = int(client.select_folder("INBOX")[b"UIDVALIDITY"])
            first_uid = min(client.search(["ALL"]))
        app.service.ingest(raws[0], MailSource("support", validity, first_uid))
        report = app.run_once()["support"]
        assert report.stored == 2
        assert report.acknowledged == 3
        assert _count(app, Ticket) == 3
        assert _uids(mailbox) == []
    finally:
        app.close()


def test_uidvalidity_change_creates_no_duplicate_tickets(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = [complaint() for _ in range(3)]
    with connect(mailbox.host, mailbox.port, mailbox.username, mailbox.password) as client:
        client.create_folder("Support")
    _append(mailbox, raws, "Support")
    entry = mailbox_settings(mailbox, folder="Support", after="flag")
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, entry)])
    try:
        assert app.run_once()["support"].stored == 3
        # Recreating the folder gives it a new UIDVALIDITY; the same mail comes back.
        with connect(mailbox.host, mailbox.port, mailbox.username, mailbox.password) as client:
            client.delete_folder("Support")
            client.create_folder("Support")
        _append(mailbox, raws, "Support")
        assert app.run_once()["support"].stored == 3
        assert _count(app, Ticket) == 3
        assert _count(app, Message) == 3
        assert _count(app, MailboxReceipt) == 6
    finally:
        app.close()


def test_same_mail_in_two_mailboxes_is_one_ticket(
    imap_server: object, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_account = imap_server.new_account  # type: ignore[attr-defined]
    with new_account() as support, new_account() as sales:
        raw = complaint(to="support@example.com, sales@example.com")
        _append(support, [raw])
        _append(sales, [raw])
        boxes = [
            (support, mailbox_settings(support, name="support")),
            (sales, mailbox_settings(sales, name="sales", address="sales@example.com")),
        ]
        app = build_app(tmp_db_url, monkeypatch, mailboxes=boxes)
        try:
            reports = app.run_once()
            assert reports["support"].stored == 1
            assert reports["sales"].stored == 1
            assert _count(app, Ticket) == 1
            assert _uids(support) == [] and _uids(sales) == []
        finally:
            app.close()


def test_idle_picks_up_new_mail_within_seconds(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    try:
        time.sleep(0.5)  # let the worker reach IDLE
        started = time.monotonic()
        _append(mailbox, [complaint()])
        assert _wait_until(lambda: _count(app, Ticket) == 1, timeout=10)
        elapsed = time.monotonic() - started
        assert elapsed < 10
        assert _wait_until(lambda: _uids(mailbox) == [], timeout=5)
    finally:
        stop.set()
        runner.join(timeout=15)
        app.close()
    assert not runner.is_alive()


def test_mail_announced_with_the_idle_continuation_is_not_missed(mailbox: ImapAccount) -> None:
    """Mail arriving between our last search and IDLE: its EXISTS must be seen at once.

    Dovecot sends it in the same packet as "+ idling", where select() alone
    cannot see it; the worker must notice it without waiting for a resync.
    """
    from tests.support.imap_tools import append

    for _ in range(3):
        with connect(mailbox.host, mailbox.port, mailbox.username, mailbox.password) as client:
            client.select_folder("INBOX")
            client.noop()
            append(mailbox.host, mailbox.port, mailbox.username, mailbox.password, complaint())
            client.idle()
            visible = _already_read(client) or bool(
                pyselect.select([client.socket()], [], [], 2.0)[0]
            )
            _text, responses = client.idle_done()
        assert visible
        assert any(response[1] == b"EXISTS" for response in responses)


def test_polling_without_idle_also_works(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = mailbox_settings(mailbox, idle=False, poll_interval=0.3)
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, entry)])
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    try:
        _append(mailbox, [complaint(), complaint()])
        assert _wait_until(lambda: _count(app, Ticket) == 2, timeout=10)
    finally:
        stop.set()
        runner.join(timeout=15)
        app.close()


def test_wrong_password_is_recorded_and_the_worker_keeps_trying(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    monkeypatch.setenv("TEST_IMAP_PASSWORD_SUPPORT", "wrong-password")
    app._secrets.clear()
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    try:
        from models import MailboxState

        def error_recorded() -> bool:
            with app.sessions() as session:
                state = session.get(MailboxState, "support")
                return state is not None and state.last_error is not None

        assert _wait_until(error_recorded, timeout=10)
        with app.sessions() as session:
            state = session.get(MailboxState, "support")
            assert state is not None and "refused the login" in (state.last_error or "")
            assert "wrong-password" not in (state.last_error or "")
    finally:
        stop.set()
        runner.join(timeout=15)
        app.close()
    assert not runner.is_alive()


def test_bad_input_never_stops_the_loop_and_nothing_is_lost(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    junk = [
        bytes(range(256)) * 40,  # binary junk, no headers at all
        b"From: a@example.com\r\nSubject: nul\x00bytes\r\n\r\nbody\x00with\x00nuls\r\n",
        b"From: J\xfcrgen <j@example.de>\r\nSubject: 8-bit \xe4\xf6\xfc\r\n\r\nK\xe4se\r\n",
        b"Subject: no sender\r\n\r\nwho am I?\r\n",
        b'From: x@example.com\r\nContent-Type: multipart/mixed; boundary="never"\r\n\r\nbroken',
        b"From: y@example.com\r\nContent-Type: text/plain; charset=klingon\r\n\r\n\xff\xfe\xfa",
        complaint(),
    ]
    _append(mailbox, junk)
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        report = app.run_once()["support"]
        assert report.stored == len(junk)
        with app.sessions() as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
            entries = session.scalars(select(Quarantine)).all()
        # Every mail is a ticket or a recorded rejection, none an unexplained error.
        assert tickets + len(entries) == len(junk)
        assert all(entry.kind == "rejected" for entry in entries), [e.reason for e in entries]
        assert _uids(mailbox) == []
    finally:
        app.close()


@pytest.mark.slow
def test_a_50_mb_message_is_stored(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from email import message_from_bytes, policy

    message = message_from_bytes(
        complaint(body="Please see the attached scan.\n"), policy=policy.default
    )
    # 37 MiB of attachment is a 50 MB mail once base64-encoded.
    attachment = b"%PDF-1.4\n" + b"A" * (37 * 1024 * 1024)
    message.add_attachment(attachment, maintype="application", subtype="pdf", filename="scan.pdf")
    raw = bytes(message)
    assert len(raw) > 50_000_000
    _append(mailbox, [raw])
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        assert app.run_once()["support"].stored == 1
        with app.sessions() as session:
            attachment_row = session.scalars(select(Attachment)).one()
        assert attachment_row.size == len(attachment)
        assert _count(app, Ticket) == 1
    finally:
        app.close()


def test_oversized_message_stays_on_the_server_and_is_recorded(
    mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = complaint(body="x" * 20000)
    _append(mailbox, [big, complaint()])
    app = build_app(
        tmp_db_url,
        monkeypatch,
        mailboxes=[(mailbox, mailbox_settings(mailbox))],
        intake={"max_message_bytes": 10000, "reconnect_initial_delay": 0.2, "aliases": []},
    )
    try:
        report = app.run_once()["support"]
        assert report.stored == 2
        assert report.acknowledged == 1
        assert len(_uids(mailbox)) == 1  # the big one stays where it was
        with app.sessions() as session:
            entry = session.scalars(select(Quarantine)).one()
        assert "over the limit" in entry.reason
        assert entry.raw_id is None
        # And it is not fetched again on the next pass.
        assert app.run_once()["support"].stored == 0
    finally:
        app.close()


@pytest.mark.parametrize("mode", ["ssl", "starttls"])
def test_tls_modes_verify_the_server_certificate(
    mode: str, mailbox: ImapAccount, tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if mailbox.ssl_port is None or mailbox.ca_file is None:
        pytest.skip("this IMAP server offers no TLS (pymap, or no certificate tooling)")
    _append(mailbox, [complaint()])
    port = mailbox.ssl_port if mode == "ssl" else mailbox.port
    entry = mailbox_settings(
        mailbox, tls=mode, port=port, host="localhost", ca_file=str(mailbox.ca_file)
    )
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, entry)])
    try:
        assert app.run_once()["support"].stored == 1
    finally:
        app.close()
    # Without our CA the certificate is refused: no silent downgrade to trusting anyone.
    untrusted = mailbox_settings(mailbox, tls=mode, port=port, host="localhost")
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(mailbox, untrusted)])
    try:
        from daemon.errors import TransientError

        with pytest.raises(TransientError):
            app.run_once()
    finally:
        app.close()


def test_worker_reconnects_after_the_server_goes_away(
    tmp_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The IMAP server restarts mid-IDLE (new UIDVALIDITY, UIDs from 1): nothing is lost."""
    from models import MailboxState

    first = PymapServer("support", "pw")
    first.start()
    port = first.port
    app = build_app(tmp_db_url, monkeypatch, mailboxes=[(first, mailbox_settings(first))])
    stop = threading.Event()
    runner = threading.Thread(target=app.run, args=(stop,))
    runner.start()
    second = None
    try:
        _append(first, [complaint()])
        assert _wait_until(lambda: _count(app, Ticket) == 1, timeout=15)
        first.stop()  # the connection drops while the worker sits in IDLE

        def error_recorded() -> bool:
            with app.sessions() as session:
                state = session.get(MailboxState, "support")
                return state is not None and state.last_error is not None

        assert _wait_until(error_recorded, timeout=15)
        second = PymapServer("support", "pw", port=port)
        second.start()
        _append(second, [complaint(), complaint()])
        assert _wait_until(lambda: _count(app, Ticket) == 3, timeout=20)
        assert _wait_until(lambda: _uids(second) == [], timeout=10)
    finally:
        stop.set()
        runner.join(timeout=15)
        app.close()
        first.stop()
        if second is not None:
            second.stop()
    assert not runner.is_alive()


def test_intake_on_postgresql(
    mailbox: ImapAccount, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    raws = [complaint() for _ in range(4)]
    raws.append(b"From: n@example.com\r\nSubject: nul \x00 byte\r\n\r\ntext\x00with nul\r\n")
    _append(mailbox, raws)
    app = build_app(pg_url, monkeypatch, mailboxes=[(mailbox, mailbox_settings(mailbox))])
    try:
        assert app.run_once()["support"].stored == 5
        assert _count(app, Ticket) == 5
        assert app.run_once()["support"].stored == 0
        assert _uids(mailbox) == []
    finally:
        app.close()
