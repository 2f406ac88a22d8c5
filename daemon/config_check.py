"""Checks of a loaded configuration that need the environment: secrets, files, commands."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from daemon.errors import ConfigError
from daemon.settings import Settings, resolve_secret

__all__ = ["secret_problems"]


def secret_problems(settings: Settings) -> list[str]:
    """Every secret, CA file and token command that is missing, as ``key: what is wrong``."""
    problems: list[str] = []

    def check(key: str, **source: object) -> None:
        try:
            resolve_secret(key, base_dir=settings.base_dir, **source)  # type: ignore[arg-type]
        except ConfigError as exc:
            problems.extend(exc.problems)

    security = settings.security
    check(
        "security.secret",
        env=security.secret_env if security.secret_file is None else None,
        file=security.secret_file,
    )
    for index, box in enumerate(settings.mailboxes):
        key = f"mailboxes[{index}]"
        if box.oauth2_token_command is not None:
            program = shlex.split(box.oauth2_token_command)[:1]
            if not program or shutil.which(program[0]) is None:
                problems.append(f"{key}.oauth2_token_command: program not found")
        else:
            check(f"{key}.password", env=box.password_env, file=box.password_file)
        if box.ca_file is not None and not settings.resolve_path(box.ca_file).is_file():
            problems.append(f"{key}.ca_file: no such file")
    smtp = settings.smtp
    if smtp is not None and (smtp.password_env or smtp.password_file):
        check("smtp.password", env=smtp.password_env, file=smtp.password_file)
    problem = _folder_problem(settings.resolve_path(settings.classifier.model_dir))
    if problem is not None:
        problems.append(f"classifier.model_dir: {problem}")
    return problems


def _folder_problem(folder: Path) -> str | None:
    """Why models could not be written to ``folder`` (created on first use), or None."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} cannot be written by this user"
    return None
