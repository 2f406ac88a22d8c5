"""Settings: one TOML file loaded once into one typed object.

Secrets never live only in the TOML: each secret names an environment variable
(``*_env``) or a file (``*_file``), or a command that prints a token
(``oauth2_token_command``). They are resolved at start, so a missing secret
fails early with a clear message, and they are held as ``SecretStr`` so a
stray ``repr`` or log line cannot show them.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import subprocess
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from daemon.errors import ConfigError
from daemon.logging_setup import redact_in_logs
from daemon.outbox import OutboxSettings
from routing.config import ROUTING_SECTIONS, RoutingConfig, routing_config_from_document

__all__ = [
    "CONFIG_ENV",
    "ClassifierSettings",
    "DatabaseSettings",
    "IntakeSettings",
    "MailboxSettings",
    "SchedulerSettings",
    "SecuritySettings",
    "Settings",
    "SmtpSettings",
    "load_settings",
    "resolve_secret",
    "settings_from_document",
]

CONFIG_ENV = "COMPLAINTD_CONFIG"
_AFTER_PATTERN = re.compile(r"^(flag(:[^\s()\[\]{}%*\"\\]+)?|move:.+)$")
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Section(BaseModel):
    # Unknown keys are almost always typos; reporting them beats ignoring them.
    model_config = ConfigDict(extra="forbid", frozen=True)


class _SecretSource(_Section):
    """Where one secret comes from: an environment variable or a file."""

    password_env: str | None = None
    password_file: Path | None = None


class DatabaseSettings(_Section):
    """``[database]``: where tickets live."""

    url: str = "sqlite:///var/complaintd.db"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _check_no_password(cls, value: str) -> str:
        # Secrets never live in the TOML; libpq (and so psycopg) reads the
        # password from PGPASSWORD or a password file on its own.
        authority = value.partition("://")[2].partition("/")[0]
        credentials, at, _host = authority.rpartition("@")
        if at and ":" in credentials:
            raise ValueError(
                "must not contain a password: set PGPASSWORD in the environment "
                "or use a password file (PGPASSFILE, ~/.pgpass)"
            )
        return value


class MailboxSettings(_SecretSource):
    """One ``[[mailboxes]]`` entry: an IMAP folder the daemon reads."""

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 993
    tls: Literal["ssl", "starttls", "none"] = "ssl"
    ca_file: Path | None = None
    """Extra CA bundle to trust (a private CA); the system store is used otherwise."""
    username: Annotated[str, Field(min_length=1)]
    oauth2_token_command: str | None = None
    folder: str = "INBOX"
    after: str = "move:Processed"
    address: str
    """The support address this mailbox receives (used to recognise our own mail)."""
    idle: bool = True
    """Use IMAP IDLE when the server offers it; poll otherwise."""
    poll_interval: Annotated[float, Field(gt=0)] = 30.0
    idle_timeout: Annotated[float, Field(gt=0, le=29 * 60)] = 24 * 60.0
    """Re-issue IDLE this often; RFC 2177 servers may drop an IDLE after 30 minutes."""
    resync_interval: Annotated[float, Field(gt=0)] = 60.0
    """Search at least this often even in IDLE: the most a missed notification can cost."""

    @field_validator("after")
    @classmethod
    def _check_after(cls, value: str) -> str:
        if not _AFTER_PATTERN.match(value):
            raise ValueError('must be "flag", "flag:<keyword>" or "move:<folder>"')
        return value

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        if "@" not in value or any(ch.isspace() for ch in value):
            raise ValueError("must be a plain email address like support@example.com")
        return value.lower()

    @model_validator(mode="after")
    def _check_auth_and_tls(self) -> MailboxSettings:
        sources = [self.password_env, self.password_file, self.oauth2_token_command]
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "set exactly one of password_env, password_file or oauth2_token_command"
            )
        if self.tls == "none" and not _is_loopback(self.host):
            raise ValueError('tls = "none" is allowed for loopback hosts only')
        return self

    @property
    def move_target(self) -> str | None:
        """The folder processed mail moves to, or None when it is flagged instead."""
        return self.after.split(":", 1)[1] if self.after.startswith("move:") else None

    @property
    def processed_flag(self) -> str:
        """The flag set on processed mail in ``flag`` mode (``\\Seen`` by default)."""
        _, _, keyword = self.after.partition(":")
        return keyword if self.after.startswith("flag:") else "\\Seen"


class SmtpSettings(_SecretSource):
    """``[smtp]``: how outgoing mail leaves (used by the outbox)."""

    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    tls: Literal["ssl", "starttls", "none"] = "starttls"
    ca_file: Path | None = None
    username: str | None = None
    from_address: str

    @model_validator(mode="after")
    def _check_auth_and_tls(self) -> SmtpSettings:
        if self.username and not (self.password_env or self.password_file):
            raise ValueError("username is set: also set password_env or password_file")
        if self.password_env and self.password_file:
            raise ValueError("set only one of password_env or password_file")
        if self.tls == "none" and not _is_loopback(self.host):
            raise ValueError('tls = "none" is allowed for loopback hosts only')
        return self


class SecuritySettings(_Section):
    """``[security]``: the server secret that signs the references in our mail."""

    secret_env: str | None = "COMPLAINTD_SECRET"  # noqa: S105 - a variable name, not a secret
    secret_file: Path | None = None
    ticket_prefix: Annotated[str, Field(pattern=r"^[A-Z]{2,6}$")] = "CMP"
    message_id_domain: str = "complaintd.invalid"
    """The right-hand side of our Message-IDs; set it to your support domain."""


class IntakeSettings(_Section):
    """``[intake]``: limits and batching of the IMAP reader."""

    max_message_bytes: Annotated[int, Field(gt=0)] = 64 * 1024 * 1024
    fetch_batch_bytes: Annotated[int, Field(gt=0)] = 16 * 1024 * 1024
    fetch_batch_messages: Annotated[int, Field(gt=0, le=5000)] = 200
    reconnect_initial_delay: Annotated[float, Field(gt=0)] = 1.0
    reconnect_max_delay: Annotated[float, Field(gt=0)] = 300.0
    aliases: list[str] = []
    """Other addresses of ours (aliases delivering into a mailbox): never customers."""

    @field_validator("aliases")
    @classmethod
    def _check_aliases(cls, value: list[str]) -> list[str]:
        for address in value:
            if "@" not in address or any(ch.isspace() for ch in address):
                raise ValueError(f"{address!r} is not a plain email address")
        return [address.lower() for address in value]


class ClassifierSettings(_Section):
    """``[classifier]``: where models live and when to abstain."""

    model_dir: Path = Path("var/models")
    """Versioned model folders; share it between hosts that share a database."""
    abstain_below: Annotated[float, Field(ge=0, le=1)] = 0.35
    """Below this category confidence the ticket is ``unclassified`` (human triage)."""
    reload_interval: Annotated[float, Field(gt=0)] = 30.0
    """Seconds between checks for a newly activated model (hot swap, no restart)."""
    train_on_first_run: bool = True
    """Train the default model from training_data/ when no model is active yet."""


class SchedulerSettings(_Section):
    """``[scheduler]``: the escalation sweep and housekeeping (APScheduler, jobs in memory)."""

    sweep_interval_seconds: Annotated[float, Field(ge=0.2, le=3600)] = 30.0
    """Seconds between escalation sweeps; the scheduler also wakes at the next deadline."""
    sweep_batch_size: Annotated[int, Field(ge=1, le=5000)] = 100
    """Tickets claimed per sweep transaction."""
    housekeeping_interval_minutes: Annotated[float, Field(gt=0)] = 10.0
    """How often resolved tickets past the reopen window are closed."""
    mailbox_lock_retry_seconds: Annotated[float, Field(gt=0)] = 5.0
    """PostgreSQL: how often a standby instance tries to take over a mailbox."""


class LoggingSettings(_Section):
    """``[logging]``."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    """The whole configuration, loaded once at start."""

    database: DatabaseSettings = DatabaseSettings()
    mailboxes: list[MailboxSettings] = []
    smtp: SmtpSettings | None = None
    security: SecuritySettings = SecuritySettings()
    intake: IntakeSettings = IntakeSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    outbox: OutboxSettings = OutboxSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    logging: LoggingSettings = LoggingSettings()
    base_dir: Path = Path()
    """Folder relative paths in the file are resolved against (the config's folder)."""
    routing_config: RoutingConfig | None = None
    """Teams, tiers, calendars, SLA policies, rules and templates (top-level TOML sections)."""

    @property
    def routing(self) -> RoutingConfig:
        """The routing configuration, or the built-in default when the file has none."""
        if self.routing_config is not None:
            return self.routing_config
        return routing_config_from_document({})

    @model_validator(mode="after")
    def _check_unique_mailboxes(self) -> Settings:
        names = [box.name for box in self.mailboxes]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"mailbox names must be unique; repeated: {', '.join(duplicates)}")
        return self

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every address mail from which is our own (never a customer)."""
        addresses = {box.address for box in self.mailboxes} | set(self.intake.aliases)
        if self.smtp is not None:
            match = re.search(r"[^<>\s]+@[^<>\s]+", self.smtp.from_address)
            if match:
                addresses.add(match.group(0).lower())
        return frozenset(addresses)

    def database_url(self) -> str:
        """The database URL with a relative SQLite path resolved against ``base_dir``."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            path = url[len(prefix) :]
            if path and path != ":memory:":
                return prefix + str((self.base_dir / path).resolve())
        return url

    def resolve_path(self, path: Path) -> Path:
        """A path from the file, relative to the config's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def _format_location(location: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in location:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif not item.startswith(("function-", "model-")):
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(top level)"


def _problems_from(error: ValidationError) -> list[str]:
    problems = []
    for detail in error.errors():
        message = detail["msg"].removeprefix("Value error, ")
        if detail["type"] == "extra_forbidden":
            message = "unknown key (is it misspelt?)"
        problems.append(f"{_format_location(tuple(detail['loc']))}: {message}")
    return problems


def load_settings(path: Path | None) -> Settings:
    """Read and validate the TOML file at ``path`` (defaults only when None).

    Raises :class:`ConfigError` listing every problem as ``key: what is wrong``.
    """
    if path is None:
        return Settings(base_dir=Path.cwd())
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: cannot be read ({exc})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: not valid TOML ({exc})"]) from None
    return settings_from_document(document, base_dir=path.resolve().parent)


def settings_from_document(document: dict[str, Any], *, base_dir: Path) -> Settings:
    """Validate a parsed configuration: the daemon's sections and the routing sections.

    Both halves are validated even when one fails, so every problem is
    reported at once with its key path.
    """
    routing_part = {key: document[key] for key in ROUTING_SECTIONS if key in document}
    daemon_part = {key: value for key, value in document.items() if key not in ROUTING_SECTIONS}
    problems: list[str] = []
    settings: Settings | None = None
    routing: RoutingConfig | None = None
    try:
        settings = Settings.model_validate({**daemon_part, "base_dir": base_dir})
    except ValidationError as exc:
        problems.extend(_problems_from(exc))
    try:
        routing = routing_config_from_document(routing_part)
    except ValidationError as exc:
        problems.extend(_problems_from(exc))
    if problems or settings is None:
        raise ConfigError(problems)
    return settings.model_copy(update={"routing_config": routing})


def resolve_secret(
    key: str,
    *,
    env: str | None,
    file: Path | None,
    command: str | None = None,
    base_dir: Path = Path(),
) -> SecretStr:
    """Fetch one secret from its source; raise :class:`ConfigError` naming ``key`` if absent."""
    if env is not None:
        value = os.environ.get(env)
        if not value:
            raise ConfigError([f"{key}: environment variable {env} is not set or empty"])
        return _secret(value)
    if file is not None:
        secret_path = file if file.is_absolute() else base_dir / file
        try:
            value = secret_path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"{key}: cannot read {secret_path} ({exc.strerror})"]) from None
        if not value:
            raise ConfigError([f"{key}: {secret_path} is empty"])
        return _secret(value)
    if command is not None:
        return _run_token_command(key, command)
    raise ConfigError([f"{key}: no secret source configured"])


def _run_token_command(key: str, command: str) -> SecretStr:
    try:
        # The admin's own command line from their config file, run without a shell.
        completed = subprocess.run(
            shlex.split(command),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError([f"{key}: token command failed to run ({exc})"]) from None
    token = completed.stdout.strip()
    if completed.returncode != 0 or not token:
        # stderr may describe the failure; stdout may hold a partial token, never shown.
        raise ConfigError(
            [f"{key}: token command exited {completed.returncode} without printing a token"]
        )
    return _secret(token, rotating=True)


def _secret(value: str, *, rotating: bool = False) -> SecretStr:
    redact_in_logs(value, rotating=rotating)
    return SecretStr(value)
