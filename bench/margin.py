"""Margining a whole exchange: 100,000 accounts × 20 positions, Deribit-style PM (27 + 8
scenarios) and SPAN-style (16 scenarios), over 1,000 live BTC and ETH instruments taken from
the real option-chain snapshot (options, plus the perpetuals and a few futures).

Figures, all measured in this run:

* the time of ``portfolio_margin`` and ``span_margin`` (risk arrays, the fused row scan,
  dampener, worst case, roll and delta shocks or spread charges, reduction per currency) on
  prepared positions, on one thread, against the bare kernel on one thread: one scipy sparse
  product of the same shapes (accounts × instruments @ instruments × scenarios) plus the
  row-wise worst case (targets ≤ 0.5×); the all-cores times are reported beside, as figures;
* the speed-up over the straightforward per-account loop (``margin_engine.reference``) on a
  1,000-account sample (≥ 100×), and that both agree;
* other venues' models on the same 100,000 accounts, one thread: Derive PMRM 2 (33 scenarios,
  per-expiry static discounts), OKX (MR1/MR6/MR4), Paradex (24 weighted scenarios and the
  minimum delta), Aevo (15 scenarios and the floor), Hyperliquid's tiers and the delta-only
  baseline, each against the same bare kernel (≤ 3×; issue 17);
* scaling: PM on one thread at 10k, 100k and 1M accounts and the log-log slope of time
  against accounts (≤ 1.05); the peak resident memory of the process after the 1M run
  (< 4 GiB).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numba
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, shared_data, write_results  # noqa: E402

from governance.parameters import venue_parameter_set  # noqa: E402
from margin_engine.book import Positions, build_positions  # noqa: E402
from margin_engine.market import MarketSnapshot  # noqa: E402
from margin_engine.models import margin  # noqa: E402
from margin_engine.params import ModelParams  # noqa: E402
from margin_engine.portfolio_margin import portfolio_margin, risk_arrays  # noqa: E402
from margin_engine.reference import reference_portfolio_margin  # noqa: E402
from margin_engine.span import risk_arrays as span_arrays  # noqa: E402
from margin_engine.span import span_margin  # noqa: E402

ACCOUNTS = 100_000
POSITIONS = 20
INSTRUMENTS = 1_000
LOOP_SAMPLE = 1_000
SEED = 7
SCALING = (10_000, 100_000, 1_000_000)


def bare(matrix, arrays) -> float:
    def kernel():
        pnl = matrix @ arrays
        np.maximum(-pnl.min(axis=1), 0.0)

    return best_of(kernel)


def synthetic_positions(template: Positions, n: int) -> Positions:
    """``n`` accounts × 20 positions over the template's instruments, built from arrays (a
    frame of 20M rows of strings would measure pandas, not the margin)."""
    rng = np.random.default_rng(SEED + n)
    n_instruments = len(template.book.table)
    picks = rng.integers(n_instruments, size=n * POSITIONS)
    names = template.book.table.names
    is_future = np.array(["PERPETUAL" in x or x.count("-") == 1 for x in names])
    quantity = rng.normal(size=n * POSITIONS) * np.where(is_future[picks], 100_000.0, 2.0)
    return Positions(
        template.book,
        tuple(f"a{i:07d}" for i in range(n)),
        np.repeat(np.arange(n, dtype=np.int64), POSITIONS),
        picks.astype(np.int64),
        quantity,
    )


def instruments(chain: pd.DataFrame) -> list[str]:
    extra = [
        "BTC-PERPETUAL",
        "ETH-PERPETUAL",
        "BTC-24APR26",
        "BTC-26JUN26",
        "ETH-24APR26",
        "ETH-26JUN26",
    ]
    options = chain.sort_values("open_interest", ascending=False)["instrument_name"].tolist()
    return extra + options[: INSTRUMENTS - len(extra)]


def book(names: list[str], market: MarketSnapshot) -> tuple[pd.DataFrame, Positions]:
    rng = np.random.default_rng(SEED)
    picks = rng.integers(len(names), size=(ACCOUNTS, POSITIONS))
    quantity = rng.normal(size=(ACCOUNTS, POSITIONS)) * 2.0
    is_future = np.array(["PERPETUAL" in n or n.count("-") == 1 for n in names])
    quantity = np.where(is_future[picks], quantity * 50_000.0, quantity)
    frame = pd.DataFrame(
        {
            "account": np.repeat([f"a{i:06d}" for i in range(ACCOUNTS)], POSITIONS),
            "instrument": np.asarray(names, dtype=object)[picks.ravel()],
            "quantity": quantity.ravel(),
        }
    )
    return frame, build_positions(frame, market)


def main() -> None:
    data = shared_data()
    if data is None:
        raise SystemExit("needs ../shared/data (or MWB_SHARED_DATA) for the option snapshot")
    chain_path = next((data / "options").glob("*.csv"))
    chain = pd.read_csv(chain_path)
    market = MarketSnapshot.from_deribit_chain(chain_path)
    names = instruments(chain)
    started = time.perf_counter()
    frame, positions = book(names, market)
    prepare = time.perf_counter() - started
    assert not positions.errors and len(positions.book.table) == INSTRUMENTS
    params = ModelParams()

    cores = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(1)
    ours = best_of(lambda: portfolio_margin(positions, params))
    ours_span = best_of(lambda: span_margin(positions, params))
    numba.set_num_threads(cores)
    ours_all = best_of(lambda: portfolio_margin(positions, params))
    ours_span_all = best_of(lambda: span_margin(positions, params))
    numba.set_num_threads(1)
    result = portfolio_margin(positions, params)

    arrays = risk_arrays(positions, params)
    matrix = positions.matrix(positions.account, positions.n_accounts)
    bare_pm = bare(matrix, arrays)
    venue_params = {
        "derive-pmrm2": venue_parameter_set("derive").to_model_params(),
        "okx-pm": venue_parameter_set("okx").to_model_params(),
        "paradex-pm": venue_parameter_set("paradex").to_model_params(),
        "aevo-pm": venue_parameter_set("aevo").to_model_params(),
        "hyperliquid": venue_parameter_set("hyperliquid").to_model_params(),
        "delta-only": params,
    }
    venues = {
        name: best_of(lambda n=name, p=p: margin(positions, n, p))
        for name, p in venue_params.items()
    }
    bare_span = bare(matrix, span_arrays(positions, params))

    scaling = {}
    for n in SCALING:
        scaled = positions if n == ACCOUNTS else synthetic_positions(positions, n)
        scaling[n] = best_of(lambda p=scaled: portfolio_margin(p, params), 3 if n < 10**6 else 2)
        del scaled
    slope = float(np.polyfit(np.log(list(scaling)), np.log(list(scaling.values())), 1)[0])
    peak_1m = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux

    sample = sorted(frame["account"].unique())[:LOOP_SAMPLE]
    sample_frame = frame[frame["account"].isin(sample)]
    started = time.perf_counter()
    reference = {
        account: reference_portfolio_margin(
            list(zip(group["instrument"], group["quantity"], strict=True)), market, params
        )
        for account, group in sample_frame.groupby("account")
    }
    loop = time.perf_counter() - started
    ours_frame = result.frame().set_index(["account", "currency"])
    worst_gap = max(
        abs(ours_frame.loc[(a, c), "initial_margin"] - v["initial_margin"])
        / max(v["initial_margin"], 1e-12)
        for a, per in reference.items()
        for c, v in per.items()
    )
    per_account_ours = ours / ACCOUNTS
    per_account_loop = loop / LOOP_SAMPLE
    print(
        f"prepared {ACCOUNTS:,} accounts × {POSITIONS} positions over {INSTRUMENTS} instruments in {prepare:.2f} s"
    )
    print(
        f"portfolio_margin : {ours * 1e3:7.1f} ms one thread, {ours_all * 1e3:7.1f} ms on {cores} "
        f"({ACCOUNTS / ours:12,.0f} accounts/s); bare kernel {bare_pm * 1e3:.1f} ms, ratio {ours / bare_pm:.2f}"
    )
    print(
        f"span_margin      : {ours_span * 1e3:7.1f} ms one thread, {ours_span_all * 1e3:7.1f} ms on {cores}; "
        f"bare kernel {bare_span * 1e3:.1f} ms, ratio {ours_span / bare_span:.2f}"
    )
    print(
        f"per-account loop : {loop:6.2f} s for {LOOP_SAMPLE} accounts  speed-up {per_account_loop / per_account_ours:,.0f}x "
        f"(largest relative difference {worst_gap:.2e})"
    )
    print(
        "scaling (one thread): "
        + ", ".join(f"{n:,} accounts {t * 1e3:.1f} ms" for n, t in scaling.items())
        + f"; log-log slope {slope:.3f}"
    )
    print(f"peak resident memory after 1M accounts: {peak_1m:.2f} GiB")
    for name, seconds in venues.items():
        print(
            f"{name:17s}: {seconds * 1e3:7.1f} ms one thread; bare kernel {bare_pm * 1e3:.1f} ms, "
            f"ratio {seconds / bare_pm:.2f}"
        )
    write_results(
        "margin",
        {
            "accounts": ACCOUNTS,
            "positions_per_account": POSITIONS,
            "instruments": INSTRUMENTS,
            "scenarios": int(arrays.shape[1]),
            "threads_for_ratios": 1,
            "cores": cores,
            "prepare_seconds": round(prepare, 3),
            "pm_seconds_one_thread": round(ours, 4),
            "pm_seconds_all_cores": round(ours_all, 4),
            "span_seconds_one_thread": round(ours_span, 4),
            "span_seconds_all_cores": round(ours_span_all, 4),
            "accounts_per_second": round(ACCOUNTS / ours),
            "bare_kernel_seconds_pm": round(bare_pm, 4),
            "bare_kernel_seconds_span": round(bare_span, 4),
            "loop_seconds_per_1000_accounts": round(loop, 3),
            "loop_vs_ours_max_relative_difference": worst_gap,
            "scaling_seconds": {str(n): round(t, 4) for n, t in scaling.items()},
            "peak_rss_gib": round(peak_1m, 3),
            "venue_seconds_one_thread": {n: round(t, 4) for n, t in venues.items()},
        },
        {
            "pm_time_vs_bare_kernel": {"value": round(ours / bare_pm, 3), "target": "<= 0.5"},
            "span_time_vs_bare_kernel": {
                "value": round(ours_span / bare_span, 3),
                "target": "<= 0.5",
            },
            "speedup_vs_per_account_loop": {
                "value": round(per_account_loop / per_account_ours, 1),
                "target": ">= 100",
            },
            "margin_scaling_slope": {"value": round(slope, 3), "target": "<= 1.05"},
            "peak_memory_gib_1m_accounts": {"value": round(peak_1m, 3), "target": "< 4"},
            **{
                f"{name.replace('-', '_')}_time_vs_bare_kernel": {
                    "value": round(seconds / bare_pm, 3),
                    "target": "<= 3",
                }
                for name, seconds in venues.items()
            },
        },
    )


if __name__ == "__main__":
    main()
