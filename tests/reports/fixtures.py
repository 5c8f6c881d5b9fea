"""A fixed synthetic proposal, calibration and backtest for report tests: seeded data, fixed
times and versions, so that the rendered Markdown is the same bytes on every run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtesting.replay import (
    MarketHistory,
    build_day,
    replay_books,
    replay_collateral,
    trading_days,
)
from backtesting.spec import DAILY_COLUMNS, DAILY_KEY, BacktestSpec
from backtesting.summary import summarise
from governance.gate import judge
from governance.parameters import default_parameter_set
from margin_engine.portfolios import select
from reports.context import BacktestData, CalibrationData, ProposalData, proposal_context
from reports.serialize import plain

CURRENT = default_parameter_set()
CHANGES = {"collateral.ETH.haircut": 0.08, "underlyings.BTC.pm.price_range": 0.14}
PROPOSED = CURRENT.with_changes(CHANGES)
PORTFOLIOS = ("btc-short-straddle", "eth-iron-condor", "btc-eth-long-short", "eth-collateral")
HOSTILE = "<script>alert(1)</script> {{ 7*7 }} *bold* _it_ [x](http://example.com) | # & <b>"


def history(days: int = 420, seed: int = 21) -> MarketHistory:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2022-01-01", periods=days, freq="D")
    shocks = rng.standard_t(4, size=(days, 3)) * np.array([0.025, 0.032, 0.045])
    close = pd.DataFrame(
        np.array([30_000.0, 2_000.0, 40.0]) * np.exp(np.cumsum(shocks, axis=0)),
        index=index,
        columns=["BTC", "ETH", "SOL"],
    )
    iv = pd.DataFrame(
        {
            "BTC": 0.55 + 0.05 * np.sin(np.arange(days) / 30),
            "ETH": 0.7 + 0.05 * np.cos(np.arange(days) / 25),
            "SOL": np.full(days, 0.9),
        },
        index=index,
    )
    return MarketHistory(close, iv)


def backtest(h: MarketHistory | None = None) -> BacktestData:
    h = h or history()
    portfolios = select(PORTFOLIOS)
    days = trading_days(h, h.days[220].date(), None, 2)
    books = [b for d in days if (b := build_day(h, portfolios, d, 2)) is not None]
    frames = []
    for label, params in (("current", CURRENT), ("proposed", PROPOSED)):
        model_params = params.to_model_params()
        for model in ("standard", "deribit-pm", "span"):
            frames.append(
                replay_books(books, model, lambda d, p=model_params: p).assign(set_label=label)
            )
        frames.append(
            replay_collateral(h, portfolios, days, 2, lambda d, p=model_params: p).assign(
                set_label=label
            )
        )
    daily = pd.concat(frames, ignore_index=True)
    daily = daily[list(DAILY_COLUMNS)].sort_values(list(DAILY_KEY), ignore_index=True)
    spec = BacktestSpec(simulations=199, seed=3)
    summaries = summarise(daily, 0.99, spec, ["current", "proposed"], mpor=2)

    return BacktestData(
        "bt-golden000000",
        {"current": CURRENT.fingerprint, "proposed": PROPOSED.fingerprint},
        days[0].date(),
        days[-1].date(),
        2,
        0.99,
        daily,
        [plain(s) for s in summaries["summary"]],
        "d" * 64,
        {**spec.as_dict(), "start": None, "end": None},
        ["synthetic history for report tests"],
    )


def calibration(h: MarketHistory | None = None, asset_name: str = "BTC") -> CalibrationData:
    h = h or history()
    returns = np.log(h.close).diff().fillna(0.0)
    vol = np.sqrt(returns.pow(2).ewm(alpha=0.06).mean()) * np.sqrt(365.0)
    series = {
        a: pd.DataFrame({"close": h.close[a], "cond_vol_annual": vol[a]}) for a in ("BTC", "ETH")
    }
    derivation = {
        "method": "filtered historical simulation",
        "steps": [
            "q_0.01 of path-worst down moves = -0.07 (log)",
            "price range = max(down, up) = 13.9 %",
        ],
    }
    return CalibrationData(
        "2023-02-25-golden",
        "2023-02-25",
        {
            "confidence": 0.99,
            "mpor_days": 2,
            "lookback_days": 1000,
            "method": "filtered-historical",
            "apc": "buffer",
        },
        [
            {
                "asset": asset_name,
                "model": "GJR-GARCH(1,1)-t",
                "persistence": 0.9512,
                "next_vol_annual": 0.5131,
                "n_obs": 1000,
                "data_sha256": "a" * 64,
            },
            {
                "asset": "ETH",
                "model": "GARCH(1,1)-t",
                "persistence": 0.9433,
                "next_vol_annual": 0.6742,
                "n_obs": 1000,
                "data_sha256": "b" * 64,
            },
        ],
        [
            {
                "parameter": "underlyings.BTC.pm.price_range",
                "value": 0.139,
                "unit": "fraction of index price",
                "derivation": derivation,
            },
            {
                "parameter": "collateral.ETH.haircut",
                "value": 0.0812,
                "unit": "fraction of collateral value",
                "derivation": {
                    "method": "filtered historical simulation",
                    "steps": ["haircut = down move over 2 days"],
                },
            },
            {
                "parameter": "spreads.BTC-ETH.credit",
                "value": 0.45,
                "unit": "fraction",
                "derivation": {},
            },
        ],
        {"method": "dcc", "assets": ["BTC", "ETH"], "matrix": [[1.0, 0.81], [0.81, 1.0]]},
        series,
        [
            {
                "asset": "BTC",
                "source": "synthetic",
                "vol_of_vol": 0.058,
                "spot_vol_corr": -0.41,
                "half_life_days": 18.5,
            }
        ],
        [],
        {"BTC": "a" * 64, "ETH": "b" * 64},
    )


def proposal(
    title: str = "Lower the ETH haircut and the BTC price range",
    motivation: str | None = None,
    author: str = "risk-team",
) -> ProposalData:
    return ProposalData(
        id="P-0123456789ab",
        fingerprint="0123456789ab" + "c" * 52,
        status="submitted",
        kind="change",
        title=title,
        author=author,
        motivation=motivation
        or "Realised volatility fell through 2022.\nThe 2-day 99 % ETH move is below 8 %.",
        created_at="2023-03-01T09:00:00+00:00",
        base_fingerprint=CURRENT.fingerprint,
        proposed_fingerprint=PROPOSED.fingerprint,
        policy_fingerprint="e" * 64,
        changes=[
            {"path": "collateral.ETH.haircut", "old": 0.1, "new": 0.08},
            {"path": "underlyings.BTC.pm.price_range", "old": 0.16, "new": 0.14},
        ],
        votes=[
            {
                "member": "alice",
                "decision": "approve",
                "at": "2023-03-02T10:00:00+00:00",
                "reason": "",
            }
        ],
        quorum=2,
        committee=["alice", "bob", "carol"],
        bounds={
            "collateral.ETH.haircut": {
                "pattern": "collateral.*.haircut",
                "min": 0.0,
                "max": 0.5,
                "max_change": 0.05,
                "change": "absolute",
            }
        },
        rollback_rule={"max_breaches": 3, "window_days": 30},
        drift_tolerance={"collateral.ETH.haircut": 0.2},
        cooldown_days=7.0,
        evidence={
            "backtest_windows": [{"name": "2022", "start": "2022-01-01", "end": "2022-12-31"}]
        },
    )


def frontier() -> dict:
    """A sweep's payload as ``pipelines.report.proposal_frontier`` returns it (fixed numbers:
    the golden test checks the rendering, not the sweep)."""
    points = []
    for k, value in enumerate((0.12, 0.13, 0.14, 0.15, 0.16, 0.17, 0.18)):
        capital = 80_000.0 + 4_500.0 * k
        points.append(
            {
                "value": value,
                "observations": 2190,
                "breaches": 14 - 2 * k if k < 4 else 6 - k // 2,
                "breach_rate": None,
                "zone": "yellow" if k < 2 else "green",
                "min_pvalue": 0.01 * (k + 1),
                "mean_capital_usd": capital,
                "peak_capital_usd": 1.4 * capital,
                "capital_vs_active": capital / 98_000.0,
            }
        )
    return {
        "parameter": "underlyings.BTC.pm.price_range",
        "model": "deribit-pm",
        "current_value": 0.16,
        "proposed_value": 0.14,
        "points": points,
        "knee": 0.15,
        "days": {"from": "2022-01-03", "to": "2023-02-26", "count": 420},
    }


def elsewhere() -> dict:
    """Margin elsewhere as ``pipelines.report.proposal_elsewhere`` returns it (fixed numbers)."""
    labels = [
        ("current (deribit-pm)", "deribit-pm"),
        ("proposed (deribit-pm)", "deribit-pm"),
        ("derive-pmrm2 (published 2025-06-10)", "derive-pmrm2"),
        ("delta-only (current)", "delta-only"),
    ]
    rows = [
        {
            "book": "btc_short_straddle_30d",
            "initial_margin_usd": [41_250.0, 38_900.0, 52_310.5, 812.4],
        },
        {"book": "eth_covered_call", "initial_margin_usd": [9_870.25, 9_870.25, 12_004.0, 6_410.0]},
    ]
    return {
        "day": "2023-02-26",
        "data_sha256": "0" * 64,
        "columns": [{"label": label, "model": model} for label, model in labels],
        "rows": rows,
        "total_usd": [sum(r["initial_margin_usd"][k] for r in rows) for k in range(4)],
    }


def bad_debt() -> dict:
    """The cascades as ``pipelines.report.proposal_bad_debt`` returns them (fixed numbers)."""
    rows = [
        {
            "window": "May 2022",
            "asset": "BTC",
            "bad_debt_usd": [0.0, 125_400.5],
            "liquidations": [812, 1_204],
            "largest_impact": [0.021, 0.034],
        },
        {
            "window": "November 2022",
            "asset": "ETH",
            "bad_debt_usd": [48_000.0, 48_000.0],
            "liquidations": [2_310, 2_310],
            "largest_impact": [0.052, 0.052],
        },
    ]
    path = [100.0, 96.0, 92.0, 88.0, 86.0, 90.0, 94.0, 98.0]
    chart = {
        "window": "May 2022",
        "asset": "BTC",
        "path": path,
        "price": [
            [p * (1 - 0.002 * k) for k, p in enumerate(path)],
            [p * (1 - 0.004 * k) for k, p in enumerate(path)],
        ],
        "liquidated": [[0, 12, 80, 310, 410, 0, 0, 0], [0, 30, 160, 520, 494, 0, 0, 0]],
    }
    return {
        "accounts": 10_000,
        "seed": 0,
        "chart": chart,
        "rows": rows,
        "total_usd": [48_000.0, 173_400.5],
        "risk": [
            {
                "asset": "BTC",
                "close": "2022-12-31",
                "drawn": "the fitted joint model of calibration c-2022-12-31 as of 2022-12-31 "
                "(bootstrapped standardised residuals), a Brownian bridge within each day at "
                "its conditional volatility",
                "paths": 500,
                "days": 2,
                "accounts": 2_000,
                "var_95": [0.0, 1_250.0],
                "es_95": [310.2, 4_020.7],
                "var_99": [2_900.0, 9_800.5],
                "es_99": [6_100.0, 15_750.25],
                "paths_with_bad_debt": [12, 31],
            }
        ],
        # as pipelines.report adds them from the policy: required, and where it is worse
        "required": True,
        "worse": [
            "May 2022 BTC: bad debt 0 → 125,400 USD",
            "BTC paths: bad-debt VaR 99 % 2,900 → 9,800 USD",
        ],
    }


def context(**overrides):
    h = history()
    run = backtest(h)
    return proposal_context(
        overrides.get("proposal") or proposal(),
        run,
        calibration=overrides.get("calibration") or calibration(h),
        sensitivity=[("current (one step back)", {"collateral.ETH.haircut": 0.1}, run)],
        alternatives=[
            ("keep the current set", "no change", run, "current"),
            ("the proposal", "as proposed", run, "proposed"),
        ],
        frontier=overrides.get("frontier", frontier()),
        elsewhere=overrides.get("elsewhere", elsewhere()),
        bad_debt=overrides.get("bad_debt", bad_debt()),
        reproducibility={
            "package": "margin-workbench 0.1.0",
            "libraries": "fixed for the golden test",
        },
        generated_at="from a fixed synthetic proposal",
        command="mwb report P-0123456789ab",
        judge=judge,
    )
