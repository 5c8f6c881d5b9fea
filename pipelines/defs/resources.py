"""The resources every domain shares, declared once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from pipelines.settings import ComputeSettings, SyntheticSource, WorkbenchSettings, load_settings
from pipelines.warehouse import connect


class WarehouseResource(DuckDBResource):
    """The DuckDB warehouse: creates the file's folder, runs in UTC, applies migrations, and
    waits (with backoff) while another process holds the write lock."""

    wait_seconds: float = Field(default=60.0, description="How long to wait for the write lock.")

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        con = connect(self.database, wait_seconds=self.wait_seconds)
        try:
            yield con
        finally:
            con.close()


class WorkbenchResource(dg.ConfigurableResource):
    """Settings from ``MWB_HOME`` and its ``config.yaml`` (see :mod:`pipelines.settings`)."""

    home: str = Field(default="", description="Workbench home; empty means $MWB_HOME or ./.mwb.")
    config_file: str = Field(default="", description="Config YAML; empty means the default.")
    synthetic_only: bool = Field(
        default=False, description="Ignore configured sources and load the synthetic market."
    )
    synthetic_seed: int | None = Field(default=None, description="Seed when synthetic_only.")

    def settings(self) -> WorkbenchSettings:
        settings = load_settings(self.home or None, self.config_file or None)
        if self.synthetic_only:
            seed = (
                self.synthetic_seed if self.synthetic_seed is not None else SyntheticSource().seed
            )
            settings = settings.model_copy(update={"sources": (SyntheticSource(seed=seed),)})
        return settings


class DaskResource(dg.ConfigurableResource):
    """The Dask distributed engine (:mod:`pipelines.compute`): the ``compute`` settings'
    scheduler unless ``scheduler`` names another (``local`` or ``tcp://host:8786``). An asset
    asks for a client per run; a local cluster lives as long as the asset's step."""

    scheduler: str = Field(default="", description="Empty means the settings' compute.scheduler.")
    workers: int = Field(default=0, description="Local workers; 0 means the settings' (per core).")

    def settings(self, workbench: WorkbenchSettings) -> ComputeSettings:
        update: dict = {}
        if self.scheduler:
            update["scheduler"] = self.scheduler
        if self.workers:
            update["workers"] = self.workers
        return ComputeSettings.model_validate({**workbench.compute.model_dump(), **update})

    @contextmanager
    def mapper(self, workbench: WorkbenchSettings) -> Iterator[Callable]:
        """``map(fn, items)`` on the cluster, for the numeric packages' ``mapper`` argument."""
        from pipelines.compute import dask_client, dask_mapper

        with dask_client(self.settings(workbench)) as client:
            yield dask_mapper(client)


def build_resources(
    home: str = "",
    config_file: str = "",
    *,
    synthetic_only: bool = False,
    synthetic_seed: int | None = None,
) -> dict[str, dg.ConfigurableResource]:
    workbench = WorkbenchResource(
        home=home,
        config_file=config_file,
        synthetic_only=synthetic_only,
        synthetic_seed=synthetic_seed,
    )
    return {
        "workbench": workbench,
        "warehouse": WarehouseResource(database=str(workbench.settings().warehouse_path)),
        "dask": DaskResource(),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
