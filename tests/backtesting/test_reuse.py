"""Reuse within a process (issue 15): what a what-if takes back from the memos is exactly what
a rebuild gives, the array path of the VaR scenarios is the DataFrame reference, and a
Monte Carlo null does not depend on which other series were tested first."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from test_replay import synthetic_history

from backtesting import memo
from backtesting.coverage import MonteCarloNulls
from backtesting.replay import VarInputs, build_day, replay_books
from backtesting.spec import BacktestSpec
from backtesting.summary import summarise
from governance.parameters import default_parameter_set
from margin_engine.portfolios import select
from margin_engine.var import historical_scenarios

PARAMS = default_parameter_set().to_model_params()


@pytest.fixture(autouse=True)
def _empty_memos():
    memo.clear()
    yield
    memo.clear()


def test_a_null_does_not_depend_on_the_order_lengths_are_asked_for() -> None:
    first = MonteCarloNulls(0.01, np.random.default_rng(5), simulations=199)
    second = MonteCarloNulls(0.01, np.random.default_rng(5), simulations=199)
    a = first.get(250)
    memo.clear()  # simulated again, not taken back from the process's nulls
    second.get(500)  # another length first
    b = second.get(250)
    for name in a.statistics:
        np.testing.assert_array_equal(a.statistics[name], b.statistics[name])
    np.testing.assert_array_equal(a.uniforms, b.uniforms)
    other = MonteCarloNulls(0.01, np.random.default_rng(6), simulations=199).get(250)
    assert not np.array_equal(other.uniforms, a.uniforms)  # the seed still matters


def test_a_later_backtest_takes_back_the_simulated_null() -> None:
    a = MonteCarloNulls(0.01, np.random.default_rng(5), simulations=199).get(250)
    assert MonteCarloNulls(0.01, np.random.default_rng(5), simulations=199).get(250) is a
    assert MonteCarloNulls(0.025, np.random.default_rng(5), simulations=199).get(250) is not a
    assert MonteCarloNulls(0.01, np.random.default_rng(5), simulations=299).get(250) is not a


def test_a_summary_fingerprint_reads_every_value_of_its_series() -> None:
    from backtesting.summary import _content, _fingerprint

    rng = np.random.default_rng(3)
    n = 40
    g = pd.DataFrame(
        {
            "set_label": "a",
            "date": pd.date_range("2024-01-01", periods=n),
            "portfolio": "p",
            "model": "deribit-pm",
            "currency": "BTC",
            "margin": rng.random(n),
            "loss": rng.random(n),
            "breach": rng.random(n) < 0.1,
            "es": rng.random(n),
        }
    )
    baseline = _content(g[["date", "margin"]])
    key = _fingerprint(g, baseline, ("a",), ())
    assert _fingerprint(g.copy(), baseline, ("a",), ()) == key
    changed = [
        g.assign(margin=g["margin"].where(g.index != 7, g["margin"] + 1e-12)),
        g.assign(date=g["date"].where(g.index != 39, g["date"] + pd.Timedelta(days=1))),
        g.assign(breach=~g["breach"]),
        g.assign(es=g["es"].where(g.index != 0, np.nan)),
        g.iloc[:-1],
        g.assign(loss=g["loss"].astype(np.float32)),
    ]
    for other in changed:
        assert _fingerprint(other, baseline, ("a",), ()) != key
    assert _fingerprint(g, _content(g[["date", "loss"]]), ("a",), ()) != key
    assert _fingerprint(g, baseline, ("b",), ()) != key


def _var_inputs(days: int = 400) -> VarInputs:
    h = synthetic_history(days, seed=11)
    returns = np.log(h.close).diff()
    returns.iloc[37, 1] = np.nan  # a missing ETH return: that day drops out of joint scenarios
    iv_changes = np.log(h.iv).diff()
    rng = np.random.default_rng(2)
    cond = pd.DataFrame(0.02 + 0.03 * rng.random(returns.shape), returns.index, returns.columns)
    cond.iloc[50, 0] = 0.0  # no filtered vol for BTC that day: it drops out too
    nxt = pd.DataFrame(0.02 + 0.03 * rng.random(returns.shape), returns.index, returns.columns)
    return VarInputs(returns, iv_changes, cond, nxt)


@pytest.mark.parametrize("method", ["historical", "filtered-historical"])
@pytest.mark.parametrize("underlyings", [("BTC",), ("BTC", "ETH"), ("ETH", "SOL", "BTC")])
def test_the_array_scenarios_are_the_dataframe_reference(method: str, underlyings) -> None:
    inputs = _var_inputs()
    cols = list(underlyings)
    for day in inputs.returns.index[[60, 61, 200, 399]]:
        fast = inputs.scenarios(day, underlyings, 2, 120, method)
        past = inputs.returns.loc[:day, cols]
        past = past[
            past.notna().all(axis=1)
            & inputs.cond_vol.reindex(index=past.index, columns=cols).gt(0).all(axis=1)
        ]
        reference = historical_scenarios(
            past,
            2,
            120,
            method=method,
            cond_vol=inputs.cond_vol.loc[:day, cols],
            vol_now=inputs.vol_next.loc[day, cols],
            iv_log_changes=inputs.iv_changes.reindex(columns=cols),
        )
        assert fast.underlyings == reference.underlyings
        assert fast.labels == reference.labels
        np.testing.assert_array_equal(fast.price_moves, reference.price_moves)
        np.testing.assert_array_equal(fast.vol_moves, reference.vol_moves)
        np.testing.assert_array_equal(fast.weights, reference.weights)


def test_a_forecast_missing_its_day_or_underlying_is_refused_as_before() -> None:
    # the forecasts are looked up in an array built once; a day or an underlying the frame
    # lacks still raises pandas' KeyError, never a silent NaN or a neighbour's forecast
    inputs = _var_inputs()
    day = inputs.returns.index[200]
    gap = dataclasses.replace(inputs, vol_next=inputs.vol_next.drop(index=day))
    with pytest.raises(KeyError):
        gap.scenarios(day, ("BTC",), 2, 120, "filtered-historical")
    narrow = dataclasses.replace(inputs, vol_next=inputs.vol_next.drop(columns="ETH"))
    with pytest.raises(KeyError):
        narrow.scenarios(day, ("BTC", "ETH"), 2, 120, "filtered-historical")
    later = inputs.returns.index[201]  # the next day's forecast is found, not the gap's
    np.testing.assert_array_equal(
        gap.scenarios(later, ("BTC",), 2, 120, "filtered-historical").price_moves,
        inputs.scenarios(later, ("BTC",), 2, 120, "filtered-historical").price_moves,
    )


def test_too_short_a_history_is_refused_as_before() -> None:
    inputs = _var_inputs()
    with pytest.raises(ValueError, match="need at least the MPOR"):
        inputs.scenarios(inputs.returns.index[1], ("BTC",), 5, 120, "historical")


def test_memoised_books_are_what_a_rebuild_gives_and_only_for_the_same_inputs() -> None:
    h = synthetic_history(40)
    books = select(("books",))
    days = list(h.days[5:30])
    cold = memo.build_days(h, books, days, 2, realised=True, data="sha-1")
    assert [id(b) for b in memo.build_days(h, books, days, 2, realised=False, data="sha-1")] == [
        id(b) for b in cold
    ]  # the same books without realised P&L: the realised ones serve
    # a subset without realised P&L: served by the books built before, nothing rebuilt
    subset = books[:3]
    again = memo.build_days(h, subset, days, 2, realised=False, data="sha-1")
    assert [id(b) for b in again] == [id(b) for b in cold]
    # ... whose rows for the subset are what building the subset afresh gives
    for served, day in zip(again, days, strict=True):
        built = build_day(h, subset, day, 2)
        mine = np.isin(served.portfolio, [b.name for b in subset])
        np.testing.assert_array_equal(served.pnl[mine], built.pnl)
        np.testing.assert_array_equal(served.portfolio[mine], built.portfolio)
    # other data, or a book that is not the same object (read from a file again), is rebuilt
    other = memo.build_days(h, subset, days, 2, realised=False, data="sha-2")
    assert not {id(b) for b in other} & {id(b) for b in cold}
    copy = dataclasses.replace(books[0], legs=lambda market, f=books[0].legs: f(market))
    rebuilt = memo.build_days(h, (copy,), days, 2, realised=False, data="sha-1")
    assert not {id(b) for b in rebuilt} & {id(b) for b in cold}


def test_a_what_if_re_tests_only_the_series_it_changed_and_gets_the_fresh_numbers() -> None:
    h = synthetic_history(260)
    books = [b for b in select(("books",)) if set(b.underlying_list) <= {"BTC", "ETH"}][:4]
    days = list(h.days[10:250])
    day_books = memo.build_days(h, books, days, 2, realised=True, data="sha")
    spec = BacktestSpec(simulations=199, seed=4)

    def frame(price_range: float) -> pd.DataFrame:
        params = dataclasses.replace(
            PARAMS,
            pm={
                **PARAMS.pm,
                "BTC": dataclasses.replace(PARAMS.pm_for("BTC"), price_range=price_range),
            },
        )
        parts = [
            replay_books(day_books, model, lambda d, p=params: p).assign(set_label="current")
            for model in ("standard", "deribit-pm")
        ]
        return pd.concat(parts, ignore_index=True)

    base = summarise(frame(0.16), 0.99, spec, ["current"], mpor=2)
    changed_frame = frame(0.10)
    served = summarise(changed_frame, 0.99, spec, ["current"], mpor=2)
    memo.clear()
    fresh = summarise(changed_frame, 0.99, spec, ["current"], mpor=2)
    assert list(served["summary"]) == list(fresh["summary"])
    same = [a is b for a, b in zip(base["summary"], served["summary"], strict=True)]
    btc = [
        r["model"] == "deribit-pm" and "BTC" in r["portfolio"].upper() for r in served["summary"]
    ]
    assert any(btc) and not all(same)
    # a series the change did not touch is the memo's object; a BTC PM series is recomputed
    assert same == [not touched for touched in btc]
