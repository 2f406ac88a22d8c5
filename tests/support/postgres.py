"""A private, throwaway PostgreSQL cluster on loopback for integration tests.

``initdb`` into a temporary directory, ``pg_ctl start`` on a free port on
127.0.0.1 with trust authentication, durability switched off (the cluster is
deleted afterwards, so fsync only costs time). As root the server runs as the
``postgres`` OS user, since ``initdb`` and ``postgres`` refuse to run as root.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Self

from daemon.demo_servers import LOOPBACK, ServerStartError, free_port

__all__ = [
    "PostgresCluster",
    "PostgresCommandError",
    "find_postgres_bindir",
    "postgres_available",
    "postgres_unavailable_reason",
]

_OS_USER = "postgres"
_DBNAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Where distributions put server binaries that are not on PATH.
_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")


class PostgresCommandError(ServerStartError):
    """initdb, pg_ctl, createdb or dropdb failed; the message has their output."""


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", str(path))) or (0,)


def find_postgres_bindir() -> Path | None:
    """The directory with ``initdb`` and ``pg_ctl``: PATH first, then the newest install."""
    on_path = shutil.which("initdb")
    if on_path and shutil.which("pg_ctl"):
        return Path(on_path).resolve().parent
    candidates = [
        folder
        for pattern in _BIN_GLOBS
        for folder in Path("/").glob(pattern.lstrip("/"))
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file()
    ]
    return max(candidates, key=_version_key, default=None)


def postgres_unavailable_reason() -> str | None:
    """Why a private cluster cannot be started here, or None when it can."""
    if find_postgres_bindir() is None:
        return (
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH or in "
            "/usr/lib/postgresql/*/bin; install the 'postgresql' package"
        )
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_OS_USER)
        except KeyError:
            return "running as root but there is no 'postgres' OS user to run the server as"
        if not (shutil.which("runuser") or shutil.which("su")):
            return "running as root but neither runuser nor su is available"
    return None


def postgres_available() -> bool:
    """True when :class:`PostgresCluster` can start here."""
    return postgres_unavailable_reason() is None


class PostgresCluster:
    """A PostgreSQL cluster in a temporary directory, reachable on 127.0.0.1.

    ``url`` is an SQLAlchemy URL for the database made at start;
    :meth:`create_database` makes more (one per test keeps tests apart).
    """

    def __init__(self, dbname: str = "complaintd", *, start_timeout: float = 60.0) -> None:
        self.host = LOOPBACK
        self.port = 0
        self.dbname = _checked_dbname(dbname)
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self._bindir: Path | None = None
        self._running = False

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the database created at start."""
        return self.url_for(self.dbname)

    def url_for(self, dbname: str) -> str:
        """SQLAlchemy (psycopg 3) URL of database ``dbname`` in this cluster."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{dbname}"

    @property
    def log_file(self) -> Path:
        """The server log, useful when a test fails."""
        return self._root / "postgres.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("PostgresCluster is not started")
        return self.root

    def start(self) -> None:
        """initdb, start the server, create ``dbname``; raises ServerStartError on failure."""
        if self._running:
            raise ServerStartError("PostgreSQL is already running")
        reason = postgres_unavailable_reason()
        if reason is not None:
            raise ServerStartError(reason)
        self._bindir = find_postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="complaintd-pg-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        root = self._root
        sockets = root / "sock"
        sockets.mkdir()
        if os.geteuid() == 0:
            owner = pwd.getpwnam(_OS_USER)
            for path in (root, sockets):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        self._server_cmd(
            "initdb", "--pgdata", str(root / "data"), "--username", "postgres",
            "--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync",
        )  # fmt: skip
        options = " ".join(
            [
                f"-p {self.port}",
                f"-k {sockets}",
                f"-c listen_addresses={self.host}",
                # A throwaway cluster: durability buys nothing and costs seconds.
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
            ]
        )
        self._server_cmd(
            "pg_ctl", "start", "--pgdata", str(root / "data"), "--log", str(self.log_file),
            "--wait", "--timeout", str(int(self.start_timeout)), "--options", options,
        )  # fmt: skip
        self._running = True
        self.create_database(self.dbname)

    def create_database(self, dbname: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self._client_cmd("createdb", _checked_dbname(dbname))
        return self.url_for(dbname)

    def drop_database(self, dbname: str) -> None:
        """Drop a database, disconnecting any sessions still using it."""
        self._client_cmd("dropdb", "--force", "--if-exists", _checked_dbname(dbname))

    def _client_cmd(self, tool: str, *args: str) -> None:
        # Trust authentication over TCP: clients need not run as postgres.
        base = [str(self._bin(tool)), "-h", self.host, "-p", str(self.port), "-U", "postgres"]
        self._run([*base, *args])

    def _server_cmd(self, tool: str, *args: str) -> None:
        command = [str(self._bin(tool)), *args]
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser:
                command = [runuser, "-u", _OS_USER, "--", *command]
            else:
                command = ["su", _OS_USER, "-s", "/bin/sh", "-c", shlex.join(command)]
        self._run(command)

    def _run(self, command: list[str]) -> None:
        # Output goes to a file, not a pipe: pg_ctl's background server could
        # otherwise hold the pipe open and block us.
        with tempfile.TemporaryFile() as output:
            result = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                # The postgres user may not be allowed into our working directory.
                cwd=self._root,
                timeout=self.start_timeout + 30,
                check=False,
            )
            if result.returncode != 0:
                output.seek(0)
                text = output.read().decode("utf-8", "replace").strip()
                raise PostgresCommandError(
                    f"{shlex.join(command)} failed with exit code {result.returncode}:\n"
                    f"{text}{self._log_tail()}"
                )

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError, RuntimeError):
            tail = self.log_file.read_text(errors="replace")[-2000:].strip()
            if tail:
                return f"\nserver log:\n{tail}"
        return ""

    def _bin(self, tool: str) -> Path:
        if self._bindir is None:
            raise RuntimeError("PostgresCluster is not started")
        return self._bindir / tool

    def stop(self) -> None:
        """Stop the server at once (``-m immediate``) and delete the cluster."""
        if self._running:
            self._running = False
            with contextlib.suppress(ServerStartError, subprocess.TimeoutExpired):
                self._server_cmd(
                    "pg_ctl", "stop", "--pgdata", str(self._root / "data"),
                    "--mode", "immediate", "--wait",
                )  # fmt: skip
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _checked_dbname(dbname: str) -> str:
    """Reject names that would need quoting; test databases never do."""
    if not _DBNAME.fullmatch(dbname):
        raise ValueError(f"unusable database name {dbname!r}")
    return dbname
