"""The house style is checked, not hoped for: ruff (lint and format) and mypy.

The checkers are pinned to a minor release in ``pyproject.toml`` (``test``
extra) so a new release's new rules show up as a deliberate upgrade, not as a
red CI run. When a checker is not installed (a bare ``pip install -e .``) the
test says so and skips.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.skip(f"{name} is not installed in this environment (pip install -e '.[test]')")
    return path


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("ruff", ["check", "--no-cache", "."]),
        ("ruff", ["format", "--check", "--no-cache", "."]),
        ("mypy", ["--no-incremental"]),
    ],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_code_is_clean(tool: str, arguments: list[str]) -> None:
    result = subprocess.run(
        [_tool(tool), *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, f"{tool} {' '.join(arguments)}:\n{result.stdout}{result.stderr}"
