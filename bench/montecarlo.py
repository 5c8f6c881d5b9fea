"""Monte Carlo margin: 1,000 accounts × 20 positions over the real option chain (its options,
perpetuals and futures), 10,000 joint BTC/ETH paths over a 2-day MPOR, full revaluation.

The joint model is estimated here from the real data in ../shared/data: EWMA (λ = 0.94)
volatility and correlation of daily Binance close-to-close log returns up to the option
snapshot, Student-t innovations (ν = 5), and the implied vol's dynamics from Deribit's DVOL
(vol of vol = the standard deviation of its daily log changes over the last year; spot–vol
correlation of those changes with the returns).

Figures, all measured in this run, one process:

* ``mc_seconds``: ``mc_margin`` (simulation, Black-76 revaluation of every instrument on every
  path, account P&L, VaR / ES, standard errors, Euler contributions);
* the bare kernel on the same inputs: one dense product of the (account × currency) positions
  matrix and the instrument P&L matrix (instruments × paths), plus the selection of each row's
  tail (``numpy.partition``) — target ``mc_time_vs_bare_kernel`` ≤ 3;
* ``mc_es_relative_standard_error``: the median over accounts of ES's standard error over ES
  (target ≤ 1 %) for Sobol paths with importance sampling of large moves (their error from
  the spread of independent scrambles), averaged over seeds 17–21 so that one lucky seed does
  not decide it; each seed's beside it, and the pseudo-random and plain Sobol figures;
* the true error (a figure): each account's ES over the five seeds against a reference run of
  131,072 plain Sobol paths (seed 999), as the root mean square relative error (median over
  accounts) — so that the reported standard error is seen to be the error it claims;
* scaling (figures): ``mc_margin`` (Sobol, importance sampling) at 2,500, 5,000 and 10,000
  paths, the log-log slope of time against paths and the peak resident memory.
  ``mc_seconds`` and the ratio are of that run too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# like with like: mc_margin runs on one core, so the bare kernel's BLAS does too (set before
# numpy loads it); its all-cores time is a figure, measured in a fresh process
ONE_THREAD = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if not os.environ.get("MWB_BENCH_ALL_CORES"):
    os.environ.update(dict.fromkeys(ONE_THREAD, "1"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    best_of,
    curve,
    in_a_fresh_process,
    peak_rss_gib,
    shared_data,
    write_results,
)

from margin_engine.book import Positions, build_positions  # noqa: E402
from margin_engine.market import MarketSnapshot  # noqa: E402
from margin_engine.montecarlo import (  # noqa: E402
    AssetDynamics,
    JointModel,
    Simulation,
    _revalue,
    mc_margin,
)
from margin_engine.params import ModelParams  # noqa: E402
from vocabulary import EWMA_LAMBDA  # noqa: E402

ACCOUNTS = 1_000
POSITIONS = 20
PATHS = 10_000
HORIZON = 2
SEED = 17
SEEDS = (17, 18, 19, 20, 21)
DOF = 5.0
REFERENCE_PATHS = 131_072
KINDS = ("pseudo", "sobol", "importance")


def simulation(paths: int, seed: int, kind: str) -> Simulation:
    """Student-t paths drawn as ``kind`` says: pseudo, sobol, or importance (Sobol with
    importance sampling)."""
    return Simulation(
        paths,
        HORIZON,
        seed,
        innovations="student-t",
        sampling="pseudo" if kind == "pseudo" else "sobol",
        dof=DOF,
        importance=kind == "importance",
    )


def joint_model(data: Path, as_of: pd.Timestamp) -> JointModel:
    prices = pd.read_csv(data / "prices" / "binance_spot_daily.csv", parse_dates=["date"])
    closes = prices.pivot(index="date", columns="asset", values="close")[["BTC", "ETH"]]
    closes = closes[closes.index < as_of.tz_localize(None).normalize()].dropna()
    returns = np.log(closes).diff().dropna().iloc[-1000:]
    weights = (1 - EWMA_LAMBDA) * EWMA_LAMBDA ** np.arange(len(returns))[::-1]
    x = returns.to_numpy()
    cov = (x * weights[:, None]).T @ x / weights.sum()
    sigma = np.sqrt(np.diag(cov))
    corr = cov / np.outer(sigma, sigma)
    iv = pd.read_csv(data / "iv" / "deribit_dvol_daily.csv", parse_dates=["date"])
    iv = iv.pivot(index="date", columns="asset", values="iv")[["BTC", "ETH"]]
    iv_changes = np.log(iv[iv.index < as_of.tz_localize(None).normalize()]).diff().iloc[-365:]
    joined = iv_changes.join(returns.add_suffix("_r")).dropna()
    dynamics = tuple(
        AssetDynamics(
            float(sigma[j]),
            vol_of_vol=float(joined[u].std()),
            spot_vol_correlation=float(np.corrcoef(joined[u], joined[f"{u}_r"])[0, 1]),
        )
        for j, u in enumerate(("BTC", "ETH"))
    )
    return JointModel(("BTC", "ETH"), dynamics, corr)


def book(chain: pd.DataFrame, market: MarketSnapshot) -> Positions:
    names = chain["instrument_name"].tolist() + [
        "BTC-PERPETUAL",
        "ETH-PERPETUAL",
        "BTC-26JUN26",
        "ETH-26JUN26",
    ]
    rng = np.random.default_rng(SEED)
    picks = rng.integers(len(names), size=(ACCOUNTS, POSITIONS))
    is_future = np.array(["PERPETUAL" in n or n.count("-") == 1 for n in names])
    quantity = rng.normal(size=(ACCOUNTS, POSITIONS)) * np.where(is_future[picks], 50_000.0, 2.0)
    frame = pd.DataFrame(
        {
            "account": np.repeat([f"a{i:04d}" for i in range(ACCOUNTS)], POSITIONS),
            "instrument": np.asarray(names, dtype=object)[picks.ravel()],
            "quantity": quantity.ravel(),
        }
    )
    positions = build_positions(frame, market)
    assert not positions.errors, positions.errors[:3]
    return positions


def bare_kernel(positions: Positions, model: JointModel, sim: Simulation, level: float):
    """The bare kernel on ``sim``'s paths: dense positions × instrument P&L, then each row's
    tail."""
    pnl = _revalue(positions, model, sim, range(sim.blocks))
    present = positions.layout[0]
    dense = (
        positions.matrix(positions.currency_row, positions.n_accounts * len(positions.currencies))[
            present
        ]
    ).toarray()
    k = int(np.ceil(level * sim.paths))

    def bare() -> None:
        losses = -(dense @ pnl)
        np.partition(losses, k - 1, axis=1)

    return bare


def _inputs() -> tuple[Positions, JointModel]:
    data = shared_data()
    if data is None:
        raise SystemExit("needs ../shared/data (or MWB_SHARED_DATA) for the option snapshot")
    chain_path = next((data / "options").glob("*.csv"))
    market = MarketSnapshot.from_deribit_chain(chain_path)
    return book(pd.read_csv(chain_path), market), joint_model(data, pd.Timestamp(market.as_of))


def bare_all_cores(_: str) -> str:
    """Run in a new process with every core's BLAS: the bare kernel's seconds."""
    if not os.environ.get("MWB_BENCH_ALL_CORES"):
        raise SystemExit("set MWB_BENCH_ALL_CORES=1 before numpy loads")
    positions, model = _inputs()
    sim = simulation(PATHS, SEED, "importance")
    return str(best_of(bare_kernel(positions, model, sim, ModelParams().var.es_confidence), 3))


def main() -> None:
    positions, model = _inputs()
    params = ModelParams()
    level = params.var.es_confidence
    # smaller path counts first: the peak memory is the process's high-water mark
    small = {}
    for n in (PATHS // 4, PATHS // 2):
        sim = simulation(n, SEED, "importance")
        small[n] = (
            best_of(lambda s=sim: mc_margin(positions, model, s, params), 3),
            peak_rss_gib(),
        )
    results = {}
    seconds = {}
    for kind in KINDS:
        sim = simulation(PATHS, SEED, kind)
        seconds[kind] = best_of(lambda s=sim: mc_margin(positions, model, s, params), 3)
        results[kind] = mc_margin(positions, model, sim, params)
    scaling = curve({**small, PATHS: (seconds["importance"], peak_rss_gib())}, "paths")
    sim = simulation(PATHS, SEED, "importance")

    bare_seconds = best_of(bare_kernel(positions, model, sim, level), 3)
    every_core = {
        **{k: v for k, v in os.environ.items() if k not in ONE_THREAD},
        "MWB_BENCH_ALL_CORES": "1",
    }
    bare_all_cores = in_a_fresh_process("montecarlo", "bare_all_cores", "", every_core)[0]
    estimates = {kind: [results[kind].es] for kind in ("sobol", "importance")}
    by_seed = {
        SEED: float(np.median(results["importance"].es_standard_error / results["importance"].es))
    }
    for seed in SEEDS[1:]:
        for kind in ("sobol", "importance"):
            r = mc_margin(positions, model, simulation(PATHS, seed, kind), params)
            estimates[kind].append(r.es)
            if kind == "importance":
                by_seed[seed] = float(np.median(r.es_standard_error / r.es))
    over_seeds = float(np.mean(list(by_seed.values())))
    # the true error: against a reference of 131,072 plain Sobol paths (its own error about
    # a third of the runs', so the figure slightly overstates theirs)
    reference = mc_margin(positions, model, simulation(REFERENCE_PATHS, 999, "sobol"), params).es
    usable = reference > 0
    true_error = {
        kind: float(
            np.median(
                np.sqrt(
                    np.mean(
                        np.square(
                            (np.array(es)[:, usable] - reference[usable]) / reference[usable]
                        ),
                        axis=0,
                    )
                )
            )
        )
        for kind, es in estimates.items()
    }
    ours = results["importance"]
    relative = {
        s: ours_r.es_standard_error / np.maximum(ours_r.es, 1e-300) for s, ours_r in results.items()
    }
    median = {s: float(np.median(r)) for s, r in relative.items()}
    p90 = {s: float(np.quantile(r, 0.9)) for s, r in relative.items()}
    ratio = seconds["importance"] / bare_seconds
    print(
        f"{ACCOUNTS:,} accounts × {POSITIONS} positions over {len(positions.book.table):,} "
        f"instruments, {PATHS:,} paths × {HORIZON} days ({len(ours.es)} result rows)"
    )
    for s in seconds:
        print(
            f"  mc_margin ({s:6s}): {seconds[s]:.3f} s; ES standard error / ES: median "
            f"{median[s]:.2%}, 90th percentile {p90[s]:.2%}"
        )
    print(
        f"  bare kernel (dense product + tail selection), one core: {bare_seconds:.3f} s; ratio "
        f"{ratio:.2f} (all cores: {bare_all_cores:.3f} s)"
    )
    print(
        "  ES error against a 131,072-path reference (RMS over 5 seeds, median over accounts): "
        + ", ".join(f"{k} {v:.2%}" for k, v in true_error.items())
        + f"; reported standard error (importance, mean over seeds) {over_seeds:.2%}"
    )
    write_results(
        "montecarlo",
        {
            "accounts": ACCOUNTS,
            "positions_per_account": POSITIONS,
            "instruments": len(positions.book.table),
            "paths": PATHS,
            "horizon_days": HORIZON,
            "innovations": "student-t",
            "dof": DOF,
            "seed": SEED,
            "sampling": "sobol with importance sampling",
            "mc_seconds": round(seconds["importance"], 3),
            "mc_seconds_plain_sobol": round(seconds["sobol"], 3),
            "mc_seconds_pseudo": round(seconds["pseudo"], 3),
            "bare_kernel_seconds": round(bare_seconds, 3),
            "bare_kernel_seconds_all_cores": round(bare_all_cores, 3),
            "es_relative_standard_error_median": median,
            "es_relative_standard_error_p90": p90,
            "es_relative_standard_error_by_seed": by_seed,
            "es_true_relative_error_vs_reference": true_error,
            "reference_paths": REFERENCE_PATHS,
            "scaling": scaling,
        },
        {
            "mc_time_vs_bare_kernel": {"value": round(ratio, 3), "target": "<= 3"},
            "mc_es_relative_standard_error": {
                "value": round(over_seeds, 5),
                "target": "<= 0.01",
            },
        },
    )


if __name__ == "__main__":
    main()
