"""The distributed engine: Dask distributed, configured by the ``compute`` settings.

``scheduler: local`` (the default) starts a ``LocalCluster`` of worker processes — one per core
unless ``workers`` says otherwise — for the command and closes it after; an address such as
``tcp://host:8786`` uses a running scheduler (on Kubernetes, the one the Dask operator
starts). The numeric packages never import Dask: they take a ``mapper`` (``map(fn, items)``)
and this module supplies one that runs each item as a Dask task and returns the results in
order. The driver process is the only one that writes to the warehouse.

Tasks are pure functions of their inputs (Monte Carlo blocks have their own streams), so a
worker that dies mid-run is replaced — by its nanny, or by the scheduler moving its tasks —
and the rerun tasks give identical results.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pipelines.errors import BadInputError
from pipelines.settings import ComputeSettings

if TYPE_CHECKING:  # distributed is imported when a command needs it (a second to import)
    from distributed import Client

__all__ = ["DaskMapper", "dask_client", "dask_mapper"]

TASK_RETRIES = 2  # a task whose worker raised; one whose worker died is moved regardless
#: What a fresh local worker imports while the cluster starts (numpy, scipy, pandas, numba and
#: the margin kernels: seconds), so that its first task does not pay for them mid-run.
WARM_MODULES = ("margin_engine.models", "margin_engine.montecarlo", "backtesting.sweep")


#: A local worker's own housekeeping runs on its event loop and takes the GIL from the task
#: thread each time: the statistical profiler (every 10 ms) cost pandas-heavy tasks (a sweep
#: point's summaries) a third of their time, and the loop's tick (20 ms), system monitor
#: (500 ms) and memory monitor (100 ms) another 12 %. Batch tasks of one command need none of
#: the profiler, and the monitors once a second (the nanny still stops a worker at its limit).
QUIET_WORKERS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}


def _warm() -> None:
    for name in WARM_MODULES:
        importlib.import_module(name)


@contextmanager
def dask_client(settings: ComputeSettings) -> Iterator[Client]:
    """A Dask client for ``settings`` (a local cluster lives as long as the block)."""
    import dask
    from distributed import Client, LocalCluster

    if settings.scheduler == "local":
        with dask.config.set(QUIET_WORKERS):
            cluster = LocalCluster(
                n_workers=settings.workers or os.cpu_count() or 1,
                threads_per_worker=1,  # numpy and numba threads stay one per process
                processes=True,
                dashboard_address=":0",  # a free port: the default 8787 may be taken
                silence_logs=logging.ERROR,
            )
        try:
            with Client(cluster) as client:
                client.run(_warm)
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(settings.scheduler, timeout=settings.connect_seconds)
    except (OSError, TimeoutError) as exc:
        raise BadInputError(
            f"compute.scheduler: cannot reach {settings.scheduler} ({exc.__class__.__name__})"
        ) from None
    try:
        yield client
    finally:
        client.close()


class DaskMapper:
    """``map(fn, items)`` on a Dask client's workers: one task per item, results in item
    order. ``workers`` is how many tasks the cluster runs at once now (its threads), for
    callers that cut their work to fit.
    """

    def __init__(self, client: Client) -> None:
        self.client = client

    @property
    def workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def __call__(self, fn: Callable, items: Iterable) -> list[Any]:
        with warnings.catch_warnings():
            # the items are the tasks' data (a sweep's series): a graph of tens of MB is
            # expected, and scattering them first would lose them with a worker that dies
            warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
            futures = self.client.map(
                functools.partial(_packed, fn), list(items), pure=False, retries=TASK_RETRIES
            )
        # gathered through the scheduler unless the client can reach the workers (Dask
        # decides): on Kubernetes only the scheduler may be exposed
        return [pickle.loads(blob) for blob in self.client.gather(futures)]


def _packed(fn: Callable, item: Any) -> bytes:
    # Dask sends each array of a result as a frame of its own: a sweep's chunk of days (34
    # frames of 14 columns) was 476 frames, and gathering 8 chunks took 0.4 s; one pickled
    # blob a task takes about half of that
    return pickle.dumps(fn(item), protocol=pickle.HIGHEST_PROTOCOL)


def dask_mapper(client: Client) -> DaskMapper:
    """The :class:`DaskMapper` of ``client``."""
    return DaskMapper(client)
