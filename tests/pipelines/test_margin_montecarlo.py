"""``mwb margin --model mc-es``: Monte Carlo margin from the warehouse's calibration, with no
look-ahead, reproducible by seed whatever the chunking, on a Dask cluster from the command."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from helpers import run_mwb, synthetic_warehouse

from margin_engine.market import MarketSnapshot
from pipelines.calibrate import run_calibration
from pipelines.errors import BadInputError
from pipelines.margin import MonteCarloOptions, run_margin
from pipelines.warehouse import connect
from reports.serialize import dumps

ROWS = pd.DataFrame(
    {
        "account": ["a", "a", "b", "b"],
        "instrument": ["BTC_USDC-PERPETUAL", "ETH_USDC-PERPETUAL", "BTC-PERPETUAL", "ETH-25JUN25-4000-P"],
        "quantity": [1.0, -10.0, 50_000.0, 3.0],
    }
)  # fmt: skip


def _currency(instrument: str) -> str:
    return "USDC" if "_USDC" in instrument else instrument.split("-")[0]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    """A warehouse holding the synthetic market (through 2024-12-31) and its calibration."""
    settings, con = synthetic_warehouse(tmp_path_factory, "mc-home")
    run_calibration(con, settings, ("BTC", "ETH"))
    closes = con.execute(
        "SELECT asset, close FROM market.prices WHERE date = '2024-12-31' AND asset IN ('BTC', 'ETH')"
    ).fetchall()
    yield settings, con, {a: float(c) for a, c in closes}
    con.close()


def _market(index: dict, at: str = "2025-01-01T00:00:00Z") -> MarketSnapshot:
    return MarketSnapshot.from_json({"as_of": at, "index": index, "default_iv": {"ETH": 0.6}})


def _run(calibrated, options: MonteCarloOptions, chunks: int = 1, at: str = "2025-01-01T00:00:00Z"):
    settings, con, index = calibrated
    return run_margin(
        ROWS,
        "mc-es",
        _market(index, at),
        con=con,
        preference=settings.market.source_preference,
        simulation=options,
        chunks=chunks,
    )


def test_margin_from_the_calibration_is_reproducible_and_explained(calibrated) -> None:
    options = MonteCarloOptions(paths=4_096, seed=3)
    one = _run(calibrated, options)
    three = _run(calibrated, options, chunks=3)
    a, b = one.payload(), three.payload()
    assert [r["initial_margin"] for r in a["accounts"]] == [
        r["initial_margin"] for r in b["accounts"]
    ]
    mc = a["monte_carlo"]
    assert mc["calibration_id"].startswith("2024-12-31-") and mc["as_of"] == "2024-12-31"
    assert mc["seed"] == 3 and mc["paths"] == 4_096 and mc["horizon_days"] == 2
    assert set(mc["fit_data_sha256"]) == {"BTC", "ETH"} and mc["residual_days"] >= 500
    # the positions' Euler contributions add up to each row's ES
    for row in a["accounts"]:
        parts = [
            c["es_contribution"]
            for c in mc["contributions"]
            if c["account"] == row["account"] and _currency(c["instrument"]) == row["currency"]
        ]
        assert sum(parts) == pytest.approx(row["components"]["es"], rel=1e-9, abs=1e-9)
        assert row["components"]["es_standard_error"] < 0.2 * row["components"]["es"]
    json.loads(dumps(a))  # strict JSON
    another = _run(calibrated, MonteCarloOptions(paths=4_096, seed=4)).payload()
    assert another["accounts"][0]["initial_margin"] != a["accounts"][0]["initial_margin"]


def test_a_long_btc_position_is_margined_near_its_fitted_volatility(calibrated) -> None:
    _, con, index = calibrated
    sigma = con.execute(
        "SELECT next_vol_annual FROM calib.fits WHERE asset = 'BTC' AND chosen"
    ).fetchone()[0] / math.sqrt(365)
    run = run_margin(
        ROWS.iloc[:1],
        "mc-es",
        _market(index),
        con=con,
        preference=("synthetic",),
        simulation=MonteCarloOptions(paths=8_192, seed=1, innovations="gaussian"),
    )
    es = run.result.components["es"][0]
    # a Gaussian 2-day ES of the fitted volatility, give or take the GARCH step and sampling
    s = sigma * math.sqrt(2)
    z = 2.338  # φ(Φ⁻¹(0.975)) / 0.025
    assert 0.8 * z * s * index["BTC"] < es < 1.25 * z * s * index["BTC"]


def test_the_policys_anti_procyclicality_tools_apply(calibrated) -> None:
    from governance.parameters import default_parameter_set

    settings, con, index = calibrated
    options = MonteCarloOptions(paths=2_048, seed=3)

    def run(**changes):
        params = default_parameter_set().with_changes(changes)
        return run_margin(
            ROWS, "mc-es", _market(index), params, con=con,
            preference=settings.market.source_preference, simulation=options,
        )  # fmt: skip

    plain = run(**{"var.apc": "none"})
    floor = run(**{"var.apc": "floor"})
    # the floor: never below the model's own ES, and equal to the larger of it and the floor's
    for row in floor.payload()["accounts"]:
        parts = row["components"]
        assert row["initial_margin"] == pytest.approx(max(parts["es"], parts["apc_floor"], 0.0))
    base = [r["initial_margin"] for r in plain.payload()["accounts"]]
    floored = [r["initial_margin"] for r in floor.payload()["accounts"]]
    assert all(f >= b for f, b in zip(floored, base, strict=True))
    # stressed weight: the residual rows in the stress windows drawn with their weight;
    # all of it on them moves the margin
    stressed = run(**{"var.apc": "stressed-weight", "var.apc_stress_weight": 0.9})
    assert [r["initial_margin"] for r in stressed.payload()["accounts"]] != base


def test_no_calibration_from_the_market_day_itself(calibrated) -> None:
    # a market at noon on 2024-12-31 may use closes up to 2024-12-30 only: the calibration as
    # of 2024-12-31 read that day's close, so it is refused
    with pytest.raises(BadInputError, match="as of 2024-12-30 or earlier"):
        _run(calibrated, MonteCarloOptions(paths=1_024), at="2024-12-31T12:00:00Z")


def test_cascade_paths_come_from_the_calibrations_joint_model(calibrated) -> None:
    """``mwb cascade --paths`` and the report's bad-debt risk draw from the fitted model of the
    newest calibration before the paths' first day: its next-day volatility sets the first
    day's spread; a day before any calibration gets the stand-in, and says so."""
    from datetime import date

    import numpy as np

    from backtesting.cascade import model_paths
    from governance.parameters import default_parameter_set
    from pipelines.cascade import paths_inputs, population, run_paths

    settings, con, _ = calibrated
    preference = settings.market.source_preference
    drawing = paths_inputs(con, preference, "ETH", date(2025, 1, 1))
    assert drawing.model is not None and drawing.model_about["as_of"] == "2024-12-31"
    sigma = drawing.model.dynamics[0].sigma
    paths, vols = model_paths(drawing.model, drawing.price, 2, 4, 4000, 0)
    assert paths.shape == (4000, 8)
    first_day = np.log(paths[:, 3] / drawing.price)
    # bootstrapped standardised residuals have about unit variance: 4,000 draws put the
    # sample deviation within 10 % of the forecast (heavier tails widen the error bar)
    assert first_day.std() == pytest.approx(sigma, rel=0.1)
    base = default_parameter_set()
    narrow = base.with_changes({"underlyings.ETH.pm.price_range": 0.10})
    people = population("synthetic", 1000, 0, drawing.price, 1 / 0.18)
    payload = run_paths(
        "ETH", date(2025, 1, 1), drawing, [("a", base), ("b", narrow)], people,
        paths=300, days=2, seed=0,
    )  # fmt: skip
    assert "calibration" in payload["innovations"] and payload["model"]["as_of"] == "2024-12-31"
    current, other = payload["sets"]
    assert other["es_99"] >= current["es_99"] - 1e-6
    # no calibration precedes mid-2024: the stand-in, named as such
    early = paths_inputs(con, preference, "ETH", date(2024, 6, 1))
    assert early.model is None
    stand_in = run_paths(
        "ETH", date(2024, 6, 1), early, [("a", base)], people, paths=100, days=1, seed=0
    )
    assert stand_in["innovations"].startswith("a Student-t stand-in")


def test_option_books_along_the_joint_models_paths(calibrated) -> None:
    """``--population books --paths``: the books' bad debt along the model's price and
    implied-vol paths; the same seed gives the same numbers, and the one population is struck
    at the last close before the paths with the IV of that day."""
    from datetime import date

    from governance.parameters import default_parameter_set
    from pipelines.cascade import book_people, paths_inputs, run_paths

    settings, con, index = calibrated
    preference = settings.market.source_preference
    day = date(2025, 1, 1)
    drawing = paths_inputs(con, preference, "ETH", day)
    base = default_parameter_set()
    narrow = base.with_changes({"underlyings.ETH.pm.price_range": 0.10})
    people = book_people(con, preference, "ETH", day, drawing.price, base, accounts=200, seed=3)
    assert people.about["struck"]["price"] == pytest.approx(index["ETH"])
    assert people.about["struck"]["iv_from"] == "2024-12-31"
    runs = [
        run_paths(
            "ETH", day, drawing, [("a", base), ("b", narrow)], people, paths=100, days=3, seed=1
        )
        for _ in range(2)
    ]
    assert runs[0]["sets"] == runs[1]["sets"]
    for s in runs[0]["sets"]:
        assert s["rule"]["model"] == "deribit-pm"
        assert s["var_95"] <= s["es_95"] <= s["es_99"] + 1e-9
    assert runs[0]["accounts"] == 200 and "calibration" in runs[0]["innovations"]


def test_the_command_runs_on_a_local_dask_cluster(calibrated, tmp_path) -> None:
    settings, con, index = calibrated
    con.execute("CHECKPOINT")
    positions = tmp_path / "positions.csv"
    ROWS.to_csv(positions, index=False)
    market = tmp_path / "market.json"
    market.write_text(
        json.dumps({"as_of": "2025-01-01T00:00:00Z", "index": index, "default_iv": {"ETH": 0.6}})
    )
    (settings.home / "config.yaml").write_text("compute:\n  workers: 2\n  chunks: 4\n")
    args = ["margin", "--positions", str(positions), "--market", str(market), "--model", "mc-es"]
    con.close()
    try:
        result = run_mwb(*args, "--paths", "2048", "--seed", "5", "--json", home=settings.home)
        assert result.returncode == 0, result.stderr[-3000:]
        payload = json.loads(result.stdout)
        reader = connect(settings.warehouse_path, read_only=True)
        try:
            direct = _run((settings, reader, index), MonteCarloOptions(paths=2_048, seed=5))
        finally:
            reader.close()
        direct = direct.payload()
        assert [r["initial_margin"] for r in payload["accounts"]] == [
            r["initial_margin"] for r in direct["accounts"]
        ]
        bad = run_mwb(*args, "--sampling", "lucky", home=settings.home)
        assert bad.returncode == 2 and "--sampling: 'lucky'" in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1
        few = run_mwb(*args, "--paths", "10", home=settings.home)
        assert few.returncode == 2 and "--paths" in few.stderr and "Traceback" not in few.stderr
        # importance sampling: asked for by name, recorded with the result, refused where
        # its weights would not be right (filtered-historical rows, the default)
        weighted = run_mwb(
            *args, "--paths", "2048", "--innovations", "student-t", "--importance", "--json",
            home=settings.home,
        )  # fmt: skip
        assert weighted.returncode == 0, weighted.stderr[-3000:]
        assert json.loads(weighted.stdout)["monte_carlo"]["importance_sampling"] is True
        refused = run_mwb(*args, "--importance", home=settings.home)
        assert refused.returncode == 2 and refused.stderr.startswith("error: --importance:")
        assert "filtered" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    finally:
        (settings.home / "config.yaml").unlink()
