"""Source rules of issue 12: series spliced across sources by a documented rule, a foreign
series refused by its levels, intraday implied vols refused in one line, and an option chain's
index and forwards taken as medians."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from helpers import run_mwb, table_fingerprint

from margin_engine.market import MarketSnapshot
from pipelines.calibrate import run_calibration
from pipelines.errors import BadInputError
from pipelines.ingest import ReadOptions, load_file
from pipelines.settings import load_settings
from pipelines.stores import market as history
from pipelines.warehouse import connect

KLINE = "{ms},{o},{h},{l},{c},10,{close_ms},1000,5,5,500,0\n"


def _btc(shared_data) -> pd.DataFrame:
    prices = pd.read_csv(shared_data / "prices/binance_spot_daily.csv")
    return prices[prices["asset"] == "BTC"]


def _klines(path, rows: pd.DataFrame, scale: float = 1.0) -> None:
    lines = []
    for r in rows.itertuples():
        ms = int(pd.Timestamp(r.date, tz="UTC").timestamp() * 1000)
        lines.append(
            KLINE.format(
                ms=ms,
                o=r.open * scale,
                h=r.high * scale,
                l=r.low * scale,
                c=r.close * scale,
                close_ms=ms + 86_400_000 - 1,
            )
        )
    path.write_text("".join(lines))


def test_a_short_file_of_a_preferred_source_is_spliced_into_the_long_series(
    tmp_path, shared_data
) -> None:
    """Years of BTC as a tidy CSV (source `file`) and one month of Binance klines for a later
    month (source `binance`, preferred): calibration uses both, and says so."""
    home = tmp_path / "home"
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    btc = _btc(shared_data)
    long = btc[btc["date"] < "2024-12-01"]
    long.to_csv(tmp_path / "btc.csv", index=False)
    load_file(con, tmp_path / "btc.csv")
    month = btc[btc["date"] >= "2024-12-01"]
    _klines(tmp_path / "BTCUSDT-1d-2024-12.csv", month)
    assert load_file(con, tmp_path / "BTCUSDT-1d-2024-12.csv").inserted == len(month)
    closes, provenance = history.closes(con, "BTC", settings.market.source_preference)
    assert len(closes) == len(btc) and closes.index.is_monotonic_increasing
    assert [(s.source, s.days) for s in provenance.segments] == [
        ("file", len(long)),
        ("binance", len(month)),
    ]
    assert "then binance 2024-12-01..2024-12-31" in provenance.describe()
    run = run_calibration(con, settings, ("BTC",))
    assert run.volatility["BTC"].chosen.window.n_obs == 1000
    assert "binance" in run.sources["BTC"] and "file" in run.sources["BTC"]
    con.close()


def test_a_usd_series_loaded_under_a_usdt_series_name_is_refused_without_force(
    tmp_path, shared_data
) -> None:
    """Closes 0.3 % above the stored series on every overlapping day are another series."""
    home = tmp_path / "home"
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    btc = _btc(shared_data)
    usdt = btc[btc["date"] < "2024-07-01"]
    _klines(tmp_path / "BTCUSDT-1d-a.csv", usdt)
    load_file(con, tmp_path / "BTCUSDT-1d-a.csv")
    usd = btc[btc["date"] >= "2024-01-01"]
    _klines(tmp_path / "BTCUSD-1d-b.csv", usd, scale=1.003)
    before = table_fingerprint(con)
    with pytest.raises(BadInputError, match=r"on 182 of 182 overlapping days.*--force"):
        load_file(con, tmp_path / "BTCUSD-1d-b.csv", ReadOptions(asset="BTC"))
    assert table_fingerprint(con) == before  # nothing loaded, no batch recorded
    con.close()
    refused = run_mwb("ingest", str(tmp_path / "BTCUSD-1d-b.csv"), "--asset", "BTC", home=home)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    forced = run_mwb(
        "ingest",
        str(tmp_path / "BTCUSD-1d-b.csv"),
        "--asset",
        "BTC",
        "--force",
        "--json",
        home=home,
    )
    assert forced.returncode == 0
    (report,) = json.loads(forced.stdout)["files"]
    assert report["conflicts"] == 182 and report["inserted"] == len(usd) - 182


def test_a_corrected_redownload_is_not_a_foreign_series(tmp_path, shared_data) -> None:
    con = connect(tmp_path / "w.duckdb")
    btc = _btc(shared_data)
    btc[btc["date"] < "2024-07-01"].to_csv(tmp_path / "a.csv", index=False)
    load_file(con, tmp_path / "a.csv")
    fixed = btc.copy()
    fixed.loc[fixed["date"] == "2024-03-05", "close"] *= 1.01  # one corrected day
    fixed.to_csv(tmp_path / "b.csv", index=False)
    report = load_file(con, tmp_path / "b.csv")
    assert report.conflicts == 1 and report.inserted == len(btc[btc["date"] >= "2024-07-01"])
    con.close()


def test_intraday_implied_vols_are_refused_in_one_line(tmp_path) -> None:
    home = tmp_path / "home"
    rows = ["date,asset,iv"] + [
        f"2025-01-{d:02d},BTC,{0.5 + 0.01 * h}" for d in range(1, 11) for h in range(24)
    ]
    (tmp_path / "snapshots.csv").write_text("\n".join(rows) + "\n")
    start = int(datetime(2025, 1, 1, tzinfo=UTC).timestamp() * 1000)
    bars = [[start + k * 3_600_000, 50, 51, 49, 50.5] for k in range(72)]
    (tmp_path / "dvol_btc_hourly.json").write_text(json.dumps({"result": {"data": bars}}))
    for name, fragment in (
        ("snapshots.csv", "days hold several implied-vol values"),
        ("dvol_btc_hourly.json", "hold several DVOL bars"),
    ):
        result = run_mwb("ingest", str(tmp_path / name), home=home)
        assert result.returncode == 2, result.stdout
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in result.stderr
    status = json.loads(run_mwb("status", "--json", home=home).stdout)
    assert status["series"] == [] and status["batches"] == 0


def test_the_chain_index_and_forwards_are_medians(shared_data) -> None:
    chain = pd.read_csv(shared_data / "options/deribit_options_snapshot_20260330T051423Z.csv")
    market = MarketSnapshot.from_deribit_chain(chain)
    for currency, rows in chain.groupby("currency"):
        assert market.index[currency] == pytest.approx(rows["index_price"].median())
    # a stale last row cannot move either
    tampered = chain.copy()
    tampered.loc[tampered.index[-1], ["index_price", "underlying"]] = [1.0, 1.0]
    moved = MarketSnapshot.from_deribit_chain(tampered)
    assert moved.index == pytest.approx(market.index, rel=1e-3)
    for underlying, curve in market.forwards.items():
        for expiry, forward in curve.items():
            assert moved.forwards[underlying][expiry] == pytest.approx(forward, rel=1e-3)
    assert date(2026, 3, 30) == market.as_of.date()


def test_a_bad_stored_option_row_is_skipped_with_a_note(shared_data) -> None:
    chain = pd.read_csv(shared_data / "options/deribit_options_snapshot_20260330T051423Z.csv")
    bad = chain.iloc[:3].copy()
    bad.loc[bad.index[0], "instrument_name"] = "GARBAGE"
    bad.loc[bad.index[1], "implied_volatility"] = 0.0
    with pytest.raises(ValueError):
        MarketSnapshot.from_deribit_chain(bad)
    market = MarketSnapshot.from_deribit_chain(bad, skip_invalid=True)
    assert len(market.iv) == 1 and "2 unusable option row(s) left out" in market.notes[0]
    assert "'GARBAGE'" in market.notes[0]
