"""Settings: every problem reported as `key: what is wrong`; secrets from env or file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from daemon.config_check import secret_problems
from daemon.errors import ConfigError
from daemon.settings import load_settings, resolve_secret

VALID = """
[database]
url = "sqlite:///var/c.db"

[[mailboxes]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password_env = "TEST_IMAP_PW"
address = "Support@Example.com"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, VALID))
    box = settings.mailboxes[0]
    assert (box.port, box.tls, box.after, box.folder) == (993, "ssl", "move:Processed", "INBOX")
    assert box.address == "support@example.com"
    assert box.move_target == "Processed"
    assert settings.database_url() == f"sqlite:///{tmp_path.resolve() / 'var' / 'c.db'}"
    assert "support@example.com" in settings.own_addresses


def test_example_config_is_valid() -> None:
    text = resources.files("daemon").joinpath("example_config.toml").read_text("utf-8")
    path = Path(__file__).parent / "_example.toml"
    try:
        path.write_text(text, encoding="utf-8")
        settings = load_settings(path)
    finally:
        path.unlink()
    assert settings.mailboxes[0].name == "support"
    assert settings.smtp is not None and settings.smtp.port == 587


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    text = """
[[mailboxes]]
name = "support"
host = "imap.example.com"
port = 99999
tls = "none"
username = "u"
password_env = "X"
password_file = "y"
after = "delete"
address = "not-an-address"
colour = "blue"
"""
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    problems = "\n".join(caught.value.problems)
    assert "mailboxes[0].port: " in problems
    assert 'mailboxes[0].after: must be "flag"' in problems
    assert "mailboxes[0].address: must be a plain email address" in problems
    assert "mailboxes[0].colour: unknown key" in problems


def test_plaintext_only_on_loopback_and_one_secret_source(tmp_path: Path) -> None:
    text = VALID.replace('address = "Support@Example.com"', 'address = "s@x.com"\ntls = "none"')
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    assert any("loopback" in p for p in caught.value.problems)
    loopback = text.replace("imap.example.com", "127.0.0.1")
    assert load_settings(_write(tmp_path, loopback)).mailboxes[0].tls == "none"


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(_write(tmp_path, "[database\n"))
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml")


def test_secret_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SECRET_X", "s3cret")
    assert resolve_secret("k", env="TEST_SECRET_X", file=None).get_secret_value() == "s3cret"
    (tmp_path / "pw").write_text("from-file\n", encoding="utf-8")
    got = resolve_secret("k", env=None, file=Path("pw"), base_dir=tmp_path)
    assert got.get_secret_value() == "from-file"
    assert "s3cret" not in repr(resolve_secret("k", env="TEST_SECRET_X", file=None))
    monkeypatch.delenv("TEST_SECRET_X")
    with pytest.raises(ConfigError, match="k: environment variable TEST_SECRET_X is not set"):
        resolve_secret("k", env="TEST_SECRET_X", file=None)


def test_check_config_reports_missing_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_IMAP_PW", raising=False)
    monkeypatch.delenv("COMPLAINTD_SECRET", raising=False)
    problems = secret_problems(load_settings(_write(tmp_path, VALID)))
    assert (
        "mailboxes[0].password: environment variable TEST_IMAP_PW is not set or empty" in problems
    )
    assert any(p.startswith("security.secret: ") for p in problems)
    monkeypatch.setenv("TEST_IMAP_PW", "pw")
    monkeypatch.setenv("COMPLAINTD_SECRET", "x" * 32)
    assert secret_problems(load_settings(_write(tmp_path, VALID))) == []


def test_oauth2_token_comes_from_the_command(tmp_path: Path) -> None:
    script = tmp_path / "token.sh"
    script.write_text("#!/bin/sh\necho ya29.fresh-token\n", encoding="utf-8")
    script.chmod(0o755)
    token = resolve_secret("k", env=None, file=None, command=str(script))
    assert token.get_secret_value() == "ya29.fresh-token"
    failing = tmp_path / "fail.sh"
    failing.write_text("#!/bin/sh\necho partial-secret\nexit 3\n", encoding="utf-8")
    failing.chmod(0o755)
    with pytest.raises(ConfigError) as caught:
        resolve_secret("k", env=None, file=None, command=str(failing))
    assert "exited 3" in str(caught.value)
    assert "partial-secret" not in str(caught.value)


def test_routing_sections_are_validated_with_the_rest(tmp_path: Path) -> None:
    text = (
        VALID
        + """
[[rules]]
name = "broken"
subject_regex = "(unclosed"

[intake]
fetch_batch_messages = 0
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    problems = "\n".join(caught.value.problems)
    assert "intake.fetch_batch_messages: " in problems
    assert "rules[0]" in problems


def test_no_routing_sections_means_the_default_routing(tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path, VALID))
    assert settings.routing.rules[-1].is_default
    assert settings.routing.tiers.frontline


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://complaintd:hunter22@db.example.com/complaintd",
        "postgresql://u:p%40ss@[::1]:5432/db",
    ],
)
def test_a_password_in_the_database_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, VALID.replace("sqlite:///var/c.db", url)))
    problems = "\n".join(caught.value.problems)
    assert "database.url: must not contain a password" in problems
    assert "hunter22" not in problems and "p%40ss" not in problems


def test_a_database_url_without_password_is_accepted(tmp_path: Path) -> None:
    url = "postgresql+psycopg://complaintd@db.example.com:5432/complaintd?sslmode=require"
    settings = load_settings(_write(tmp_path, VALID.replace("sqlite:///var/c.db", url)))
    assert settings.database_url() == url
