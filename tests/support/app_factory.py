"""Build a real Application (SQLite or PostgreSQL) for integration tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.app import Application
from daemon.settings import Settings

__all__ = ["TEST_SECRET", "activate_model", "build_app", "mailbox_settings", "train_small_model"]

TEST_SECRET = "test-secret-0123456789abcdef0123456789"


def mailbox_settings(account: Any, *, name: str = "support", **overrides: Any) -> dict[str, Any]:
    """A ``[[mailboxes]]`` entry for a test IMAP account (plaintext on loopback)."""
    entry: dict[str, Any] = {
        "name": name,
        "host": account.host,
        "port": account.port,
        "tls": "none",
        "username": account.username,
        "password_env": f"TEST_IMAP_PASSWORD_{name.upper()}",
        "folder": "INBOX",
        "after": "move:Processed",
        "address": "support@example.com",
        "poll_interval": 0.5,
    }
    entry.update(overrides)
    return entry


def build_app(
    db_url: str,
    monkeypatch: Any,
    *,
    mailboxes: list[tuple[Any, dict[str, Any]]] = (),  # type: ignore[assignment]
    clock: Callable[[], datetime] | None = None,
    base_dir: Path | None = None,
    **sections: Any,
) -> Application:
    """An Application on ``db_url``, with secrets set in the environment via ``monkeypatch``."""
    monkeypatch.setenv("COMPLAINTD_SECRET", TEST_SECRET)
    boxes = []
    for account, entry in mailboxes:
        if entry.get("password_env"):
            monkeypatch.setenv(entry["password_env"], account.password)
        boxes.append(entry)
    settings = Settings.model_validate(
        {
            "base_dir": base_dir or Path.cwd(),
            "database": {"url": db_url},
            "mailboxes": boxes,
            "intake": {
                "reconnect_initial_delay": 0.2,
                "reconnect_max_delay": 1.0,
                "aliases": ["support@example.com"],
            },
            # Training the default model takes seconds; tests that need it ask for it.
            "classifier": {"train_on_first_run": False},
            **sections,
        }
    )
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return Application.build(settings, **kwargs)


def fixed_clock(when: datetime | None = None) -> Callable[[], datetime]:
    """A clock that always answers ``when`` (default 2026-11-02 10:00 UTC)."""
    moment = when or datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    return lambda: moment


def train_small_model() -> object:
    """A model trained on a slice of training_data/ (every 3rd example), in seconds."""
    from classifier import default_training_files, load_examples, train_model

    examples = load_examples(default_training_files())[::3]
    return train_model(examples, seed=0, cv_folds=2, progress=False)


def activate_model(app: Application, model: object, folder: Path) -> None:
    """Store ``model`` in ``folder``, make it the active version and load it into ``app``."""
    from daemon.model_registry import ModelRegistry

    with app.sessions() as session:
        registry = ModelRegistry(session, folder)
        row = registry.store(model)  # type: ignore[arg-type]
        registry.activate(row.version)
        session.commit()
    app.classifier.refresh(force=True)
