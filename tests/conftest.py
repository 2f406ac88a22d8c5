"""Shared fixtures: real loopback servers for IMAP, SMTP and PostgreSQL, and SQLite URLs.

IMAP is a private Dovecot when the binary is installed, else pymap; set
``COMPLAINTD_REQUIRE_DOVECOT=1`` to make a missing Dovecot an error instead,
or ``COMPLAINTD_TEST_IMAP=pymap`` to test against pymap (the demo's server).
PostgreSQL tests are skipped when the server binaries are missing, unless
``COMPLAINTD_REQUIRE_POSTGRES=1`` (CI sets both).
"""

from __future__ import annotations

import itertools
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

# The repository root must be importable (``daemon``, ``tests.support``) even
# when the project is not pip-installed and whether or not tests/ is a package.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from daemon.demo_servers import PymapServer, SmtpSink  # noqa: E402
from tests.support.dovecot import DovecotServer, dovecot_available  # noqa: E402
from tests.support.imap_tools import ImapAccount, ImapService  # noqa: E402
from tests.support.postgres import PostgresCluster, postgres_unavailable_reason  # noqa: E402

_FIRST_USER = ("support", "secret")


def _required(variable: str) -> bool:
    return os.environ.get(variable, "").strip() not in ("", "0", "false", "no")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use PostgreSQL, so ``-m "not postgres"`` deselects them."""
    for item in items:
        if "pg_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


def _dovecot_service(server: DovecotServer) -> ImapService:
    numbers = itertools.count(1)

    @contextmanager
    def new_account() -> Iterator[ImapAccount]:
        # A new user is a new, empty maildir: tests never see each other's mail.
        username, password = f"box{next(numbers):05d}", secrets.token_hex(8)
        server.add_user(username, password)
        yield ImapAccount(
            server.host, server.port, username, password, "dovecot",
            server.ssl_port, server.ca_file,
        )  # fmt: skip

    username, password = _FIRST_USER
    return ImapService(
        server.host, server.port, username, password, "dovecot",
        server.ssl_port, server.ca_file, new_account=new_account,
        bearer_token=server.bearer_token,
    )  # fmt: skip


def _pymap_service(server: PymapServer) -> ImapService:
    @contextmanager
    def new_account() -> Iterator[ImapAccount]:
        # pymap's dict backend has one user per process: a fresh server per mailbox.
        with PymapServer(server.username, server.password) as fresh:
            yield ImapAccount(fresh.host, fresh.port, fresh.username, fresh.password, "pymap")

    return ImapService(
        server.host, server.port, server.username, server.password, "pymap",
        new_account=new_account,
    )  # fmt: skip


@pytest.fixture(scope="session")
def imap_server() -> Iterator[ImapService]:
    """The session's IMAP server (Dovecot, else pymap) with user ``support``/``secret``.

    Mail in this account is shared by every test in the session; use the
    ``mailbox`` fixture for an account of your own.
    """
    # COMPLAINTD_TEST_IMAP=pymap runs the suite against the demo's server.
    forced_pymap = os.environ.get("COMPLAINTD_TEST_IMAP", "").strip().lower() == "pymap"
    if dovecot_available() and not forced_pymap:
        with DovecotServer(users=dict([_FIRST_USER])) as dovecot:
            yield _dovecot_service(dovecot)
        return
    if _required("COMPLAINTD_REQUIRE_DOVECOT") and not forced_pymap:
        pytest.fail(
            "COMPLAINTD_REQUIRE_DOVECOT is set but Dovecot is not usable here "
            "(install dovecot-imapd; as root a 'dovecot' OS user is needed too)"
        )
    with PymapServer(*_FIRST_USER) as pymap:
        yield _pymap_service(pymap)


@pytest.fixture
def mailbox(imap_server: ImapService) -> Iterator[ImapAccount]:
    """A fresh, empty IMAP account (INBOX only) on the session's server type."""
    account: AbstractContextManager[ImapAccount] = imap_server.new_account()
    with account as fresh:
        yield fresh


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """An aiosmtpd server on loopback recording every message in ``.messages``."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the session; skipped (or failed in CI) when missing."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        if _required("COMPLAINTD_REQUIRE_POSTGRES"):
            pytest.fail(f"COMPLAINTD_REQUIRE_POSTGRES is set but {reason}")
        pytest.skip(reason)
    with PostgresCluster() as cluster:
        yield cluster


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty PostgreSQL database, dropped after the test."""
    dbname = f"t_{uuid.uuid4().hex[:16]}"
    url = pg_cluster.create_database(dbname)
    yield url
    pg_cluster.drop_database(dbname)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_db_url: str) -> str:
    """The test runs twice: on a SQLite file and on a private PostgreSQL database."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return tmp_db_url


@pytest.fixture
def tmp_db_url(tmp_path: Path) -> str:
    """SQLAlchemy URL of a SQLite file (not yet created) in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'complaintd.sqlite3'}"
