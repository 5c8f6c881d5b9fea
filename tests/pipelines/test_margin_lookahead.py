"""``mwb margin`` VaR/ES without look-ahead (issue 12): a snapshot taken at 05:14 on D uses
closes up to D − 1, and a market far past its history says so."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from books_for_pipeline import positions_file

from margin_engine.market import MarketSnapshot
from pipelines.ingest import load_file
from pipelines.margin import read_positions, run_margin
from pipelines.settings import load_settings
from pipelines.warehouse import connect

SNAPSHOT = "2024-06-10T05:14:00Z"


@pytest.fixture
def warehouse(tmp_path, shared_data):
    settings = load_settings(tmp_path / "home")
    con = connect(settings.warehouse_path)
    prices = pd.read_csv(shared_data / "prices/binance_spot_daily.csv")
    prices = prices[prices["asset"].isin(["BTC", "ETH"]) & (prices["date"] <= "2024-06-12")]
    prices.to_csv(tmp_path / "prices.csv", index=False)
    load_file(con, tmp_path / "prices.csv")
    yield settings, con, tmp_path
    con.close()


def _market(at: str) -> MarketSnapshot:
    return MarketSnapshot.from_json(
        {
            "as_of": at,
            "index": {"BTC": 69_500.0, "ETH": 3_700.0},
            "default_iv": {"BTC": 0.5, "ETH": 0.6},
        }
    )


def _margins(settings, con, tmp_path, at: str, model: str = "var") -> tuple[list[float], list[str]]:
    frame = read_positions(positions_file(tmp_path))
    run = run_margin(
        frame, model, _market(at), con=con, preference=settings.market.source_preference
    )
    return [a["initial_margin"] for a in run.payload()["accounts"]], run.market_notes


@pytest.mark.parametrize("model", ["var", "es"])
def test_a_morning_snapshot_does_not_see_that_days_close(warehouse, model) -> None:
    settings, con, tmp_path = warehouse
    before, notes = _margins(settings, con, tmp_path, SNAPSHOT, model)
    assert any("closes up to 2024-06-09" in n for n in notes)
    # deleting the close of the snapshot's own day changes nothing ...
    con.execute("DELETE FROM market.prices WHERE date = DATE '2024-06-10'")
    assert _margins(settings, con, tmp_path, SNAPSHOT, model)[0] == before
    # ... while the day before is history the margin rests on
    con.execute("DELETE FROM market.prices WHERE date = DATE '2024-06-09'")
    assert _margins(settings, con, tmp_path, SNAPSHOT, model)[0] != pytest.approx(before)


def test_a_market_far_past_its_history_is_flagged(warehouse) -> None:
    settings, con, tmp_path = warehouse
    _, notes = _margins(settings, con, tmp_path, "2026-03-30T05:14:23Z")
    assert any("warning: the price history ends 2024-06-12" in n and "stale" in n for n in notes)
    _, fresh = _margins(settings, con, tmp_path, "2024-06-13T05:00:00Z")
    assert not any("stale" in n for n in fresh)
    assert json.dumps(fresh)  # plain strings
