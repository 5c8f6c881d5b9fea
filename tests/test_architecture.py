"""The house's rules (docs/architecture.md): the numeric packages stay free of Dagster and
DuckDB, reports free of Dagster; the application shell's services hold no SQL and no
numerics — the stores hold the SQL, the numeric packages the arithmetic."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

FORBIDDEN = {
    "vocabulary": ("dagster", "duckdb"),
    "calibration": ("dagster", "duckdb"),
    "margin_engine": ("dagster", "duckdb"),
    "backtesting": ("dagster", "duckdb"),
    "reports": ("dagster",),
    "governance": ("dagster",),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_without_forbidden_modules(package: str) -> None:
    forbidden = FORBIDDEN[package]
    code = (
        "import importlib, pkgutil, sys\n"
        f"pkg = importlib.import_module({package!r})\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    importlib.import_module(info.name)\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {forbidden!r})\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{package} pulled in {result.stdout.strip()}"


def test_the_check_would_notice_a_forbidden_import() -> None:
    """The subprocess probe itself works: pipelines.definitions does import dagster."""
    code = "import sys, pipelines.definitions\nprint('dagster' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr


def test_cli_ingest_path_does_not_import_dagster() -> None:
    """`mwb ingest` and `mwb status` start fast: they never load Dagster."""
    code = "import sys, pipelines.cli.app\nprint('dagster' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


ROOT = Path(__file__).resolve().parent.parent
# where SQL lives: the stores, the warehouse's own upkeep, and ingest's validating loaders
SQL_HOMES = ("pipelines/stores/", "pipelines/warehouse/", "pipelines/ingest/")
# where a number may be looked at (validation, array bookkeeping), never modelled
NUMERIC_IMPORTS = {"numpy", "scipy", "statsmodels", "arch", "numba", "math"}
NUMERIC_HOMES = (*SQL_HOMES, "pipelines/sources/")


def _shell_modules() -> list[Path]:
    return sorted((ROOT / "pipelines").rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _sql_calls(source: str) -> list[int]:
    """Lines of ``source`` that call a connection's execute/executemany/register/sql."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("execute", "executemany", "register", "sql")
    ]


def _numeric_imports(source: str) -> list[str]:
    """The numeric libraries ``source`` imports."""
    found = []
    for node in ast.walk(ast.parse(source)):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        found += [n for n in names if n.split(".")[0] in NUMERIC_IMPORTS]
    return found


def test_services_run_no_sql() -> None:
    """Only the stores (and ingest, the warehouse upkeep) execute statements."""
    found = [
        f"{_relative(path)}:{line}"
        for path in _shell_modules()
        if not _relative(path).startswith(SQL_HOMES)
        for line in _sql_calls(path.read_text())
    ]
    assert not found, f"SQL outside the stores: {found}"


def test_services_hold_no_numerics() -> None:
    """The shell imports no numeric library: model arithmetic, statistics and margin dispatch
    live in calibration, margin_engine and backtesting."""
    found = [
        f"{_relative(path)} {name}"
        for path in _shell_modules()
        if not _relative(path).startswith(NUMERIC_HOMES)
        for name in _numeric_imports(path.read_text())
    ]
    assert not found, f"numerics in the application shell: {found}"


def test_the_source_checks_would_notice() -> None:
    """The probes find a planted statement and planted imports, and nothing in clean code."""
    planted = "import numpy as np\nfrom scipy import stats\ncon.execute('SELECT 1')\n"
    assert _sql_calls(planted) == [3]
    assert _numeric_imports(planted) == ["numpy", "scipy"]
    assert _sql_calls("x = 1\n") == [] and _numeric_imports("import json\n") == []
