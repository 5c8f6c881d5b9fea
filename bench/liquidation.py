"""Liquidation cascades at exchange scale: 100,000 synthetic accounts near their leverage limit,
48 intraday steps of the October 2025 shape (−15 % and back) in a thin market, full
liquidation with the impact of each round's sales.

Figures, all measured in this run:

* the cascade's time (``backtesting.cascade.simulate``) against one margin pass over the same
  accounts per step — each account's equity and maintenance margin at the step's price and the
  test of one against the other, the work any liquidation engine does every step — target
  ``cascade_time_vs_margin_pass`` ≤ 2;
* scaling: the cascade at 10k, 100k and 1M accounts, the log-log slope of time against
  accounts and the peak resident memory after the largest.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, write_results  # noqa: E402

from backtesting.cascade import LiquidationRule, simulate, synthetic_population  # noqa: E402
from margin_engine.impact import ImpactModel  # noqa: E402

ACCOUNTS = 100_000
STEPS = 48
SEED = 11
SCALING = (10_000, 100_000, 1_000_000)
RULE = LiquidationRule(0.08, 0.10, 0.01)
IMPACT = ImpactModel(daily_vol=0.04, daily_volume=1.5e8, half_spread=0.0005)


def crash() -> np.ndarray:
    half = STEPS // 2
    return np.concatenate([np.linspace(100.0, 85.0, half), np.linspace(85.0, 100.0, STEPS - half)])


def margin_pass(accounts, path: np.ndarray) -> None:
    """Equity and maintenance margin of every account at each step's price, and the test."""
    for p in path:
        equity = accounts.cash + accounts.quantity * (p - accounts.entry)
        np.less(equity, RULE.maintenance * np.abs(accounts.quantity) * p)


def main() -> None:
    path = crash()
    population = synthetic_population(ACCOUNTS, SEED, 100.0, 1 / RULE.initial)
    run = simulate(population, path, RULE, IMPACT)
    cascade = best_of(lambda: simulate(population, path, RULE, IMPACT), 9)
    baseline = best_of(lambda: margin_pass(population, path), 9)
    scaling = {}
    for n in SCALING:
        people = population if n == ACCOUNTS else synthetic_population(n, SEED, 100.0, 10.0)
        scaling[n] = best_of(lambda p=people: simulate(p, path, RULE, IMPACT), 2)
    slope = float(np.polyfit(np.log(list(scaling)), np.log(list(scaling.values())), 1)[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    ratio = cascade / baseline
    print(
        f"{ACCOUNTS:,} accounts × {STEPS} steps: cascade {cascade * 1e3:.1f} ms "
        f"({int(run.liquidated.sum()):,} liquidations, {int(run.rounds.sum())} rounds, bad debt "
        f"{run.total_bad_debt:,.0f} USD); margin pass per step {baseline * 1e3:.1f} ms; ratio {ratio:.2f}"
    )
    print(
        "scaling: "
        + ", ".join(f"{n:,} accounts {t * 1e3:.1f} ms" for n, t in scaling.items())
        + f"; log-log slope {slope:.3f}; peak resident memory {peak:.2f} GiB"
    )
    write_results(
        "liquidation",
        {
            "accounts": ACCOUNTS,
            "steps": STEPS,
            "seed": SEED,
            "liquidations": int(run.liquidated.sum()),
            "rounds": int(run.rounds.sum()),
            "bad_debt_usd": run.total_bad_debt,
            "cascade_seconds": round(cascade, 4),
            "margin_pass_seconds": round(baseline, 4),
            "scaling_seconds": {str(n): round(t, 4) for n, t in scaling.items()},
            "scaling_slope": round(slope, 3),
            "peak_rss_gib": round(peak, 3),
        },
        {"cascade_time_vs_margin_pass": {"value": round(ratio, 3), "target": "<= 2"}},
    )


if __name__ == "__main__":
    main()
