"""Small imapclient helpers for tests: put mail in a folder, look at what is there.

Every helper opens its own plaintext connection on loopback, with TCP_NODELAY
(pymap otherwise stalls each round trip on Nagle's algorithm), and logs out
before returning, so tests see the server state and not a session cache.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

__all__ = [
    "ImapAccount",
    "ImapService",
    "append",
    "append_many",
    "connect",
    "folder_flags",
    "folder_uids",
]

Flags = tuple[bytes, ...]


@dataclass(frozen=True)
class ImapAccount:
    """One login on a loopback test IMAP server (plaintext ``port``; TLS when offered)."""

    host: str
    port: int
    username: str
    password: str
    kind: Literal["dovecot", "pymap"]
    ssl_port: int | None = None
    ca_file: Path | None = None


@dataclass(frozen=True)
class ImapService(ImapAccount):
    """The session's IMAP server: its first account plus fresh, empty ones on demand.

    ``new_account()`` is a context manager: with Dovecot it adds a user (kept
    until the session ends); with pymap it starts a private server for the block.
    """

    new_account: Callable[[], AbstractContextManager[ImapAccount]] = field(
        kw_only=True, repr=False, compare=False
    )
    bearer_token: Callable[[str, float], str] | None = field(
        default=None, kw_only=True, repr=False, compare=False
    )
    """Mints an OAuth2 access token (username, lifetime in s) the server accepts; None
    when the server has no XOAUTH2 (pymap)."""


@contextmanager
def connect(
    host: str, port: int, user: str, password: str, *, timeout: float = 10.0
) -> Iterator[IMAPClient]:
    """A logged-in IMAPClient (UIDs on) that is logged out on exit."""
    client = IMAPClient(host, port, ssl=False, use_uid=True, timeout=timeout)
    try:
        client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(user, password)
        yield client
    finally:
        try:
            client.logout()
        except (IMAPClientError, OSError):
            # The connection is already dead or unusable: just close the socket.
            with suppress(OSError):
                client.shutdown()


def _appended_uid(response: bytes) -> int | None:
    """The UID from an ``[APPENDUID validity uid]`` response code, if any."""
    text = response.decode("ascii", "replace")
    marker = "[APPENDUID "
    if marker not in text:
        return None
    fields = text.split(marker, 1)[1].split("]", 1)[0].split()
    return int(fields[1]) if len(fields) == 2 and fields[1].isdigit() else None


def append(
    host: str,
    port: int,
    user: str,
    password: str,
    raw: bytes,
    folder: str = "INBOX",
    flags: Iterable[bytes | str] = (),
) -> int | None:
    """APPEND one message; returns its UID when the server reports it (UIDPLUS)."""
    uids = append_many(host, port, user, password, [raw], folder=folder, flags=flags)
    return uids[0]


def append_many(
    host: str,
    port: int,
    user: str,
    password: str,
    raws: Iterable[bytes],
    folder: str = "INBOX",
    flags: Iterable[bytes | str] = (),
) -> list[int | None]:
    """APPEND many messages over one connection, in order; returns their UIDs (or None)."""
    flag_list = list(flags)
    with connect(host, port, user, password) as client:
        return [_appended_uid(client.append(folder, raw, flags=flag_list)) for raw in raws]


def folder_uids(host: str, port: int, user: str, password: str, folder: str = "INBOX") -> list[int]:
    """All UIDs in ``folder``, ascending."""
    with connect(host, port, user, password) as client:
        client.select_folder(folder, readonly=True)
        return sorted(int(uid) for uid in client.search("ALL"))


def folder_flags(
    host: str, port: int, user: str, password: str, folder: str = "INBOX"
) -> dict[int, Flags]:
    """UID to flags for every message in ``folder`` (``\\Recent`` left out: it is per-session)."""
    with connect(host, port, user, password) as client:
        client.select_folder(folder, readonly=True)
        uids = client.search("ALL")
        if not uids:
            return {}
        fetched = client.fetch(uids, ["FLAGS"])
        return {
            int(uid): tuple(flag for flag in data[b"FLAGS"] if flag != b"\\Recent")
            for uid, data in fetched.items()
        }
