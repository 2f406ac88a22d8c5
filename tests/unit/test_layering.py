"""DESIGN.md's layering, checked on the source: the pure packages do no I/O.

``classifier/`` and ``routing/`` take values and return values; mail servers,
the database and the scheduler belong to ``daemon/`` and ``models/``. A stray
import of one of those libraries into a pure package is how I/O creeps into
logic that is meant to be unit-tested without servers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_PACKAGES = ("classifier", "routing")
IO_LIBRARIES = frozenset(
    {
        "imapclient",
        "aiosmtplib",
        "aiosmtpd",
        "sqlalchemy",
        "alembic",
        "apscheduler",
        "daemon",
        "models",
    }
)


def _imported_roots(source: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"), filename=str(source))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", PURE_PACKAGES)
def test_pure_packages_import_no_io_library(package: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & IO_LIBRARIES)
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    offenders = {path: names for path, names in offenders.items() if names}
    assert offenders == {}


@pytest.mark.parametrize("package", ["daemon", "classifier", "routing", "models"])
def test_each_package_declares_its_public_surface(package: str) -> None:
    tree = ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))
    names = {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "__all__" in names
