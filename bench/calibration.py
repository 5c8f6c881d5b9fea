"""Calibration speed and accuracy.

1. Rolling daily re-estimation of GJR-GARCH(1,1)-t for BTC, ETH and SOL on a 1,000-day window,
   origins 2022-01-01 … 2024-12-31 (SOL from the day it has 1,000 returns), real Binance data:
   ``calibration.rolling.rolling_forecasts_many`` (the compiled likelihood, warm starts checked
   against cold starts) in one process against a plain serial loop of cold
   ``arch_model(...).fit()`` on the same windows, in the same run: like against like. Figures:
   both wall times, their ratio, ours on every core beside (a figure, not the target), and
   the largest log-likelihood shortfall of ours against the loop over every window.
   Scaling (figures): ours in one process over the origins of 2024, 2023–2024 and 2022–2024
   (the run above), the log-log slope of time against windows and the peak resident memory.
2. DCC(1,1) on BTC and ETH, 1,400 days: the two-step estimate (two GJR-GARCH-t fits, then the
   correlation step) timed end to end.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from arch import arch_model

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import curve, peak_rss_gib, shared_data, write_results  # noqa: E402

# this script is bench/calibration.py: take bench/ off the path so that `calibration` is the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

from calibration.correlation import fit_dcc  # noqa: E402
from calibration.rolling import RollingConfig, rolling_forecasts_many  # noqa: E402
from calibration.univariate import UnivariateSpec, fit_univariate  # noqa: E402

ASSETS = ("BTC", "ETH", "SOL")
WINDOW = 1000
START, END = "2022-01-01", "2024-12-31"
SPEC = UnivariateSpec("gjr-garch", "t")


def load_returns() -> dict[str, pd.Series]:
    data = shared_data()
    if data is None:
        raise SystemExit("needs ../shared/data (or MWB_SHARED_DATA)")
    prices = pd.read_csv(data / "prices/binance_spot_daily.csv", parse_dates=["date"])
    return {
        a: np.log(prices[prices.asset == a].set_index("date")["close"]).diff().dropna().rename(a)
        for a in ASSETS
    }


def windows_from(returns: dict[str, pd.Series], start: str) -> int:
    """The windows (origins with a full window) from ``start`` to the end, over every asset."""
    n = 0
    for series in returns.values():
        dates = series.index[np.arange(WINDOW - 1, len(series))]
        n += int(((dates >= start) & (dates <= END)).sum())
    return n


def plain_loop(
    returns: dict[str, pd.Series],
) -> tuple[float, dict[tuple[str, pd.Timestamp], float]]:
    logliks = {}
    started = time.perf_counter()
    for asset, series in returns.items():
        positions = np.arange(WINDOW - 1, len(series))
        dates = series.index[positions]
        positions = positions[(dates >= START) & (dates <= END)]
        for p in positions:
            window = series.iloc[p - WINDOW + 1 : p + 1] * 100
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = arch_model(window, vol="GARCH", p=1, o=1, q=1, dist="t").fit(disp="off")
            logliks[(asset, series.index[p])] = result.loglikelihood
    return time.perf_counter() - started, logliks


def main() -> None:
    returns = load_returns()
    config = RollingConfig(window=WINDOW, refit_every=1, horizon=1)
    print(f"rolling GJR-GARCH-t re-estimation, {START}..{END}, window {WINDOW}")
    starts = {windows_from(returns, start): start for start in ("2024-01-01", "2023-01-01")}

    def ours_from(n: int) -> float:
        began = time.perf_counter()
        rolling_forecasts_many(returns, SPEC, config, start=starts[n], end=END, max_workers=1)
        return time.perf_counter() - began

    small = {n: (ours_from(n), peak_rss_gib()) for n in sorted(starts)}  # smallest first
    started = time.perf_counter()
    ours = rolling_forecasts_many(returns, SPEC, config, start=START, end=END, max_workers=1)
    ours_time = time.perf_counter() - started
    small[windows_from(returns, START)] = (ours_time, peak_rss_gib())
    cores = os.cpu_count() or 1
    started = time.perf_counter()
    rolling_forecasts_many(returns, SPEC, config, start=START, end=END, max_workers=cores)
    ours_all_cores = time.perf_counter() - started
    windows = sum(len(r.variances) for r in ours.values())
    assert windows == windows_from(returns, START), (windows, windows_from(returns, START))
    scaling = curve(small, "windows")
    loop_time, loop = plain_loop(returns)
    shortfalls, verified, warm = [], 0, 0
    for asset, result in ours.items():
        reported = result.refits[result.refits["reported"]]
        verified += int(reported["verified"].sum())
        warm += int((reported["start"] == "warm").sum())
        for row in reported.itertuples():
            shortfalls.append(loop[(asset, row.date)] - row.loglik)
    n = len(shortfalls)
    assert n == len(loop), (n, len(loop))
    worst = max(shortfalls)
    print(f"  windows: {n} ({', '.join(f'{a} {len(r.variances)}' for a, r in ours.items())})")
    print(f"  plain serial loop of cold fits : {loop_time:7.2f} s")
    print(
        f"  ours (compiled, warm starts, one process): {ours_time:7.2f} s  ratio {ours_time / loop_time:.3f}"
    )
    print(f"  ours on {cores} processes: {ours_all_cores:7.2f} s")
    print(
        f"  largest log-likelihood shortfall vs the loop: {worst:.3g} "
        f"(ours better by up to {-min(shortfalls):.3g}); warm-started {warm}, cold-checked {verified}"
    )

    # DCC(1,1), two steps, BTC and ETH, 1,400 days
    joined = pd.concat([returns["BTC"], returns["ETH"]], axis=1).dropna().iloc[-1400:]
    started = time.perf_counter()
    z = pd.DataFrame({a: fit_univariate(joined[a], SPEC).std_resid for a in ("BTC", "ETH")})
    step_one = time.perf_counter() - started
    dcc = fit_dcc(z)
    dcc_total = time.perf_counter() - started
    print(
        f"DCC(1,1) BTC/ETH, {len(joined)} days: {dcc_total:.3f} s two-step "
        f"({step_one:.3f} s univariate, {dcc_total - step_one:.3f} s correlation); "
        f"a = {dcc.a:.4f}, b = {dcc.b:.4f}"
    )
    write_results(
        "calibration",
        {
            "windows": n,
            "loop_seconds": round(loop_time, 2),
            "ours_seconds": round(ours_time, 2),
            "ours_processes": 1,
            "ours_seconds_all_cores": round(ours_all_cores, 2),
            "cores": cores,
            "max_loglik_shortfall": worst,
            "max_loglik_gain": -min(shortfalls),
            "warm_started_refits": warm,
            "cold_checked_refits": verified,
            "dcc_days": len(joined),
            "dcc_two_step_seconds": round(dcc_total, 3),
            "dcc_correlation_step_seconds": round(dcc_total - step_one, 3),
            "dcc_a": dcc.a,
            "dcc_b": dcc.b,
            "scaling": scaling,
        },
        {
            "rolling_time_vs_serial_loop": {
                "value": round(ours_time / loop_time, 4),
                "target": "<= 0.15",
            },
            "max_loglik_shortfall_vs_loop": {"value": max(worst, 0.0), "target": "<= 1e-4"},
            "dcc_2x1400_seconds": {"value": round(dcc_total, 3), "target": "< 2"},
        },
    )


if __name__ == "__main__":
    main()
