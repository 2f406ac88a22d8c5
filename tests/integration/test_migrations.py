"""Schema migrations: instances starting together on one PostgreSQL database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import inspect, text

from models import create_database_engine

ROOT = Path(__file__).resolve().parents[2]
_MIGRATE = (
    "import sys\n"
    "from models import create_database_engine, upgrade_schema\n"
    "engine = create_database_engine(sys.argv[1])\n"
    "upgrade_schema(engine)\n"
    "engine.dispose()\n"
)


def test_instances_migrating_one_fresh_database_at_once_all_succeed(pg_url: str) -> None:
    # Separate processes, like daemons started together (Alembic's context is per process).
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, pg_url],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    outcomes = [(process.wait(timeout=120), process.communicate()[1]) for process in processes]
    assert [code for code, _err in outcomes] == [0, 0, 0, 0], [err[-2000:] for _c, err in outcomes]
    engine = create_database_engine(pg_url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert len(versions) == 1
            assert "tickets" in inspect(connection).get_table_names()
    finally:
        engine.dispose()
