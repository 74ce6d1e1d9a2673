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
# asyncpg's query methods (on a connection, pool or pool proxy); ``copy_*`` covers COPY.
QUERY_METHODS = frozenset({"fetch", "fetchrow", "fetchval", "execute", "executemany"})
SQL_HOMES = ("dispatch/store/", "dispatch/db/")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def query_calls(source: str, filename: str = "<source>") -> list[str]:
    """``line: receiver.method`` for each asyncpg query method called in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr in QUERY_METHODS or node.func.attr.startswith("copy_"))
        ):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}")
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


def _outside_the_store() -> list[Path]:
    paths = []
    for package in ("dispatch", *sorted(ADAPTERS)):
        for path in _files(package):
            relative = path.relative_to(ROOT).as_posix()
            if not relative.startswith(SQL_HOMES):
                paths.append(path)
    return paths


@pytest.mark.parametrize("path", _outside_the_store(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_sql_lives_in_the_store(path: Path) -> None:
    """Queries run only in dispatch/store (and dispatch/db): services and handlers call them."""
    relative = path.relative_to(ROOT).as_posix()
    assert query_calls(path.read_text(), relative) == [], relative


HANDLER_WITH_A_QUERY = """
async def get_alert(request):
    async with request.app[keys.POOL].acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM alerts WHERE id = $1", alert_id)
    return web.json_response(dict(row))
"""


def test_the_sql_rule_fails_when_a_handler_queries() -> None:
    """The rule's checker finds a query added to a handler, and misses nothing nearby."""
    assert query_calls(HANDLER_WITH_A_QUERY) == ["4: conn.fetchrow"]
    handlers = (ROOT / "dispatch/web/handlers.py").read_text()
    assert query_calls(handlers) == []
    assert query_calls(handlers + HANDLER_WITH_A_QUERY)
    through_the_pool = "async def f(pool):\n    await pool.execute('DELETE FROM alerts')\n"
    assert query_calls(through_the_pool) == ["2: pool.execute"]
    copying = "async def f(conn):\n    await conn.copy_records_to_table('t', records=[])\n"
    assert query_calls(copying) == ["2: conn.copy_records_to_table"]
    store_call = "async def f(conn):\n    await alert_store.lock_alert(conn, alert_id)\n"
    assert query_calls(store_call) == []


def test_the_sql_rule_sees_the_store() -> None:
    """Guard against a checker that passes because it finds nothing."""
    assert query_calls((ROOT / "dispatch/store/alerts.py").read_text())


def untyped_connections(source: str) -> list[str]:
    """``line: function(parameter)`` for each connection or pool parameter typed ``Any``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
                named = arg.arg in {"conn", "pool"} or arg.arg.endswith(("_conn", "_pool"))
                if named and arg.annotation is not None and ast.unparse(arg.annotation) == "Any":
                    found.append(f"{node.lineno}: {node.name}({arg.arg})")
    return found


@pytest.mark.parametrize("package", ["dispatch/store", "dispatch/db"])
def test_store_connections_are_typed(package: str) -> None:
    """mypy checks the queries' callers only if the connection is not ``Any``."""
    for path in _files(package):
        assert untyped_connections(path.read_text()) == [], path


def test_the_typing_rule_sees_an_any_connection() -> None:
    source = "async def f(conn: Any, n: int) -> None: ...\ndef g(pool: Conn) -> None: ...\n"
    assert untyped_connections(source) == ["1: f(conn)"]
