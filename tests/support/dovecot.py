"""A private Dovecot IMAP server on loopback for integration tests.

Everything (config, sockets, state, logs, mail) lives in one temporary
directory, so it never touches a system Dovecot. Optionally serves implicit
TLS on a second port with a freshly generated self-signed certificate, and
offers STARTTLS on the plain port.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import grp
import hashlib
import hmac
import ipaddress
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from daemon.demo_servers import LOOPBACK, ServerStartError, free_port, wait_for_imap_greeting

__all__ = ["DovecotServer", "dovecot_available", "find_dovecot", "make_self_signed_cert"]

_SEARCH_DIRS = ("/usr/sbin", "/usr/local/sbin", "/usr/bin")
# Dovecot's default auth_username_chars, minus a leading dot: each name is a file name.
_USERNAME = re.compile(r"[A-Za-z0-9_@-][A-Za-z0-9._@-]{0,99}")


def find_dovecot() -> str | None:
    """Path of the ``dovecot`` binary; sbin is searched too, as it is often off PATH."""
    found = shutil.which("dovecot")
    if found:
        return found
    for folder in _SEARCH_DIRS:
        candidate = Path(folder, "dovecot")
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def dovecot_available() -> bool:
    """True when a ``dovecot`` binary exists and runs (``dovecot --version``)."""
    binary = find_dovecot()
    if binary is None:
        return False
    if os.geteuid() == 0:
        # As root the mail processes must run as the unprivileged dovecot user.
        try:
            pwd.getpwnam("dovecot")
        except KeyError:
            return False
    try:
        result = subprocess.run([binary, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.returncode == 0


def make_self_signed_cert(directory: Path, host: str = LOOPBACK) -> tuple[Path, Path] | None:
    """Write a self-signed certificate and key valid for ``host`` and localhost.

    Uses the ``cryptography`` package when importable, else the ``openssl``
    binary. Returns ``(cert, key)``, or None when neither is available. The
    certificate is its own CA, so clients trust it by loading ``cert`` as
    ``cafile``.
    """
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        _cert_with_cryptography(cert, key, host)
    except ImportError:
        if not _cert_with_openssl(cert, key, host):
            return None
    key.chmod(0o600)
    return cert, key


def _cert_with_cryptography(cert_path: Path, key_path: Path, host: str) -> None:
    # Optional: not a test dependency, so mypy may not see it installed.
    from cryptography import x509  # type: ignore[import-not-found,unused-ignore]
    from cryptography.hazmat.primitives import (  # type: ignore[import-not-found,unused-ignore]
        hashes,
        serialization,
    )
    from cryptography.hazmat.primitives.asymmetric import (  # type: ignore[import-not-found,unused-ignore]
        ec,
    )
    from cryptography.x509.oid import NameOID  # type: ignore[import-not-found,unused-ignore]

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "complaintd test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(host))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _cert_with_openssl(cert_path: Path, key_path: Path, host: str) -> bool:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False
    command = [
        openssl, "req", "-x509", "-nodes", "-days", "2",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-subj", "/CN=complaintd test CA",
        "-addext", f"subjectAltName=DNS:localhost,IP:{host}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-keyout", str(key_path), "-out", str(cert_path),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, timeout=30, check=False)
    return result.returncode == 0


class DovecotServer:
    """A private Dovecot on 127.0.0.1 with plaintext logins for the given users.

    ``users`` maps login names to passwords; :meth:`add_user` adds more while
    it runs, usable at once. Each user has its own passwd-file, because
    Dovecot re-reads a changed passwd-file at most once a second. With
    ``tls=True`` (default) and a way to make certificates, ``ssl_port`` serves
    implicit TLS, the plain ``port`` offers STARTTLS, and ``ca_file`` is the
    certificate to trust; otherwise both are None.
    """

    def __init__(
        self,
        users: dict[str, str] | None = None,
        *,
        tls: bool = True,
        start_timeout: float = 15.0,
    ) -> None:
        self.host = LOOPBACK
        self.tls = tls
        self.start_timeout = start_timeout
        self.port = 0
        self.ssl_port: int | None = None
        self.ca_file: Path | None = None
        self.root: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.users: dict[str, str] = {}
        for username, password in (users or {"support": "secret"}).items():
            self.add_user(username, password)
        # XOAUTH2/OAUTHBEARER logins with JWTs Dovecot validates locally (HS256,
        # this key), so OAuth2 is tested without an identity provider.
        self._oauth2_key = secrets.token_bytes(32)

    def bearer_token(self, username: str, lifetime: float = 300.0) -> str:
        """A signed OAuth2 access token (JWT) for ``username``; negative lifetimes are expired."""
        now = int(time.time())
        claims = {"sub": username, "iat": now - 5, "exp": now + int(lifetime)}
        header = _b64url(b'{"alg":"HS256","typ":"JWT"}')
        payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{header}.{payload}".encode()
        signature = hmac.new(self._oauth2_key, signed, hashlib.sha256).digest()
        return f"{header}.{payload}.{_b64url(signature)}"

    @property
    def log_file(self) -> Path:
        """Dovecot's own log, useful when a test fails."""
        return self._root / "dovecot.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("DovecotServer is not started")
        return self.root

    def add_user(self, username: str, password: str) -> None:
        """Add a login; it works for the next authentication, no restart needed."""
        if not _USERNAME.fullmatch(username) or any(c in password for c in ":\r\n"):
            raise ValueError(f"unusable test login {username!r}")
        self.users[username] = password
        if self.root is not None:
            self._write_passwd({username: password})

    def start(self) -> None:
        """Write the config, start ``dovecot -F``, return once it greets."""
        if self._process is not None:
            raise ServerStartError("Dovecot is already running")
        binary = find_dovecot()
        if binary is None:
            raise ServerStartError("the dovecot binary is not installed")
        self.root = Path(tempfile.mkdtemp(prefix="complaintd-dovecot-"))
        try:
            self._prepare()
            # Start-up errors (a bad config) go to stderr before log_path is
            # open; appending them to the log puts them in our error message.
            with self.log_file.open("ab") as errors:
                self._process = subprocess.Popen(
                    [binary, "-F", "-c", str(self._root / "dovecot.conf")],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    # Its own process group, so stop() reaches every child at once.
                    start_new_session=True,
                )
            with self.log_file.open("a+b") as log:
                wait_for_imap_greeting(
                    self.host, self.port, timeout=self.start_timeout,
                    process=self._process, log=log, name="Dovecot",
                )  # fmt: skip
        except BaseException:
            self.stop()
            raise

    def _prepare(self) -> None:
        root = self._root
        # Login processes run as dovenull and must reach the sockets in here.
        root.chmod(0o755)
        owner = _mail_owner()
        mail = root / "mail"
        mail.mkdir()
        os.chown(mail, owner.pw_uid, owner.pw_gid)
        ssl_lines = "ssl = no\n"
        self.ssl_port = self.ca_file = None
        if self.tls:
            pair = make_self_signed_cert(root)
            if pair is not None:
                self.ca_file, key = pair
                self.ssl_port = free_port()
                ssl_lines = f"ssl = yes\nssl_cert = <{self.ca_file}\nssl_key = <{key}\n"
        self.port = free_port()
        self._write_passwd(self.users)
        self._write_oauth2(root)
        (root / "dovecot.conf").write_text(self._config(owner, ssl_lines))

    def _write_oauth2(self, root: Path) -> None:
        # Dovecot looks keys up as <prefix><azp>/<alg>/<kid>, "default" when absent.
        key_file = root / "oauth2-keys" / "default" / "HS256" / "default"
        key_file.parent.mkdir(parents=True)
        key_file.write_text(base64.b64encode(self._oauth2_key).decode())
        for path in (key_file, *key_file.parents):
            path.chmod(0o644 if path == key_file else 0o755)
            if path == root:
                break
        settings = root / "oauth2.conf.ext"
        settings.write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={root}/oauth2-keys/\n"
            "username_attribute = sub\n"
        )
        settings.chmod(0o644)

    def _write_passwd(self, users: dict[str, str]) -> None:
        folder = self._root / "passwd.d"
        folder.mkdir(exist_ok=True)
        for user, pw in users.items():
            # Dovecot lower-cases login names (auth_username_format = %Lu)
            # before it looks them up.
            name = user.lower()
            # Written whole and renamed, so a concurrent auth never reads half a file.
            staging = folder / f".{name}.tmp"
            staging.write_text(f"{name}:{{PLAIN}}{pw}::::::\n")
            staging.chmod(0o644)
            staging.replace(folder / name)

    def _config(self, owner: pwd.struct_passwd, ssl_lines: str) -> str:
        root = self._root
        unprivileged = os.geteuid() != 0
        imaps = (
            f"  inet_listener imaps {{\n    address = {self.host}\n    port = {self.ssl_port}\n"
            "    ssl = yes\n  }\n"
            if self.ssl_port
            else "  inet_listener imaps {\n    port = 0\n  }\n"
        )
        # Without root Dovecot cannot chroot or switch users: run it all as us.
        group = grp.getgrgid(owner.pw_gid).gr_name
        users = (
            f"default_login_user = {owner.pw_name}\ndefault_internal_user = {owner.pw_name}\n"
            f"default_internal_group = {group}\n"
            if unprivileged
            else ""
        )
        chroot = "  chroot =\n" if unprivileged else ""
        return f"""\
# Generated by tests/support/dovecot.py; a private instance for one test run.
base_dir = {root}/run
state_dir = {root}/state
instance_name = complaintd-test-{root.name}
log_path = {self.log_file}
listen = {self.host}
protocols = imap
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2 oauthbearer
# Failed logins are answered at once instead of after 2 s.
auth_failure_delay = 0
{ssl_lines}{users}
first_valid_uid = {owner.pw_uid}
last_valid_uid = {owner.pw_uid}
mail_location = maildir:{root}/mail/%u
mail_fsync = never
# Tests open many connections at once from one address.
mail_max_userip_connections = 100
# Only matters where inotify is unavailable; then change checks poll this often.
mailbox_idle_check_interval = 1 secs

namespace inbox {{
  inbox = yes
  separator = /
}}

passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={owner.pw_uid} gid={owner.pw_gid} home={root}/mail/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {self.host}
    port = {self.port}
  }}
{imaps}{chroot}}}
service anvil {{
  # No growing per-IP delays after failed logins: tests fail logins on purpose.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
{chroot}}}
"""

    def stop(self) -> None:
        """Stop Dovecot (its whole process group) and delete its directory."""
        process, self._process = self._process, None
        if process is not None:
            _stop_group(process)
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


def _mail_owner() -> pwd.struct_passwd:
    """The account mail processes run as: ``dovecot`` for root (uid 0 is refused), else us."""
    if os.geteuid() == 0:
        return pwd.getpwnam("dovecot")
    return pwd.getpwuid(os.geteuid())


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL it if it has not exited after 5 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=5)
    finally:
        # Also reaps stragglers: children that outlive a killed master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
