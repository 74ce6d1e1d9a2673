"""Import rules from ARCHITECTURE.md, enforced by reading the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = {
    "aiohttp",
    "asyncpg",
    "firebase_admin",
    "twilio",
    "h3",
    "httpx",
    "requests",
    "socket",
}
ADAPTERS = {"geoindex", "notify", "cad_adapters"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _files(package: str) -> list[Path]:
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no sources found for {package}"
    return files


@pytest.mark.parametrize("path", _files("dispatch/domain"), ids=lambda p: p.name)
def test_domain_imports_no_io_library(path: Path) -> None:
    """dispatch/domain stays pure: decisions take inputs and `now`, never touch I/O."""
    assert not (_imports(path) & IO_LIBRARIES), path


@pytest.mark.parametrize("package", sorted(ADAPTERS))
def test_adapter_packages_import_neither_dispatch_nor_each_other(package: str) -> None:
    """geoindex, notify and cad_adapters depend on libraries only, never on our other packages."""
    forbidden = ({"dispatch"} | ADAPTERS) - {package}
    for path in _files(package):
        assert not (_imports(path) & forbidden), path


def test_the_rule_checker_sees_imports() -> None:
    """Guard against a checker that passes because it finds nothing."""
    assert "asyncpg" in _imports(ROOT / "dispatch" / "store" / "volunteers.py") | _imports(
        ROOT / "dispatch" / "service" / "positions.py"
    )
