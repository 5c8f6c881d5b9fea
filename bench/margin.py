"""Margining a whole exchange: 100,000 accounts × 20 positions, Deribit-style PM (27 + 8
scenarios), over 1,000 live BTC and ETH instruments taken from the real option-chain
snapshot (options, plus the perpetuals and a few futures).

Figures, all measured in this run:

* accounts/s of ``portfolio_margin`` (risk arrays, sparse product, dampener, worst case,
  roll and delta shocks, reduction per currency) on prepared positions;
* the ratio to the bare kernel: one scipy sparse product of the same shapes (accounts ×
  instruments @ instruments × 35) plus the row-wise worst case (target ≤ 3×);
* the speed-up over the straightforward per-account loop (``margin_engine.reference``) on a
  1,000-account sample (target ≥ 100×), and that both agree;
* peak memory: the process's peak resident size (target < 4 GiB).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import shared_data, write_results  # noqa: E402

from margin_engine.book import Positions, build_positions  # noqa: E402
from margin_engine.market import MarketSnapshot  # noqa: E402
from margin_engine.params import ModelParams  # noqa: E402
from margin_engine.portfolio_margin import portfolio_margin, risk_arrays  # noqa: E402
from margin_engine.reference import reference_portfolio_margin  # noqa: E402

ACCOUNTS = 100_000
POSITIONS = 20
INSTRUMENTS = 1_000
LOOP_SAMPLE = 1_000
SEED = 7


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

    portfolio_margin(positions, params)  # warm-up (imports, caches)
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        result = portfolio_margin(positions, params)
        runs.append(time.perf_counter() - started)
    ours = min(runs)

    arrays = risk_arrays(positions, params)
    matrix = positions.matrix(positions.account, positions.n_accounts)
    bare_runs = []
    for _ in range(5):
        started = time.perf_counter()
        pnl = matrix @ arrays
        worst = np.maximum(-pnl.min(axis=1), 0.0)
        bare_runs.append(time.perf_counter() - started)
    bare = min(bare_runs)
    del pnl, worst

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
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # KiB on Linux
    per_account_ours = ours / ACCOUNTS
    per_account_loop = loop / LOOP_SAMPLE
    print(
        f"prepared {ACCOUNTS:,} accounts × {POSITIONS} positions over {INSTRUMENTS} instruments in {prepare:.2f} s"
    )
    print(f"portfolio_margin : {ours:6.3f} s  {ACCOUNTS / ours:12,.0f} accounts/s")
    print(
        f"bare kernel      : {bare:6.3f} s  (sparse product + row-wise worst case)  ratio {ours / bare:.2f}"
    )
    print(
        f"per-account loop : {loop:6.2f} s for {LOOP_SAMPLE} accounts  speed-up {per_account_loop / per_account_ours:,.0f}x "
        f"(largest relative difference {worst_gap:.2e})"
    )
    print(f"peak resident memory: {peak_gib:.2f} GiB")
    write_results(
        "margin",
        {
            "accounts": ACCOUNTS,
            "positions_per_account": POSITIONS,
            "instruments": INSTRUMENTS,
            "scenarios": int(arrays.shape[1]),
            "prepare_seconds": round(prepare, 3),
            "ours_seconds": round(ours, 4),
            "accounts_per_second": round(ACCOUNTS / ours),
            "bare_kernel_seconds": round(bare, 4),
            "loop_seconds_per_1000_accounts": round(loop, 3),
            "loop_vs_ours_max_relative_difference": worst_gap,
            "peak_rss_gib": round(peak_gib, 3),
        },
        {
            "pm_time_vs_bare_kernel": {"value": round(ours / bare, 3), "target": "<= 3"},
            "speedup_vs_per_account_loop": {
                "value": round(per_account_loop / per_account_ours, 1),
                "target": ">= 100",
            },
            "peak_memory_gib": {"value": round(peak_gib, 3), "target": "< 4"},
        },
    )


if __name__ == "__main__":
    main()
