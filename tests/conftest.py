"""Shared fixtures: a throwaway warehouse, the real market data beside the project, the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _shared_data_dir() -> Path | None:
    candidates = [
        os.environ.get("MWB_SHARED_DATA"),
        REPO.parent / "shared" / "data",
        Path("/work/shared/data"),
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / "prices" / "binance_spot_daily.csv").exists():
            return Path(candidate)
    return None


SHARED_DATA = _shared_data_dir()


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


def run_mwb(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real command line in a subprocess (exit codes, stdout and stderr as users see)."""
    env = {**os.environ, "MWB_HOME": str(home)}
    env.pop("MWB_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=REPO,
    )


def table_fingerprint(connection) -> dict[str, tuple]:
    """Row count and an order-independent content hash of every market table."""
    out = {}
    for (name,) in connection.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema IN ('market', 'meta') ORDER BY 1"
    ).fetchall():
        out[name] = connection.execute(
            f"SELECT count(*), coalesce(sum(hash(t)), 0) FROM {name} t"
        ).fetchone()
    return out
