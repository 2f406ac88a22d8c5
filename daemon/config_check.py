"""Checks of a loaded configuration that need the environment: secrets, files, commands."""

from __future__ import annotations

import shlex
import shutil

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
    return problems
