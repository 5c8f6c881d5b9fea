"""Shared fixtures: a throwaway warehouse, the real market data beside the project."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$MWB_SHARED_DATA``): real market data for tests."""
    if SHARED_DATA is None:
        pytest.skip("real market data not found: set MWB_SHARED_DATA to ../shared/data")
    return SHARED_DATA


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty workbench home, exported as MWB_HOME."""
    path = tmp_path / "mwb-home"
    monkeypatch.setenv("MWB_HOME", str(path))
    monkeypatch.delenv("MWB_CONFIG", raising=False)
    return path


@pytest.fixture
def con(tmp_path: Path):
    """A fresh, migrated warehouse connection."""
    from pipelines.warehouse import connect

    connection = connect(tmp_path / "warehouse.duckdb")
    yield connection
    connection.close()


# The slowest files first (longest first): `make test` hands whole files to two workers in
# collection order (`--no-loadscope-reorder`), so a slow file collected last would run alone
# at the end.
SLOW_FILES = (
    "pipelines/test_daily_run.py",
    "e2e/test_real_data_with_gaps.py",
    "pipelines/test_workflows.py",
    "pipelines/test_report.py",
    "pipelines/test_cli_and_settings.py",
    "pipelines/test_governance_cli.py",
    "pipelines/test_backtest.py",
    "pipelines/test_backtest_trust.py",
    "hostile/test_hostile_inputs.py",
    "pipelines/test_compute.py",
    "pipelines/test_sweep.py",
    "pipelines/test_margin_montecarlo.py",
    "pipelines/test_backtest_montecarlo.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.path.as_posix()
        for k, name in enumerate(SLOW_FILES):
            if path.endswith("tests/" + name):
                return k
        return len(SLOW_FILES)

    items.sort(key=rank)  # stable: a file's tests keep their order
