"""Backtest speed: BTC, ETH and SOL daily over 2021–2024 (real Binance closes, Deribit DVOL),
the 12 books of the portfolio library, 3 models (Deribit-style PM, SPAN-style, filtered-
historical VaR) plus the standard-margin baseline, 2-day MPOR.

Figures, all measured in this run on a fresh warehouse:

* **cold**: nothing cached — the rolling GJR-GARCH-t calibration of the three underlyings
  (re-estimated every 5 days on 500 returns, filtered daily), the books of every day, every
  model's margins, the realised losses, the coverage tests and the storing of the run;
* **what-if**: the same backtest with one parameter changed (BTC price range 16 % → 14 %) in
  the same process, as a comparison or a sweep runs it — the instrument-name cache cleared,
  volatility, losses and untouched margins read back from the warehouse's caches, the day
  books and untouched series' summaries taken from the process's memos (keyed by the data
  fingerprint); only the PM margins of the books on BTC are recomputed and re-tested;
* **what-if in a fresh process** (a figure): another value (13 %) in a new process, as
  ``mwb backtest`` run again does — the books are rebuilt and every series re-tested.

* **scaling** (figures): the cold backtest over the last 1, 2 and 4 years (the 4 years are
  the cold run above; the shorter ones each in a fresh process on a fresh warehouse), the
  log-log slope of time against days and the peak resident memory.

Targets: cold ≤ 20 s; what-if ≤ 5 % of the cold time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import (  # noqa: E402
    in_a_fresh_process,
    peak_rss_gib,
    scaling_curve,
    shared_data,
    write_results,
)

# bench/ holds a calibration.py: take bench/ off the path so that `calibration` is the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]

from backtesting.spec import BacktestSpec  # noqa: E402
from governance.parameters import default_parameter_set  # noqa: E402
from margin_engine.instruments import parse_instrument  # noqa: E402
from pipelines.backtest import ParamSource, run_backtest  # noqa: E402
from pipelines.ingest import ReadOptions, load_file  # noqa: E402
from pipelines.settings import load_settings  # noqa: E402
from pipelines.warehouse import connect  # noqa: E402

SPEC = BacktestSpec(
    start=date(2021, 1, 1),
    end=date(2024, 12, 31),
    models=("deribit-pm", "span", "var"),
    portfolios=("books",),
)
CHANGE = {"underlyings.BTC.pm.price_range": 0.14}


def main() -> None:
    data = shared_data()
    if data is None:
        raise SystemExit("needs ../shared/data (or MWB_SHARED_DATA)")
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home)
        con = connect(settings.warehouse_path)
        for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
            load_file(con, data / path, ReadOptions())
        current = default_parameter_set()
        print(
            f"backtest {SPEC.start}..{SPEC.end}, books, models {', '.join(SPEC.models)} (+ standard)"
        )
        started = time.perf_counter()
        cold = run_backtest(con, settings, [ParamSource("current", current)], SPEC)
        cold_seconds = time.perf_counter() - started
        cold_peak = peak_rss_gib()
        print(f"  cold: {cold_seconds:.1f} s  {cold.cache['seconds']}")
        parse_instrument.cache_clear()
        started = time.perf_counter()
        what_if = run_backtest(
            con, settings, [ParamSource("current", current.with_changes(CHANGE))], SPEC
        )
        what_if_seconds = time.perf_counter() - started
        print(
            f"  what-if ({', '.join(f'{k} = {v}' for k, v in CHANGE.items())}): {what_if_seconds:.2f} s  "
            f"{what_if.cache['seconds']}"
        )
        con.close()
        fresh_seconds = _what_if_in_a_fresh_process(home)
        print(f"  a what-if (13 %) in a fresh process (no in-process memo): {fresh_seconds:.2f} s")
    ratio = what_if_seconds / cold_seconds
    print(f"  what-if / cold = {ratio:.3f}")
    days = int(cold.daily["date"].nunique())
    starts = {365: date(2024, 1, 1), 731: date(2023, 1, 1)}
    scaling = scaling_curve(
        (365, 731, days),
        lambda n: _cold_in_a_fresh_process(starts[n]),
        "days",
        known={days: (cold_seconds, cold_peak)},
    )
    books = sorted(set(cold.daily["portfolio"]))
    figures = {
        "days": days,
        "portfolios": len(books),
        "models": list(SPEC.models),
        "daily_rows": len(cold.daily),
        "cold_seconds": round(cold_seconds, 3),
        "cold_stages_seconds": cold.cache["seconds"],
        "refits": cold.cache.get("volatility", {}).get("refits"),
        "what_if_seconds": round(what_if_seconds, 3),
        "what_if_stages_seconds": what_if.cache["seconds"],
        "what_if_margins": what_if.cache["margins"],
        "what_if_ratio": round(ratio, 4),
        "what_if_fresh_process_seconds": round(fresh_seconds, 3),
        "what_if_fresh_process_ratio": round(fresh_seconds / cold_seconds, 4),
        "breaches_by_model": cold.daily[cold.daily["model"] != "standard"]
        .groupby("model")["breach"]
        .sum()
        .to_dict(),
        "scaling": scaling,
    }
    write_results(
        "backtest",
        figures,
        {
            "backtest_cold_seconds": {"value": round(cold_seconds, 2), "target": "<= 20"},
            "backtest_what_if_ratio": {"value": round(ratio, 4), "target": "<= 0.05"},
        },
    )


FRESH_CHANGE = {"underlyings.BTC.pm.price_range": 0.13}  # not the in-process what-if's value


def fresh_what_if(home: str) -> float:
    """Run in the new process: the what-if on the warehouse in ``home``; its seconds."""
    settings = load_settings(home)
    con = connect(settings.warehouse_path)
    changed = default_parameter_set().with_changes(FRESH_CHANGE)
    started = time.perf_counter()
    run_backtest(con, settings, [ParamSource("current", changed)], SPEC)
    seconds = time.perf_counter() - started
    con.close()
    return seconds


def cold_from(start: str) -> str:
    """Run in a new process: a cold backtest from ``start`` to the spec's end on a fresh
    warehouse; its seconds (the loads and imports are not timed) and the process's peak
    resident memory (GiB)."""
    data = shared_data()
    assert data is not None
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home)
        con = connect(settings.warehouse_path)
        for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
            load_file(con, data / path, ReadOptions())
        spec = BacktestSpec(**{**SPEC.__dict__, "start": date.fromisoformat(start)})
        started = time.perf_counter()
        run_backtest(con, settings, [ParamSource("current", default_parameter_set())], spec)
        seconds = time.perf_counter() - started
        con.close()
    return f"{seconds} {peak_rss_gib()}"


def _cold_in_a_fresh_process(start: date) -> tuple[float, float]:
    seconds, peak = in_a_fresh_process("backtest", "cold_from", start.isoformat())
    return seconds, peak


def _what_if_in_a_fresh_process(home: str) -> float:
    """The what-if as ``mwb backtest`` runs it after the cold run: a new process, so only the
    warehouse's caches (volatility, losses, margins) are reused; imports are not timed."""
    return in_a_fresh_process("backtest", "fresh_what_if", home)[0]


if __name__ == "__main__":
    main()
