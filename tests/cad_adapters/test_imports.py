"""cad_adapters depends only on the standard library, defusedxml and itself, plus the
signature libraries in the one module that checks CAP signatures."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import cad_adapters

PACKAGE_DIR = Path(cad_adapters.__file__).resolve().parent
ALLOWED = {"cad_adapters", "defusedxml"}
# Only cap_signature.py: it hands signxml bytes that defusedxml has already parsed.
SIGNATURE_MODULE = "cap_signature.py"
SIGNATURE_LIBRARIES = {"signxml", "cryptography"}


def _imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("path", sorted(PACKAGE_DIR.glob("*.py")), ids=lambda p: p.name)
def test_only_stdlib_defusedxml_and_own_modules(path: Path) -> None:
    """No cad_adapters module imports dispatch, geoindex, notify or any other library."""
    allowed = ALLOWED | (SIGNATURE_LIBRARIES if path.name == SIGNATURE_MODULE else set())
    foreign = {
        root
        for root in _imported_roots(path)
        if root not in allowed and root not in sys.stdlib_module_names
    }
    assert not foreign, f"{path.name} imports {sorted(foreign)}"


def test_xml_only_through_defusedxml() -> None:
    """Only _xml.py parses XML, and it does so through defusedxml (ElementTree for types only)."""
    for path in PACKAGE_DIR.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        for forbidden in ("xml.dom", "xml.sax", "lxml", "minidom", "ElementTree.fromstring"):
            assert forbidden not in source, f"{path.name} uses {forbidden}"
        if path.name != "_xml.py":
            assert "XMLParser" not in source, f"{path.name} builds its own XML parser"
