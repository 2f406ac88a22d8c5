"""Which database errors are outages (retry the batch) and which are one bad row (quarantine it).

Checked against the real drivers: a statement PostgreSQL refuses for its data
must not be taken for an outage, or one crafted mail would stop its mailbox on
every pass; a lost connection must be, or good mail would be quarantined.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from daemon.demo_servers import free_port
from models import create_database_engine, is_outage


def _error_of(url: str, statement: str) -> OperationalError:
    engine = create_database_engine(url)
    try:
        with engine.connect() as connection, pytest.raises(OperationalError) as caught:
            connection.execute(text(statement))
        return caught.value
    finally:
        engine.dispose()


def test_an_index_row_over_the_size_limit_is_not_an_outage(pg_url: str) -> None:
    engine = create_database_engine(pg_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE oversize (value text)"))
            connection.execute(text("CREATE INDEX ix_oversize ON oversize (value)"))
    finally:
        engine.dispose()
    # Random text does not compress below btree's 2,704-byte limit.
    error = _error_of(
        pg_url,
        "INSERT INTO oversize SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i",
    )
    assert "exceeds" in str(error.orig)
    assert not is_outage(error)


def test_a_database_that_cannot_be_reached_is_an_outage(pg_url: str) -> None:
    unreachable = pg_url.rsplit("@", 1)[0] + f"@127.0.0.1:{free_port()}/nothing"
    engine = create_database_engine(unreachable)
    try:
        with pytest.raises(OperationalError) as caught:
            engine.connect()
    finally:
        engine.dispose()
    assert is_outage(caught.value)


def test_sqlite_errors_are_outages() -> None:
    error = _error_of("sqlite://", "SELECT * FROM no_such_table")
    assert is_outage(error)
