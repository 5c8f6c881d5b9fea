"""Backtest verdicts that do not mislead (issue 12): ES backtested as ES, calibrated values held
to their bounds and counted, untestable series reported as such, the stricter of the
close-to-close and OHLC-path zones, the October 2025 stress window."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from backtesting.calibrated import CalibratedPath
from backtesting.spec import DAILY_COLUMNS, BacktestSpec
from backtesting.summary import summarise
from calibration.stress import STRESS_WINDOWS
from governance.parameters import default_parameter_set
from pipelines.backtest import ParamSource, run_backtest
from pipelines.ingest import load_file
from pipelines.settings import load_settings
from pipelines.warehouse import connect
from reports.serialize import plain

DEFAULT = default_parameter_set()


@pytest.fixture(scope="module")
def real(tmp_path_factory, shared_data):
    home = tmp_path_factory.mktemp("bt-trust")
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    for path in (
        "prices/binance_spot_daily.csv",
        "iv/deribit_dvol_daily.csv",
        "funding/binance_btcusdt_funding_daily.csv",
    ):
        load_file(con, shared_data / path)
    yield settings, con
    con.close()


def _summary(run, portfolio: str, model: str) -> dict:
    (found,) = [
        r for r in run.summary_records() if r["portfolio"] == portfolio and r["model"] == model
    ]
    return found


@pytest.mark.slow
def test_es_is_backtested_with_the_acerbi_szekely_tests(real) -> None:
    settings, con = real
    spec = BacktestSpec(
        start=date(2022, 1, 1), end=date(2024, 12, 31), models=("es",), portfolios=("btc-long",)
    )
    run = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    es = _summary(run, "btc-long", "es")["es_tests"]
    assert es["computed"] and es["days"] > 1000 and es["mpor"] == 2
    assert 0 <= es["z1"]["pvalue"] <= 1 and 0 <= es["z2"]["pvalue"] <= 1
    assert es["warning"] == ""
    rows = run.daily[run.daily["model"] == "es"]
    assert (rows["es"] > rows["var_es"]).all()  # ES beyond its own VaR every day
    assert (rows["margin"] >= rows["es"] - 1e-9).all()  # the margin adds the APC buffer
    short = run_backtest(
        con,
        settings,
        [ParamSource("set", DEFAULT)],
        BacktestSpec(
            start=date(2024, 6, 1), end=date(2024, 12, 31), models=("es",), portfolios=("btc-long",)
        ),
    )
    warning = _summary(short, "btc-long", "es")["es_tests"]["warning"]
    assert "little power below 250" in warning


@pytest.mark.slow
def test_calibrated_values_are_clipped_counted_and_their_path_reported(real) -> None:
    """SOL's calibrated price range passes 1.0 in November 2022 (FTX); it used to crash the run
    on the schema bound. Now it is held to (0, 1], every clip is counted and dated, and the
    path's procyclicality is reported."""
    settings, con = real
    spec = BacktestSpec(
        start=date(2022, 10, 1),
        end=date(2023, 1, 31),
        models=("deribit-pm",),
        portfolios=("sol-short-straddle",),
        calibrate=("underlyings.SOL.pm.price_range",),
        scale=3.0,
    )
    run = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    calibrated = run.calibrated["underlyings.SOL.pm.price_range"]
    assert calibrated["raw_max"] > 1.0 and calibrated["max"] <= 1.0
    assert calibrated["clipped_days"] > 0 and calibrated["clipped_first"][0].startswith("2022-11")
    assert calibrated["procyclicality"]["peak_to_trough"] > 1
    summary = _summary(run, "sol-short-straddle", "deribit-pm")
    assert summary["calibrated_clipped_days"] == {
        "underlyings.SOL.pm.price_range": calibrated["clipped_days"]
    }
    assert any("clipped to the policy's bounds" in n for n in run.notes)


def test_a_clip_is_recorded_per_day_and_path() -> None:
    index = pd.date_range("2024-01-01", periods=4)
    raw = pd.DataFrame({"underlyings.X.pm.price_range": [0.2, 1.4, 0.02, 0.3]}, index=index)
    bounds = {"underlyings.X.pm.price_range": (0.05, 1.0)}
    path = CalibratedPath(raw.clip(0.05, 1.0), raw, bounds)
    clips = path.clips
    assert clips["date"].dt.day.tolist() == [2, 3]
    assert clips["clipped_to"].tolist() == [1.0, 0.05]
    assert path.summary()["underlyings.X.pm.price_range"]["clipped_days"] == 2


@pytest.mark.slow
def test_the_basis_trade_is_testable_only_where_funding_is_loaded(real, tmp_path) -> None:
    settings, con = real
    spec = BacktestSpec(
        start=date(2024, 1, 1),
        end=date(2024, 12, 31),
        models=("span",),
        portfolios=("btc-basis-trade",),
    )
    run = run_backtest(con, settings, [ParamSource("set", DEFAULT)], spec)
    summary = _summary(run, "btc-basis-trade", "span")
    assert summary["testable"] and summary["zone"] in ("green", "yellow", "red")
    losses = run.daily[run.daily["model"] == "span"]["loss"]
    assert losses.std() > 0
    assert any("funding from" in n for n in run.notes)
    # the same book on a warehouse without funding: every loss is 0, reported as not testable
    bare = load_settings(tmp_path / "bare")
    bare_con = connect(bare.warehouse_path)
    rows = con.execute("SELECT * FROM market.prices WHERE asset = 'BTC'").df()
    rows.drop(columns="batch_id").to_csv(tmp_path / "btc.csv", index=False)
    load_file(bare_con, tmp_path / "btc.csv")
    flat = run_backtest(bare_con, bare, [ParamSource("set", DEFAULT)], spec)
    bare_con.close()
    summary = _summary(flat, "btc-basis-trade", "span")
    assert not summary["testable"] and summary["zone"] == "not testable"
    assert "cannot tell" in summary["note"]


def _frame(losses_close, losses_path, margin=1.0) -> pd.DataFrame:
    n = len(losses_close)
    frame = pd.DataFrame(
        {
            "set_label": "set",
            "date": pd.date_range("2023-01-01", periods=n),
            "portfolio": "p",
            "model": "span",
            "currency": "USD",
            "margin": margin,
            "maintenance": margin,
            "loss": losses_close,
            "fx_usd": 1.0,
            "notional_usd": 10.0,
            "loss_path": losses_path,
            "var_es": np.nan,
            "es": np.nan,
        }
    )
    frame["breach"] = frame["loss"] > frame["margin"]
    frame["breach_path"] = frame["loss_path"] > frame["margin"]
    return frame[list(DAILY_COLUMNS)]


def test_the_zone_is_the_stricter_of_close_and_path() -> None:
    rng = np.random.default_rng(2)
    close = rng.normal(0, 0.2, 500)
    path = close.copy()
    path[::25] = 5.0  # breaches only intraday: 20 of 500 at 1 % expected
    spec = BacktestSpec(simulations=199)
    (summary,) = [
        plain(s) for s in summarise(_frame(close, path), 0.99, spec, ["set"], mpor=1)["summary"]
    ]
    assert summary["coverage"]["traffic_light"]["zone"] == "green"
    assert summary["coverage_path"]["traffic_light"]["zone"] == "red"
    assert summary["zone"] == "red" and summary["breach_dates_path"][0] == "2023-01-01"


def test_october_2025_is_a_named_stress_window() -> None:
    (window,) = [w for w in STRESS_WINDOWS if w.name == "October 2025"]
    assert window.start <= date(2025, 10, 10) <= date(2025, 10, 11) <= window.end


def test_the_gate_rule_reads_the_strict_zone_es_tests_and_untestable_pairs() -> None:
    from backtesting.records import EsCoverage, PairCoverage, SetCoverage
    from governance.gate import coverage_worse, enactment_gate
    from vocabulary import Zone

    def side(zone, breaches=0, es=None, moved=1.0):
        z = Zone(zone)
        tests = None if es is None else EsCoverage(0.5, 0.5, tuple(es["rejected"]), "")
        return SetCoverage(
            days=250, breaches=breaches, breaches_path=breaches, expected=2.5, zone=z,
            zone_close=z, zone_path=z, testable=z is not Zone.NOT_TESTABLE, pof=None, cc=None,
            tbf=None, rejected=(), rejected_path=(), es=tests, mean_margin_usd=moved,
            worst_shortfall_usd=None, first_breaches=(),
        )  # fmt: skip

    assert coverage_worse(side("green"), side("yellow"))
    assert not coverage_worse(side("not testable"), side("red"))
    assert coverage_worse(
        side("green", es={"rejected": []}), side("green", es={"rejected": ["z2"]})
    )
    assert not coverage_worse(
        side("green", es={"rejected": ["z2"]}), side("green", es={"rejected": ["z2"]})
    )
    rows = [
        PairCoverage(
            "p",
            "es",
            "USD",
            {
                "current": side("green", es={"rejected": []}),
                "proposed": side("green", es={"rejected": ["z1"]}, moved=0.5),
            },
        ),
        PairCoverage(
            "basis",
            "span",
            "USD",
            {"current": side("not testable"), "proposed": side("not testable", moved=0.5)},
        ),
    ]
    assert PairCoverage.from_dict(rows[0].as_dict()) == rows[0]  # the payload round trip
    gate = enactment_gate(rows)
    assert not gate.passed and len(gate.worse) == 1 and gate.worse[0].startswith("p (es")
