"""Loading the real market data beside the project (../shared/data)."""

from __future__ import annotations

import json

from helpers import run_mwb

from pipelines.ingest import file_sha256, load_file

PRICES = "prices/binance_spot_daily.csv"
DVOL = "iv/deribit_dvol_daily.csv"
OPTIONS = "options/deribit_options_snapshot_20260330T051423Z.csv"
FUNDING = "funding/binance_btcusdt_funding_daily.csv"

# from ../shared/data/README.md
README_SHA256 = {
    PRICES: "b8b0660f0633d7dab3da9975213a4fe77aa3e343a44aea5f40b539542f59e17b",
    DVOL: "71a68efaedb24020c4e0cca2136028cd05fac855d4878f4cb5799ad76e846306",
    OPTIONS: "91bdb132f0d5f6c4efbf3e5b9d5c83231193ca411202b79f5986aa77d6ed1507",
    FUNDING: "1f88ec08c2c758d5a70b4c7ee2be06463a9abefb92801ae1147da97f10d1bf8e",
}


def test_prices_insert_every_row_once_and_reload_inserts_nothing(con, shared_data) -> None:
    first = load_file(con, shared_data / PRICES)
    assert (first.rows_read, first.inserted, first.rejected, first.conflicts) == (
        20754,
        20754,
        0,
        0,
    )
    second = load_file(con, shared_data / PRICES)
    assert (second.inserted, second.already_present, second.rejected) == (0, 20754, 0)
    assert con.execute("SELECT count(*) FROM market.prices").fetchone()[0] == 20754
    batches = con.execute(
        "SELECT file_sha256, inserted, already_present FROM market.ingest_batches ORDER BY batch_id"
    ).fetchall()
    assert batches == [
        (README_SHA256[PRICES], 20754, 0),
        (README_SHA256[PRICES], 0, 20754),
    ]


def test_asset_ranges_match_the_data_readme(con, shared_data) -> None:
    report = load_file(con, shared_data / PRICES)
    ranges = {a.asset: (a.first, a.last, a.rows) for a in report.assets}
    assert ranges["BTC"] == ("2017-08-17", "2024-12-31", 2694)
    assert ranges["SOL"][0] == "2020-08-11"
    assert set(ranges) == {"BTC", "ETH", "SOL", "XRP", "BNB", "DOGE", "ADA", "TRX", "BCH"}


def test_dvol_options_and_funding_files_load_completely(con, shared_data) -> None:
    dvol = load_file(con, shared_data / DVOL)
    options = load_file(con, shared_data / OPTIONS)
    funding = load_file(con, shared_data / FUNDING)
    assert (dvol.kind, dvol.inserted, dvol.rejected) == ("iv", 2758, 0)
    assert (options.format, options.inserted, options.rejected) == ("deribit-options", 1706, 0)
    assert (funding.kind, funding.inserted, funding.rejected) == ("funding", 1940, 0)
    # DVOL is stored as an annualised decimal, as in the file
    assert (
        con.execute(
            "SELECT iv FROM market.implied_vol WHERE asset = 'BTC' AND date = DATE '2021-03-24'"
        ).fetchone()[0]
        == 0.9504
    )
    # the option snapshot keeps its timestamp (UTC) and maps currency -> asset
    row = con.execute(
        "SELECT asset, snapshot_ts::VARCHAR, expiry::VARCHAR, underlying_price, mark_price "
        "FROM market.option_marks WHERE instrument_name = 'BTC-29MAY26-85000-C'"
    ).fetchone()
    assert row == (
        "BTC",
        "2026-03-30 05:14:23.837264+00",
        "2026-05-29 08:00:00+00",
        67789.18,
        0.01173504,
    )


def test_file_fingerprints_are_the_published_sha256(shared_data) -> None:
    for name, digest in README_SHA256.items():
        assert file_sha256(shared_data / name) == digest


def test_cli_reports_the_counts_and_says_when_nothing_is_new(home, shared_data) -> None:
    first = run_mwb("ingest", str(shared_data / PRICES), "--json", home=home)
    assert first.returncode == 0, first.stderr
    payload = json.loads(first.stdout)
    assert payload["files"][0]["inserted"] == 20754
    second = run_mwb("ingest", str(shared_data / PRICES), home=home)
    assert second.returncode == 0, second.stderr
    assert "already loaded — nothing new" in second.stdout
    assert "20754" in second.stdout
    options = run_mwb(
        "ingest", str(shared_data / DVOL), str(shared_data / OPTIONS), "--json", home=home
    )
    counts = [f["inserted"] for f in json.loads(options.stdout)["files"]]
    assert counts == [2758, 1706]
