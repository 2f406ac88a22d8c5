"""Opening an authenticated IMAP connection for one configured mailbox."""

from __future__ import annotations

import imaplib
import logging
import socket
import ssl
from collections.abc import Callable

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from pydantic import SecretStr

from daemon.errors import PermanentError, TransientError
from daemon.settings import MailboxSettings

__all__ = ["IMAP_ERRORS", "ImapAuthError", "connect_mailbox"]

logger = logging.getLogger(__name__)

# Everything a dropped or confused connection can raise: imaplib's abort (the
# idle_check() EOF of imapclient #519), imapclient's own errors, socket errors.
IMAP_ERRORS: tuple[type[BaseException], ...] = (
    imaplib.IMAP4.error,
    imaplib.IMAP4.abort,
    IMAPClientError,
    OSError,
    EOFError,
)


class ImapAuthError(PermanentError):
    """The server refused our credentials; retrying with the same ones will not help soon."""


def _tls_context(settings: MailboxSettings, resolve: Callable[[str], str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if settings.ca_file is not None:
        context.load_verify_locations(cafile=resolve(str(settings.ca_file)))
    return context


def _tune_socket(client: IMAPClient) -> None:
    sock = client.socket()
    # IMAP is chatty and latency-bound: Nagle's algorithm costs ~40 ms a command.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # Keepalive lets a long IDLE notice a peer that vanished without a FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


def connect_mailbox(
    settings: MailboxSettings,
    secret: Callable[[], SecretStr],
    *,
    resolve_path: Callable[[str], str] = str,
    timeout: float = 60.0,
) -> IMAPClient:
    """Connect, secure (SSL or STARTTLS), tune and authenticate; return the client.

    ``secret`` is called at each connect, so a fresh OAuth2 token is fetched
    every time. Raises :class:`ImapAuthError` on refused credentials and
    :class:`TransientError` on anything network-shaped.
    """
    context = _tls_context(settings, resolve_path) if settings.tls != "none" else None
    try:
        client = IMAPClient(
            settings.host,
            port=settings.port,
            use_uid=True,
            ssl=settings.tls == "ssl",
            ssl_context=context if settings.tls == "ssl" else None,
            timeout=timeout,
        )
    except IMAP_ERRORS as exc:
        raise TransientError(f"cannot connect to {settings.host}:{settings.port}: {exc}") from exc
    try:
        _tune_socket(client)
        if settings.tls == "starttls":
            client.starttls(context)
        credential = secret().get_secret_value()
        if settings.oauth2_token_command is not None:
            client.oauth2_login(settings.username, credential)
        else:
            client.login(settings.username, credential)
    except LoginError as exc:
        _close_quietly(client)
        raise ImapAuthError(
            f"mailbox {settings.name}: the server refused the login for {settings.username}"
        ) from exc
    except IMAP_ERRORS as exc:
        _close_quietly(client)
        raise TransientError(f"mailbox {settings.name}: connection failed: {exc}") from exc
    except BaseException:
        _close_quietly(client)
        raise
    return client


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except IMAP_ERRORS:
        logger.debug("ignoring an error while closing a failed connection")
