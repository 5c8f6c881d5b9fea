"""Source formats: Deribit DVOL JSON, Binance klines, Parquet, gzip, option snapshots."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from pipelines.errors import BadInputError
from pipelines.ingest import Format, Kind, ReadOptions, load_file
from pipelines.ingest.formats import detect

DAY_MS = 86_400_000


def ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def dvol_reply(points: list[list]) -> dict:
    """A reply of Deribit's public/get_volatility_index_data (documented shape)."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {"data": points, "continuation": None},
        "usIn": 1,
        "usOut": 2,
        "usDiff": 1,
        "testnet": False,
    }


def test_dvol_json_is_converted_to_decimal_daily_iv(con, tmp_path) -> None:
    start = ms(date(2024, 1, 1))
    points = [[start + i * DAY_MS, 60.0 + i, 62.0 + i, 58.0 + i, 61.5 + i] for i in range(3)]
    path = tmp_path / "btc_dvol.json"
    path.write_text(json.dumps(dvol_reply(points)))
    assert detect(path, ReadOptions()) == (Format.DERIBIT_DVOL, Kind.IV)
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (3, 0)
    rows = con.execute(
        "SELECT asset, date, source, tenor_days, iv, iv_open, iv_high, iv_low "
        "FROM market.implied_vol ORDER BY date"
    ).fetchall()
    assert rows[0] == ("BTC", date(2024, 1, 1), "deribit", 30, 0.615, 0.60, 0.62, 0.58)
    assert rows[2][1] == date(2024, 1, 3)


def test_dvol_pages_bad_entries_and_intraday_bars(con, tmp_path) -> None:
    start = ms(date(2024, 1, 1))
    pages = [
        dvol_reply([[start, 60, 61, 59, 60.5], ["x", 1, 2, 3, 4]]),
        dvol_reply(
            [[start + DAY_MS, 60, 61, 59, 60.5], [start + DAY_MS + 3_600_000, 60, 61, 59, 60]]
        ),
    ]
    path = tmp_path / "dvol_eth_pages.json"
    path.write_text(json.dumps(pages))
    report = load_file(con, path)
    assert report.assets[0].asset == "ETH"
    assert (report.rows_read, report.inserted, report.rejected) == (4, 2, 2)
    reasons = con.execute(
        "SELECT record, reason FROM market.rejected_rows ORDER BY record"
    ).fetchall()
    assert reasons[0][0] == 2 and "[timestamp_ms, open, high, low, close]" in reasons[0][1]
    assert reasons[1][0] == 4 and "not midnight UTC" in reasons[1][1]


def test_dvol_without_a_currency_needs_asset(con, tmp_path) -> None:
    path = tmp_path / "volatility.json"
    path.write_text(json.dumps(dvol_reply([[ms(date(2024, 1, 1)), 1, 1, 1, 1]])))
    with pytest.raises(BadInputError, match="pass --asset"):
        load_file(con, path)
    assert load_file(con, path, ReadOptions(asset="ETH")).inserted == 1


def test_dvol_error_reply_and_wrong_shape_are_bad_input(con, tmp_path) -> None:
    path = tmp_path / "btc.json"
    path.write_text(
        json.dumps({"jsonrpc": "2.0", "error": {"code": 10009, "message": "too_many_requests"}})
    )
    with pytest.raises(BadInputError, match="error reply"):
        load_file(con, path)
    path.write_text(json.dumps({"result": {"points": []}}))
    with pytest.raises(BadInputError, match="no result.data list"):
        load_file(con, path)
    path.write_text("{not json")
    with pytest.raises(BadInputError, match="not valid JSON"):
        load_file(con, path)


def kline(day: date, o: float, h: float, lo: float, c: float, *, micro: bool = False) -> str:
    unit = 1000 if micro else 1
    open_time = ms(day) * unit
    close_time = open_time + DAY_MS * unit - 1
    return f"{open_time},{o},{h},{lo},{c},123.5,{close_time},1000.0,42,60.0,500.0,0"


def test_binance_klines_milli_and_microseconds(con, tmp_path) -> None:
    path = tmp_path / "ETHUSDT-1d-2024-01.csv"
    path.write_text(
        kline(date(2024, 1, 1), 2280, 2300, 2250, 2290)
        + "\n"
        + kline(date(2024, 1, 2), 2290, 2400, 2280, 2350, micro=True)
        + "\n"
    )
    assert detect(path, ReadOptions()) == (Format.BINANCE_KLINES, Kind.PRICES)
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (2, 0)
    assert con.execute(
        "SELECT asset, date, source, open, high, low, close, volume FROM market.prices "
        "ORDER BY date"
    ).fetchall() == [
        ("ETH", date(2024, 1, 1), "binance", 2280, 2300, 2250, 2290, 123.5),
        ("ETH", date(2024, 1, 2), "binance", 2290, 2400, 2280, 2350, 123.5),
    ]


def test_binance_klines_with_header_and_non_daily_bars(con, tmp_path) -> None:
    hourly_open = ms(date(2024, 1, 3)) + 3_600_000
    path = tmp_path / "BTCUSDT-1d-2024-01.csv"
    path.write_text(
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
        + kline(date(2024, 1, 1), 42000, 43000, 41000, 42500)
        + "\n"
        + f"{hourly_open},1,2,0.5,1.5,1,{hourly_open + 3_599_999},1,1,1,1,0\n"
    )
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (1, 1)
    reason = con.execute("SELECT reason FROM market.rejected_rows").fetchone()[0]
    assert "not midnight UTC" in reason


def test_binance_klines_need_an_asset(con, tmp_path) -> None:
    path = tmp_path / "klines.csv"
    path.write_text(kline(date(2024, 1, 1), 1, 2, 0.5, 1.5) + "\n")
    with pytest.raises(BadInputError, match="pass --asset"):
        load_file(con, path)
    assert load_file(con, path, ReadOptions(asset="SOL")).assets[0].asset == "SOL"


def test_tidy_parquet_with_a_mistyped_column(con, tmp_path) -> None:
    path = tmp_path / "prices.parquet"
    duckdb.execute(
        f"""COPY (SELECT * FROM (VALUES ('2024-01-01', 'BTC', 1.0, 2.0, 0.5, 1.5, 10.0),
                                         ('not a date', 'BTC', 1.0, 2.0, 0.5, 1.5, 10.0),
                                         ('2024-01-03', 'BTC', 1.0, 2.0, 0.5, 1.5, 10.0))
                 AS t(date, asset, open, high, low, close, volume)) TO '{path}' (FORMAT parquet)"""
    )
    assert detect(path, ReadOptions()) == (Format.TIDY_PARQUET, Kind.PRICES)
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (2, 1)
    record, reason = con.execute("SELECT record, reason FROM market.rejected_rows").fetchone()
    assert record == 2 and "cannot read 'not a date' as DATE" in reason


def test_gzipped_csv_and_extra_columns(con, tmp_path) -> None:
    path = tmp_path / "iv.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("note,date,asset,iv,source\nhello,2024-01-01,BTC,0.5,vendor_x\n")
    report = load_file(con, path)
    assert report.inserted == 1
    assert con.execute("SELECT source, tenor_days FROM market.implied_vol").fetchone() == (
        "vendor_x",
        30,
    )


def test_option_snapshot_rules(con, tmp_path, shared_data) -> None:
    original = (shared_data / "options/deribit_options_snapshot_20260330T051423Z.csv").read_text()
    lines = original.splitlines()
    header, rows = lines[0], lines[1:4]
    broken = rows[1].split(",")
    broken[4] = "straddle"  # option_type
    path = Path(tmp_path / "snap.csv")
    path.write_text("\n".join([header, rows[0], ",".join(broken), rows[2]]) + "\n")
    report = load_file(con, path)
    assert (report.inserted, report.rejected) == (2, 1)
    assert (
        "option_type: must be call or put"
        in con.execute("SELECT reason FROM market.rejected_rows").fetchone()[0]
    )


def test_folder_and_empty_files_are_bad_input(con, tmp_path) -> None:
    with pytest.raises(BadInputError, match="is a folder"):
        load_file(con, tmp_path)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(BadInputError, match="empty"):
        load_file(con, empty)
