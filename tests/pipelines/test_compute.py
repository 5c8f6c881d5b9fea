"""Monte Carlo margin on a real Dask cluster: a scheduler and two workers started as separate
processes on 127.0.0.1, the same numbers as the serial run, and still the same numbers when a
worker is killed mid-run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import synthetic_warehouse

from margin_engine.book import build_positions
from margin_engine.market import MarketSnapshot
from margin_engine.montecarlo import BLOCK, AssetDynamics, JointModel, Simulation, mc_margin
from pipelines.compute import dask_client, dask_mapper
from pipelines.errors import BadInputError
from pipelines.settings import ComputeSettings

REPO = Path(__file__).resolve().parents[2]
MODEL = JointModel(
    ("BTC", "ETH"),
    (
        AssetDynamics(0.03, 1e-5, 0.05, 0.05, 0.88, vol_of_vol=0.05, spot_vol_correlation=-0.4),
        AssetDynamics(0.04, 2e-5, 0.06, 0.04, 0.87, vol_of_vol=0.06),
    ),
    np.array([[1.0, 0.8], [0.8, 1.0]]),
)
SIM = Simulation(12 * BLOCK, 2, seed=21)


def _start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers (each under its nanny), as processes."""
    folder = tmp_path_factory.mktemp("dask")
    scheduler_file = folder / "scheduler.json"
    common = ["--no-dashboard"]
    processes = [
        _start(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--scheduler-file", str(scheduler_file), *common],
            folder / "scheduler.log",
        )
    ]  # fmt: skip
    deadline = time.monotonic() + 60
    while not scheduler_file.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    address = json.loads(scheduler_file.read_text())["address"]
    for k in range(2):
        processes.append(
            _start(
                ["distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file),
                 "--nthreads", "1", "--host", "127.0.0.1", "--name", f"w{k}", *common],
                folder / f"worker{k}.log",
            )
        )  # fmt: skip
    try:
        yield address
    finally:
        for p in processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in processes:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def positions(shared_data):
    chain = next((shared_data / "options").glob("*.csv"))
    names = pd.read_csv(chain)["instrument_name"].tolist() + ["BTC-PERPETUAL", "ETH-PERPETUAL"]
    rng = np.random.default_rng(13)
    frame = pd.DataFrame(
        {
            "account": [f"a{k % 60:02d}" for k in range(600)],
            "instrument": rng.choice(names, 600),
            "quantity": rng.normal(size=600) * 3,
        }
    )
    return build_positions(frame, MarketSnapshot.from_deribit_chain(chain))


@pytest.fixture(scope="module")
def serial(positions):
    return mc_margin(positions, MODEL, SIM)


def _workers(client, n: int = 2) -> dict:
    client.wait_for_workers(n, timeout=60)
    return client.run(os.getpid)  # worker address → pid


def test_a_remote_cluster_gives_the_serial_numbers(cluster, positions, serial) -> None:
    with dask_client(ComputeSettings(scheduler=cluster)) as client:
        pids = _workers(client)
        assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
        distributed = mc_margin(positions, MODEL, SIM, chunks=6, mapper=dask_mapper(client))
        # both workers took part
        assert len({w for w, tasks in client.processing().items()}) == 2
    np.testing.assert_array_equal(distributed.es, serial.es)
    np.testing.assert_array_equal(distributed.var, serial.var)
    np.testing.assert_array_equal(distributed.contribution, serial.contribution)


def test_a_worker_killed_mid_run_changes_nothing(cluster, positions, serial) -> None:
    from distributed import wait

    with dask_client(ComputeSettings(scheduler=cluster)) as client:
        pids = _workers(client)
        killed = []

        def killing_mapper(fn, items):
            futures = client.map(fn, list(items), pure=False, retries=2)
            done, pending = wait(futures, return_when="FIRST_COMPLETED")
            assert pending, "every task finished before the kill: the test would prove nothing"
            victim = next(iter(pids.values()))
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            return client.gather(futures)

        again = mc_margin(positions, MODEL, SIM, chunks=12, mapper=killing_mapper)
        assert killed
        # the nanny replaced the worker: two workers again, one of them a new process
        client.wait_for_workers(2, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = client.run(os.getpid)
            if len(now) == 2 and killed[0] not in now.values():
                break
            time.sleep(0.5)
        assert killed[0] not in client.run(os.getpid).values()
    np.testing.assert_array_equal(again.es, serial.es)
    np.testing.assert_array_equal(again.contribution, serial.contribution)


def test_an_unreachable_scheduler_is_one_line() -> None:
    unreachable = ComputeSettings(scheduler="tcp://127.0.0.1:9", connect_seconds=1)
    with (
        pytest.raises(BadInputError, match="cannot reach tcp://127.0.0.1:9"),
        dask_client(unreachable),
    ):
        pass


@pytest.fixture(scope="module")
def sweep_inputs(tmp_path_factory):
    from datetime import date

    from backtesting.spec import BacktestSpec
    from governance.parameters import default_parameter_set
    from pipelines.sweep import run_sweep

    settings, con = synthetic_warehouse(tmp_path_factory, "sweep-cluster")
    spec = BacktestSpec(
        start=date(2024, 7, 1),
        end=date(2024, 12, 31),
        models=("deribit-pm",),
        portfolios=("books",),
    )
    values = (0.12, 0.15, 0.18, 0.21, 0.24, 0.27)

    def sweep(mapper=map):
        return run_sweep(
            con, settings, default_parameter_set(), "underlyings.BTC.pm.price_range", values,
            spec, mapper=mapper,
        ).payload()["points"]  # fmt: skip

    yield sweep, sweep(), con, settings
    con.close()


def test_a_sweep_on_the_cluster_survives_a_killed_worker(cluster, sweep_inputs) -> None:
    from distributed import wait

    sweep, serial_points, _, _ = sweep_inputs
    with dask_client(ComputeSettings(scheduler=cluster)) as client:
        assert sweep(dask_mapper(client)) == serial_points
        pids = _workers(client)
        killed = []

        class KillingMapper:
            workers = 2  # so that the sweep cuts its days into chunks, as on the cluster

            def __call__(self, fn, items):
                futures = client.map(fn, list(items), pure=False, retries=2)
                _, pending = wait(futures, return_when="FIRST_COMPLETED")
                if pending and not killed:
                    victim = next(iter(pids.values()))
                    os.kill(victim, signal.SIGKILL)
                    killed.append(victim)
                return client.gather(futures)

        killing_mapper = KillingMapper()
        assert sweep(killing_mapper) == serial_points
        assert killed, "every point finished before the kill: the test proved nothing"


def test_rolling_fits_run_as_tasks_on_the_cluster_with_the_pools_numbers(
    cluster, sweep_inputs
) -> None:
    from backtesting.inputs import rolling_volatility
    from calibration.rolling import RollingConfig
    from pipelines.backtest import load_history

    _, _, con, settings = sweep_inputs
    history, *_ = load_history(con, settings.market.source_preference, ["BTC", "ETH", "SOL"])
    config = RollingConfig(window=250, refit_every=10, horizon=2, restart_every=4)
    start = history.days[-120]
    local, local_refits = rolling_volatility(history, config, start, workers=1)
    with dask_client(ComputeSettings(scheduler=cluster)) as client:
        seen = []

        def mapper(fn, items):
            items = list(items)
            seen.append(len(items))
            return dask_mapper(client)(fn, items)

        remote, remote_refits = rolling_volatility(history, config, start, mapper=mapper)
    assert seen and seen[0] >= 3  # one task per (underlying, warm-start chain)
    assert remote_refits == local_refits and set(remote) == {"BTC", "ETH", "SOL"}
    # a worker's BLAS runs one thread (the nanny's setting), the driver's as many as cores:
    # the sums inside the optimiser run in another order, and forecasts agree to 1e-4, not
    # bit for bit (every worker alike, so a rerun task gives the same bytes)
    for asset in local:
        pd.testing.assert_series_equal(remote[asset].cond_vol, local[asset].cond_vol, rtol=1e-4)
        pd.testing.assert_frame_equal(remote[asset].forecasts, local[asset].forecasts, rtol=1e-4)
