"""Helpers the tests import (kept out of conftest.py, which pytest loads per folder)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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


#: A Deribit option-chain CSV header and one BTC 85000 call row whose name is ``{name}``.
OPTION_HEADER = (
    "timestamp,instrument_name,underlying,underlying_name,option_type,strike,expiry_datetime,"
    "time_to_maturity,bid_price,ask_price,mark_price,mid_price,futures_price,"
    "futures_instrument_name,implied_volatility,delta,vega,open_interest,volume,"
    "bid_ask_spread,currency,index_price,volume_usd"
)
OPTION_ROW = (
    "2024-03-30T05:14:23+00:00,{name},67789,BTC-29MAY24,call,85000.0,2024-05-29T08:00:00+00:00,"
    "0.16,0.011,0.0115,0.0117,0.011,67789,BTC-29MAY24,0.46,0.13,59.3,903.0,52.0,0.0005,BTC,"
    "67580,36431"
)


def synthetic_warehouse(tmp_path_factory, name: str):
    """A fresh home named ``name`` whose warehouse holds the synthetic market: its settings
    and an open connection (the caller closes it)."""
    from pipelines.ingest import load_file
    from pipelines.settings import load_settings
    from pipelines.sources.synthetic import write_synthetic_market
    from pipelines.warehouse import connect

    settings = load_settings(tmp_path_factory.mktemp(name))
    con = connect(settings.warehouse_path)
    for path in write_synthetic_market(tmp_path_factory.mktemp(f"{name}-files")):
        load_file(con, path)
    return settings, con


def real_warehouse(tmp_path_factory, shared_data, name: str):
    """A fresh home named ``name`` whose warehouse holds the real data beside us (Binance daily
    prices, Deribit DVOL): its settings and an open connection (the caller closes it)."""
    from pipelines.ingest import load_file
    from pipelines.settings import load_settings
    from pipelines.warehouse import connect

    settings = load_settings(tmp_path_factory.mktemp(name))
    con = connect(settings.warehouse_path)
    for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
        load_file(con, shared_data / path)
    return settings, con


def reported_proposal(tmp_path_factory, name: str, document: dict, timeout: int = 600):
    """A fresh demo home named ``name`` with ``document`` submitted as a proposal and its
    report written by ``mwb report``: the home, the proposal's id and the command's JSON."""
    from datetime import UTC, datetime

    from governance.proposals import parse_proposal
    from governance.registry import Registry
    from pipelines.demo import run_demo
    from pipelines.settings import load_settings
    from pipelines.sources.synthetic import DEFAULT_SEED
    from pipelines.warehouse import connect

    home = tmp_path_factory.mktemp(name)
    settings = load_settings(home)
    run_demo(settings, DEFAULT_SEED, None)
    con = connect(settings.warehouse_path)
    state = Registry(con).submit(
        parse_proposal(document), actor="test", now=datetime(2026, 1, 2, tzinfo=UTC)
    )
    con.close()
    result = run_mwb("report", state.id, "--json", home=home, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return home, state.id, json.loads(result.stdout)
