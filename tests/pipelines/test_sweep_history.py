"""Sweeps of the history models (issue 16: ``mwb sweep … [--model …]``): VaR/ES and Monte
Carlo margin over a range of a ``var.*`` parameter, on the rolling volatility a backtest fits
(once for every value), with the same numbers as a backtest of each value and whatever the
number of workers."""

from __future__ import annotations

from datetime import date

import pytest
from helpers import synthetic_warehouse

from backtesting.spec import BacktestSpec
from governance.parameters import default_parameter_set
from pipelines.backtest import ParamSource, run_backtest
from pipelines.compute import dask_client, dask_mapper
from pipelines.errors import BadInputError
from pipelines.settings import ComputeSettings
from pipelines.sweep import run_sweep

BOOKS = ("btc-short-straddle", "eth-short-straddle", "btc-eth-long-short")


def _spec(model: str) -> BacktestSpec:
    return BacktestSpec(
        start=date(2024, 10, 1), end=date(2024, 12, 31), models=(model,), portfolios=BOOKS,
        paths=256,
    )  # fmt: skip


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    settings, con = synthetic_warehouse(tmp_path_factory, "sweep-history-home")
    yield settings, con
    con.close()


def _backtest_point(con, settings, value_set, spec, model):
    run = run_backtest(con, settings, [ParamSource("set", value_set)], spec, store=False)
    daily = run.daily[run.daily["model"] == model]
    capital = (daily["margin"] * daily["fx_usd"]).groupby(daily["date"]).sum()
    return capital, int(daily["breach"].sum()), len(daily)


@pytest.mark.parametrize(
    ("model", "param", "values"),
    [
        ("var", "var.var_confidence", (0.95, 0.975, 0.99)),
        ("mc-es", "var.es_confidence", (0.95, 0.975, 0.99)),
    ],
)
def test_a_history_model_sweep_is_each_values_backtest(warehouse, model, param, values) -> None:
    settings, con = warehouse
    current = default_parameter_set()
    spec = _spec(model)
    run = run_sweep(con, settings, current, param, values, spec, model=model)
    points = run.payload()["points"]
    capital = [p["mean_capital_usd"] for p in points]
    # a higher confidence asks for more margin: capital rises with the value, strictly
    assert capital == sorted(capital) and capital[0] < capital[-1]
    assert [p["breaches"] for p in points] == sorted((p["breaches"] for p in points), reverse=True)
    # each point is what a plain backtest of its set finds (another path: the warehouse's
    # caches, run_backtest's own day selection and summaries)
    for point, value in zip(points, values, strict=True):
        expected, breaches, rows = _backtest_point(
            con, settings, current.with_changes({param: value}), spec, model
        )
        assert point["mean_capital_usd"] == pytest.approx(expected.mean(), rel=1e-12)
        assert point["peak_capital_usd"] == pytest.approx(expected.max(), rel=1e-12)
        assert point["breaches"] == breaches and point["observations"] == rows


def test_two_workers_give_the_serial_monte_carlo_sweep(warehouse) -> None:
    settings, con = warehouse
    spec = _spec("mc-var")
    args = (con, settings, default_parameter_set(), "var.var_confidence", (0.975, 0.99), spec)
    serial = run_sweep(*args, model="mc-var")
    with dask_client(ComputeSettings(workers=2)) as client:
        parallel = run_sweep(*args, model="mc-var", mapper=dask_mapper(client))
    assert parallel.payload()["points"] == serial.payload()["points"]


def test_an_unknown_model_is_refused_by_name(warehouse) -> None:
    settings, con = warehouse
    with pytest.raises(BadInputError, match=r"^--model: 'nope' is not one of"):
        run_sweep(
            con, settings, default_parameter_set(), "var.var_confidence", (0.99,),
            _spec("var"), model="nope",
        )  # fmt: skip


def test_a_proposal_frontier_of_a_var_parameter_replays_var(warehouse) -> None:
    from types import SimpleNamespace

    from pipelines.report import proposal_frontier

    settings, con = warehouse
    base = default_parameter_set()
    change = SimpleNamespace(path="var.var_confidence", old=0.99, new=0.975)
    spec = BacktestSpec(
        start=date(2024, 10, 1), end=date(2024, 12, 31), models=("deribit-pm", "span", "var")
    )
    frontier = proposal_frontier(con, settings, base, [change], spec)
    assert frontier["model"] == "var" and frontier["parameter"] == "var.var_confidence"
    values = [p["value"] for p in frontier["points"]]
    # one whole change either side; 1.005 is not a confidence, so that point is left out
    assert values == pytest.approx([0.96, 0.9675, 0.975, 0.9825, 0.99, 0.9975])
    capital = [p["mean_capital_usd"] for p in frontier["points"]]
    assert capital == sorted(capital) and capital[0] < capital[-1]
    # the current point is a plain VaR backtest of the set in force on the books
    books = BacktestSpec(**{**spec.__dict__, "models": ("var",), "portfolios": ("books",)})
    expected, breaches, _ = _backtest_point(con, settings, base, books, "var")
    current = frontier["points"][values.index(pytest.approx(0.99))]
    assert current["mean_capital_usd"] == pytest.approx(expected.mean(), rel=1e-12)
    assert current["breaches"] == breaches
    # the MPOR is not swept (the realised losses are the set in force's)
    mpor = SimpleNamespace(path="var.mpor_days", old=2, new=3)
    assert "not all read" in proposal_frontier(con, settings, base, [mpor], spec)["reason"]
