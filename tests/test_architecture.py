"""Design §1: the numerics packages stay free of Dagster and DuckDB; reports free of Dagster."""

import subprocess
import sys

import pytest

FORBIDDEN = {
    "calibration": ("dagster", "duckdb"),
    "margin_engine": ("dagster", "duckdb"),
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
