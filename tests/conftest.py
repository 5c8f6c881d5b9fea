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
