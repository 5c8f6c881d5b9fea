"""Parameter sweep: ETH's PM price range over 32 values (0.100 to 0.255 by 0.005), the 12 books
of the portfolio library, 2021–2024 on the real data (Binance closes, Deribit DVOL), 2-day
MPOR, Deribit-style PM.

Figures, all measured in this run on one fresh warehouse:

* ``serial_seconds``: ``run_sweep`` in this process with the built-in ``map``;
* ``two_workers_seconds``: the same sweep on a Dask ``LocalCluster`` of two worker processes
  (started before the clock, as a running scheduler would be: ``cluster_start_seconds``,
  the workers' imports of the numeric packages included, is reported beside, with the
  speed-up it would leave if counted; the days are cut into chunks, each replayed under every
  value by one task, then each value's series summarised by a task), with the same
  numbers — target ``sweep_speedup_two_workers`` ≥ 1.7;
* ``independent_run_seconds``: ``mwb backtest --model deribit-pm --portfolio books`` in a
  fresh process with a parameter-set file holding one value, timed for 4 of the 32 values
  (each against the warehouse the previous runs left, as a user's 32 runs would be); the
  32 runs' time is 32 × their mean — target ``sweep_speedup_vs_independent_runs`` ≥ 5;
* scaling (figures): the serial sweep of 8 and 16 of the values (every 4th, every 2nd: the
  set in force's 0.18 among them), each in a fresh process on a fresh warehouse, and of all
  32 (above): the log-log slope of time against values and the peak resident memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from common import (  # noqa: E402
    REPO,
    curve,
    in_a_fresh_process,
    peak_rss_gib,
    shared_data,
    write_results,
)

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH]
from backtesting.spec import BacktestSpec  # noqa: E402
from governance.parameters import default_parameter_set  # noqa: E402
from pipelines.compute import dask_client, dask_mapper  # noqa: E402
from pipelines.ingest import ReadOptions, load_file  # noqa: E402
from pipelines.settings import ComputeSettings, load_settings  # noqa: E402
from pipelines.sweep import run_sweep  # noqa: E402
from pipelines.warehouse import connect  # noqa: E402

PARAM = "underlyings.ETH.pm.price_range"
VALUES = tuple(round(0.100 + 0.005 * k, 3) for k in range(32))
SPEC = BacktestSpec(
    start=date(2021, 1, 1), end=date(2024, 12, 31), models=("deribit-pm",), portfolios=("books",)
)
INDEPENDENT_SAMPLE = 4


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

        started = time.perf_counter()
        serial = run_sweep(con, settings, current, PARAM, VALUES, SPEC)
        serial_seconds = time.perf_counter() - started
        serial_peak = peak_rss_gib()
        print(f"serial sweep of {len(VALUES)} values: {serial_seconds:.1f} s")

        started = time.perf_counter()
        with dask_client(ComputeSettings(workers=2)) as client:
            client.wait_for_workers(2)
            cluster_seconds = time.perf_counter() - started
            started = time.perf_counter()
            parallel = run_sweep(
                con, settings, current, PARAM, VALUES, SPEC, mapper=dask_mapper(client)
            )
            parallel_seconds = time.perf_counter() - started
        same = parallel.payload()["points"] == serial.payload()["points"]
        print(
            f"two local workers: {parallel_seconds:.1f} s (same numbers: {same}); "
            f"starting the cluster, its workers' imports included: {cluster_seconds:.1f} s"
        )
        con.close()

        runs = []
        for value in VALUES[:: len(VALUES) // INDEPENDENT_SAMPLE][:INDEPENDENT_SAMPLE]:
            params_file = Path(home) / f"set-{value}.json"
            params_file.write_text(
                json.dumps(current.with_changes({PARAM: value}).canonical_dict())
            )
            env = {**os.environ, "MWB_HOME": home}
            env.pop("MWB_CONFIG", None)
            started = time.perf_counter()
            done = subprocess.run(
                [str(Path(sys.executable).parent / "mwb"), "backtest", "--model", "deribit-pm",
                 "--portfolio", "books", "--from", "2021-01-01", "--to", "2024-12-31",
                 "--params", str(params_file), "--json"],
                env=env, cwd=REPO, capture_output=True, text=True, check=False,
            )  # fmt: skip
            runs.append(time.perf_counter() - started)
            if done.returncode != 0:
                raise SystemExit(f"mwb backtest failed: {done.stderr[-2000:]}")
        per_run = sum(runs) / len(runs)
        independent = per_run * len(VALUES)
        print(
            f"independent mwb backtest runs: {', '.join(f'{r:.1f}' for r in runs)} s "
            f"(mean {per_run:.1f} s; {len(VALUES)} runs ≈ {independent:.0f} s)"
        )
    scaling = curve(
        {
            **{n: _serial_in_a_fresh_process(n) for n in (len(VALUES) // 4, len(VALUES) // 2)},
            len(VALUES): (serial_seconds, serial_peak),
        },
        "values",
    )
    if not same:
        raise SystemExit("the two-worker sweep differs from the serial one")
    write_results(
        "sweep",
        {
            "parameter": PARAM,
            "values": len(VALUES),
            "portfolios": "books",
            "from": str(SPEC.start),
            "to": str(SPEC.end),
            "serial_seconds": round(serial_seconds, 2),
            "two_workers_seconds": round(parallel_seconds, 2),
            "cluster_start_seconds": round(cluster_seconds, 2),
            "two_workers_speedup_with_cluster_start": round(
                serial_seconds / (parallel_seconds + cluster_seconds), 3
            ),
            "same_numbers_serial_and_two_workers": same,
            "independent_run_seconds_measured": [round(r, 2) for r in runs],
            "independent_runs_seconds_estimated": round(independent, 1),
            "knee": serial.knee,
            "scaling": scaling,
        },
        {
            "sweep_speedup_two_workers": {
                "value": round(serial_seconds / parallel_seconds, 3),
                "target": ">= 1.7",
            },
            "sweep_speedup_vs_independent_runs": {
                "value": round(independent / serial_seconds, 2),
                "target": ">= 5",
            },
        },
    )


def serial_of(count: str) -> str:
    """Run in a new process: the serial sweep of ``count`` of the values, evenly spaced, on a
    fresh warehouse; its seconds and the process's peak resident memory (GiB)."""
    data = shared_data()
    assert data is not None
    values = VALUES[:: len(VALUES) // int(count)]
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings(home)
        con = connect(settings.warehouse_path)
        for path in ("prices/binance_spot_daily.csv", "iv/deribit_dvol_daily.csv"):
            load_file(con, data / path, ReadOptions())
        started = time.perf_counter()
        run_sweep(con, settings, default_parameter_set(), PARAM, values, SPEC)
        seconds = time.perf_counter() - started
        con.close()
    return f"{seconds} {peak_rss_gib()}"


def _serial_in_a_fresh_process(count: int) -> tuple[float, float]:
    seconds, peak = in_a_fresh_process("sweep", "serial_of", str(count))
    return seconds, peak


if __name__ == "__main__":
    main()
