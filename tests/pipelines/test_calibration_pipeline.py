"""Calibration against the warehouse: storage with lineage, idempotent re-runs, refusal to
reuse a fit whose data changed, the Dagster assets and checks, and ``mwb calibrate``."""

from __future__ import annotations

import json

import dagster as dg
import pytest
from helpers import run_mwb

from pipelines.calibrate import context, load_chosen_fit, run_calibration
from pipelines.defs.calibration.assets import fit_key
from pipelines.defs.resources import build_resources
from pipelines.errors import BadInputError
from pipelines.ingest import load_file
from pipelines.runs import check_outcomes, materialize, materialize_group
from pipelines.settings import load_settings
from pipelines.sources.synthetic import write_synthetic_market
from pipelines.warehouse import connect

ASSETS = ("BTC", "ETH", "SOL")


@pytest.fixture
def synthetic(home, tmp_path):
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in write_synthetic_market(tmp_path / "syn"):
        load_file(con, path)
    yield settings, con
    con.close()


def test_run_stores_every_piece_with_lineage(synthetic) -> None:
    settings, con = synthetic
    run = run_calibration(con, settings, ASSETS)
    cid = run.context.calibration_id
    assert cid.startswith("2024-12-31-")
    counts = {
        table: con.execute(
            f"SELECT count(*) FROM calib.{table} WHERE calibration_id = ?", [cid]
        ).fetchone()[0]
        for table in (
            "runs",
            "fits",
            "fitted_series",
            "correlations",
            "iv_dynamics",
            "recommendations",
        )
    }
    assert counts["runs"] == 1
    assert counts["fits"] == 3 * 9  # every candidate of every asset
    assert counts["fitted_series"] == 3 * 1000
    assert counts["iv_dynamics"] == 2
    assert counts["correlations"] >= 4  # ewma, ccc, dcc and the March 2020 window at least
    chosen = con.execute(
        "SELECT asset, data_sha256, price_source, library_versions->>'arch' FROM calib.fits "
        "WHERE calibration_id = ? AND chosen ORDER BY asset",
        [cid],
    ).fetchall()
    assert [r[0] for r in chosen] == list(ASSETS)
    assert all(len(r[1]) == 64 and r[2] == "synthetic" and r[3] for r in chosen)
    derivation = json.loads(
        con.execute(
            "SELECT derivation FROM calib.recommendations WHERE calibration_id = ? "
            "AND parameter = 'underlyings.BTC.pm.price_range'",
            [cid],
        ).fetchone()[0]
    )
    assert derivation["inputs"]["data_fingerprint"] == chosen[0][1]
    assert derivation["steps"]


def test_rerun_replaces_rather_than_duplicates(synthetic) -> None:
    settings, con = synthetic
    first = run_calibration(con, settings, ASSETS)
    second = run_calibration(con, settings, ASSETS)
    assert first.context.calibration_id == second.context.calibration_id
    assert con.execute("SELECT count(*) FROM calib.fits").fetchone()[0] == 27
    assert first.recommendations.as_dict() == second.recommendations.as_dict()


def test_a_fit_is_not_reused_after_its_data_changed(synthetic) -> None:
    settings, con = synthetic
    run = run_calibration(con, settings, ("BTC", "ETH"))
    con.execute(
        "UPDATE market.prices SET close = close * 1.01 WHERE asset = 'BTC' AND date = DATE '2024-06-01'"
    )
    with pytest.raises(BadInputError, match="changed since it was fitted"):
        load_chosen_fit(con, settings, run.context, "BTC")


def test_as_of_limits_the_data(synthetic) -> None:
    settings, con = synthetic
    from datetime import date

    ctx = context(con, settings, ASSETS, date(2023, 6, 30))
    run = run_calibration(con, settings, ("BTC",), date(2023, 6, 30))
    assert run.context.calibration_id == ctx.calibration_id
    assert run.volatility["BTC"].chosen.window.end == "2023-06-30"


def test_dagster_calibration_assets_and_checks(home) -> None:
    resources = build_resources(home=str(home), synthetic_only=True)
    assert materialize_group("market_data", resources).success
    for asset in ASSETS:
        result = materialize(dg.AssetSelection.assets(fit_key(asset)), resources)
        assert result.success
        outcomes = {c["check"]: c for c in check_outcomes(result)}
        assert outcomes["persistence_below_one"]["passed"]
        assert outcomes["fit_converged"]["passed"]
    rest = materialize(
        dg.AssetSelection.assets(
            dg.AssetKey(["calib", "correlations"]),
            dg.AssetKey(["calib", "iv_dynamics"]),
            dg.AssetKey(["calib", "recommendations"]),
        ),
        resources,
    )
    assert rest.success
    outcomes = {c["check"]: c for c in check_outcomes(rest)}
    assert outcomes["correlations_psd"]["passed"] and outcomes["dcc_stationary"]["passed"]
    assert "recommendations_within_bounds" in outcomes
    metadata = rest.asset_materializations_for_node("calib__recommendations")[0].metadata
    assert "underlyings.BTC.pm.price_range" in metadata["recommendations"].value


def test_cli_calibrate_json(home, shared_data) -> None:
    assert (
        run_mwb(
            "ingest",
            str(shared_data / "prices/binance_spot_daily.csv"),
            str(shared_data / "iv/deribit_dvol_daily.csv"),
            home=home,
        ).returncode
        == 0
    )
    result = run_mwb("calibrate", "--asset", "BTC", "--asset", "ETH", "--json", home=home)
    assert result.returncode == 0, result.stderr[-2000:]
    payload = json.loads(result.stdout)
    btc = payload["fits"]["BTC"]["chosen"]
    assert 0.8 < btc["persistence"] < 1 and btc["converged"]
    assert {x["series"] for x in btc["ljung_box"]} == {"z", "z^2"}
    assert len(payload["fits"]["BTC"]["candidates"]) == 9
    assert payload["correlation"]["dcc"]["a"] + payload["correlation"]["dcc"]["b"] < 1
    assert {r["parameter"] for r in payload["recommendations"]} >= {
        "underlyings.BTC.pm.price_range",
        "underlyings.ETH.pm.vol_range_up",
        "collateral.ETH.haircut",
        "spreads.BTC-ETH.credit",
    }
    human = run_mwb("calibrate", "--asset", "BTC", home=home)
    assert human.returncode == 0 and "recommended parameters" in human.stdout
    bad = run_mwb("calibrate", "--asset", "NOPE", home=home)
    assert bad.returncode == 2 and "no prices for NOPE" in bad.stderr
    bad_date = run_mwb("calibrate", "--as-of", "yesterday-ish", home=home)
    assert bad_date.returncode == 2 and "--as-of" in bad_date.stderr
