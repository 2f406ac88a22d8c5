"""Smoke tests: the loopback servers behind the fixtures really work.

If one of these fails, every integration test built on that fixture would
fail for a reason that has nothing to do with complaintd.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
import sqlalchemy as sa
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from daemon.demo_servers import (
    PymapServer,
    ServerStartError,
    SmtpSink,
    free_port,
    wait_for_imap_greeting,
)
from tests.support.dovecot import DovecotServer, dovecot_available
from tests.support.imap_tools import (
    ImapAccount,
    ImapService,
    append,
    append_many,
    connect,
    folder_flags,
    folder_uids,
)

RAW = (
    b"From: Customer <customer@example.com>\r\n"
    b"To: support@example.com\r\n"
    b"Subject: My order never arrived\r\n"
    b"Message-ID: <smoke-1@example.com>\r\n"
    b"Date: Mon, 03 Jun 2024 10:00:00 +0000\r\n"
    b"\r\n"
    b"Hello, where is my parcel?\r\n"
)


def _raw(number: int) -> bytes:
    return RAW.replace(b"smoke-1@", f"smoke-{number}@".encode())


@pytest.fixture(params=["session-kind", "pymap"])
def account(request: pytest.FixtureRequest, imap_server: ImapService) -> Iterator[ImapAccount]:
    """A fresh account on the session's server, and one on pymap (the demo's server)."""
    if request.param == "session-kind":
        with imap_server.new_account() as fresh:
            yield fresh
    elif imap_server.kind == "pymap":
        pytest.skip("the session server already is pymap")
    else:
        with PymapServer("support", "secret") as pymap:
            yield ImapAccount(pymap.host, pymap.port, pymap.username, pymap.password, "pymap")


def _args(acct: ImapAccount) -> tuple[str, int, str, str]:
    return acct.host, acct.port, acct.username, acct.password


# --- IMAP ------------------------------------------------------------------


def test_append_and_read_back(account: ImapAccount) -> None:
    uid = append(*_args(account), RAW, flags=[b"\\Seen"])

    uids = folder_uids(*_args(account))
    assert uids == [uid]
    assert folder_flags(*_args(account)) == {uid: (b"\\Seen",)}
    with connect(*_args(account)) as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch(uids, ["RFC822"])
    assert fetched[uid][b"RFC822"] == RAW


def test_append_many_keeps_order_and_uids_ascend(account: ImapAccount) -> None:
    reported = append_many(*_args(account), [_raw(n) for n in range(5)])

    # Both servers announce UIDPLUS, so every APPEND reports its UID.
    uids = [uid for uid in reported if uid is not None]
    assert len(uids) == 5
    assert uids == sorted(set(uids))
    assert folder_uids(*_args(account)) == uids


def _read_until(sock: socket.socket, buffer: bytearray, marker: bytes, deadline: float) -> bytes:
    """Read lines until one contains ``marker``; return that line."""
    while True:
        while b"\r\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\r\n")
            buffer[:] = rest
            if marker in line:
                return line
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no {marker!r} from the server in time"
        sock.settimeout(remaining)
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection"
        buffer += chunk


def test_idle_reports_an_append_within_three_seconds(account: ImapAccount) -> None:
    # A plain socket rather than IMAPClient.idle_check(): that reads without
    # blocking and aborts on a response split across TCP segments (imapclient
    # issue #519), which pymap produces; this test is about the server.
    with socket.create_connection((account.host, account.port), timeout=10) as sock:
        buffer = bytearray()
        deadline = time.monotonic() + 10
        _read_until(sock, buffer, b"* OK", deadline)
        sock.sendall(f'a LOGIN "{account.username}" "{account.password}"\r\n'.encode())
        _read_until(sock, buffer, b"a OK", deadline)
        sock.sendall(b"b SELECT INBOX\r\n")
        _read_until(sock, buffer, b"b OK", deadline)
        sock.sendall(b"c IDLE\r\n")
        _read_until(sock, buffer, b"+ ", deadline)

        started = time.monotonic()
        # Appended from another connection, as a mail delivery would be.
        append(*_args(account), RAW)
        line = _read_until(sock, buffer, b" EXISTS", started + 3)
        assert line == b"* 1 EXISTS"

        sock.sendall(b"DONE\r\n")
        _read_until(sock, buffer, b"c OK", time.monotonic() + 10)


def test_create_and_move_to_processed(account: ImapAccount) -> None:
    first, second = append_many(*_args(account), [_raw(1), _raw(2)])

    with connect(*_args(account)) as client:
        client.create_folder("Processed")
        client.select_folder("INBOX")
        client.move([first], "Processed")

    assert folder_uids(*_args(account)) == [second]
    assert len(folder_uids(*_args(account), folder="Processed")) == 1


def test_each_account_starts_empty(imap_server: ImapService) -> None:
    with imap_server.new_account() as one, imap_server.new_account() as other:
        append(*_args(one), RAW)

        assert len(folder_uids(*_args(one))) == 1
        assert folder_uids(*_args(other)) == []


def test_wrong_password_is_refused(account: ImapAccount) -> None:
    with pytest.raises(LoginError), connect(account.host, account.port, account.username, "bad"):
        pass


def test_pymap_start_failure_is_reported_clearly() -> None:
    # Holding the port makes pymap fail to bind and exit during start-up.
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        server = PymapServer(port=holder.getsockname()[1], start_timeout=15)
        with pytest.raises(ServerStartError, match="pymap"):
            server.start()


def test_wait_for_greeting_times_out_on_a_silent_port() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        with pytest.raises(ServerStartError, match="no IMAP greeting"):
            wait_for_imap_greeting("127.0.0.1", silent.getsockname()[1], timeout=0.3)


# --- Dovecot specifics -----------------------------------------------------

needs_dovecot = pytest.mark.skipif(not dovecot_available(), reason="Dovecot is not installed")


@needs_dovecot
def test_dovecot_serves_several_users() -> None:
    with DovecotServer(users={"support": "pw", "sales": "pw2"}, tls=False) as server:
        append(server.host, server.port, "support", "pw", RAW)

        assert len(folder_uids(server.host, server.port, "support", "pw")) == 1
        assert folder_uids(server.host, server.port, "sales", "pw2") == []
        assert server.ssl_port is None
        assert server.ca_file is None


@needs_dovecot
def test_dovecot_tls_and_starttls_with_the_generated_ca(imap_server: ImapService) -> None:
    if imap_server.kind != "dovecot":
        pytest.skip("the session's IMAP server is pymap, which is run without TLS")
    if imap_server.ssl_port is None:
        pytest.skip("TLS is not offered (no cryptography package and no openssl binary)")
    assert imap_server.ca_file is not None
    context = ssl.create_default_context(cafile=str(imap_server.ca_file))
    host, user, password = imap_server.host, imap_server.username, imap_server.password

    implicit = IMAPClient(host, imap_server.ssl_port, ssl=True, ssl_context=context, timeout=10)
    implicit.login(user, password)
    implicit.logout()

    upgraded = IMAPClient(host, imap_server.port, ssl=False, timeout=10)
    upgraded.starttls(context)
    upgraded.login(user, password)
    upgraded.logout()

    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(host, imap_server.ssl_port, ssl=True, timeout=10)


# --- SMTP ------------------------------------------------------------------


def _mail(subject: str = "Your ticket [CMP-000001]") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "support@example.com"
    message["To"] = "customer@example.com"
    message["Subject"] = subject
    message.set_content("We received your complaint.\n")
    return message


def test_smtp_sink_records_what_it_receives(smtp_sink: SmtpSink) -> None:
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.send_message(_mail(), to_addrs=["customer@example.com", "cc@example.com"])

    (received,) = smtp_sink.wait_for(1, timeout=5)
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == ("customer@example.com", "cc@example.com")
    assert received.message["Subject"] == "Your ticket [CMP-000001]"
    assert b"We received your complaint." in received.data


def test_smtp_sink_refuses_with_451_when_told_to(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_with = (451, "4.3.0 Try again later")
    with (
        smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.send_message(_mail())
    assert refused.value.smtp_code == 451
    assert smtp_sink.messages == []

    smtp_sink.fail_with = None
    with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=10) as client:
        client.send_message(_mail())
    assert len(smtp_sink.wait_for(1, timeout=5)) == 1


def test_smtp_sink_wait_for_times_out(smtp_sink: SmtpSink) -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        smtp_sink.wait_for(1, timeout=0.1)


# --- databases -------------------------------------------------------------


def test_postgres_accepts_a_connection(pg_url: str) -> None:
    engine = sa.create_engine(pg_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_sqlite_url_is_usable(tmp_db_url: str) -> None:
    engine = sa.create_engine(tmp_db_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
