"""Running the Dagster definitions in-process (the demo, `mwb run`, end-to-end tests)."""

from __future__ import annotations

import multiprocessing
import os
import pkgutil
from collections.abc import Mapping

import dagster as dg

from pipelines.definitions import defs as load_defs


def loaded_definitions() -> dg.Definitions:
    return load_defs()


def materialize(
    selection: dg.AssetSelection,
    resources: Mapping[str, object],
    *,
    partition_key: str | None = None,
    partition_range: tuple[str, str] | None = None,
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = False,
    log_level: str = "WARNING",
) -> dg.ExecuteInProcessResult:
    """Materialize ``selection`` (with the checks of the selected assets) using ``resources``.

    Dagster's console log is kept at ``log_level`` so that the command line shows our own
    progress rather than Dagster's step events (the events are still in the run record).
    ``partition_range`` (first, last key) runs a range as one run, as a single-run backfill does;
    with neither, time-partitioned assets run their latest partition (the last complete day).
    """
    definitions = loaded_definitions()
    if partition_key is None and partition_range is None:
        partition_key = _latest_time_partition(definitions, selection)
    tags = (
        {
            "dagster/asset_partition_range_start": partition_range[0],
            "dagster/asset_partition_range_end": partition_range[1],
        }
        if partition_range
        else None
    )
    return dg.materialize(
        [*definitions.assets, *definitions.asset_checks],
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        selection=selection,
        partition_key=partition_key,
        tags=tags,
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def _latest_time_partition(definitions: dg.Definitions, selection: dg.AssetSelection) -> str | None:
    graph = definitions.resolve_asset_graph()
    for key in selection.resolve(graph):
        partitions = graph.get(key).partitions_def
        if isinstance(partitions, dg.TimeWindowPartitionsDefinition):
            return partitions.get_last_partition_key()
    return None


def materialize_group(
    group: str, resources: Mapping[str, object], **kwargs
) -> dg.ExecuteInProcessResult:
    """Materialize every asset of ``group`` with its checks."""
    return materialize(dg.AssetSelection.groups(group), resources, **kwargs)


def check_outcomes(result: dg.ExecuteInProcessResult) -> list[dict]:
    """One row per asset check evaluated in the run: key, passed, severity, findings."""
    rows = []
    for event in result.get_asset_check_evaluations():
        findings = event.metadata.get("findings")
        rows.append(
            {
                "asset": event.asset_key.to_user_string(),
                "check": event.check_name,
                "passed": event.passed,
                "severity": event.severity.value,
                "findings": findings.value if findings is not None else None,
            }
        )
    return sorted(rows, key=lambda r: (r["asset"], r["check"]))


def run_job(
    name: str,
    resources: Mapping[str, object],
    run_config: dict | None = None,
    *,
    processes: int = 1,
    partition_key: str | None = None,
    instance: dg.DagsterInstance | None = None,
    log_level: str = "WARNING",
) -> dg.ExecuteInProcessResult | dg.ExecutionResult:
    """Run the job ``name`` of the definitions (failures reported, not raised), for
    ``partition_key`` when the job has partitioned assets (a market day).

    ``processes`` > 1 runs each step in its own process (Dagster's multiprocess executor), so
    the per-underlying fits of ``daily_calibration`` run side by side. The child processes
    load the definitions themselves, with resources from ``MWB_HOME``/``MWB_CONFIG``; the
    caller's ``resources`` must be those defaults.
    """
    config = {**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}}
    if processes > 1:
        from dagster._core.definitions.reconstruct import build_reconstructable_job

        # each step runs in a process forked from a server that has imported the definitions'
        # modules once (about 2.6 s a step under "spawn"); the step's own process then takes
        # the caller's home and config, which a long-lived server would not see change
        config["execution"] = {
            "config": {
                "multiprocess": {
                    "max_concurrent": processes,
                    "start_method": {"forkserver": {"preload_modules": _preload_modules()}}
                    if "forkserver" in multiprocessing.get_all_start_methods()
                    else {"spawn": {}},  # Windows
                }
            }
        }
        job = build_reconstructable_job(
            "pipelines.runs",
            "job_named",
            reconstructable_args=(
                name,
                os.environ.get("MWB_HOME", ""),
                os.environ.get("MWB_CONFIG", ""),
            ),
        )
        with instance or dg.DagsterInstance.local_temp() as active:
            tags = {"dagster/partition": partition_key} if partition_key else None
            return dg.execute_job(
                job, instance=active, run_config=config, tags=tags, raise_on_error=False
            )
    job = loaded_definitions().resolve_job_def(name)
    return job.execute_in_process(
        run_config=config,
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        partition_key=partition_key,
        raise_on_error=False,
    )


def job_named(name: str, home: str = "", config_file: str = "") -> dg.JobDefinition:
    """The job ``name`` with the definitions' resources (rebuilt in each child process), whose
    defaults read ``MWB_HOME`` and ``MWB_CONFIG``: set here from the caller's values (empty:
    unset), since a child forked from the server inherits the server's environment."""
    for variable, value in (("MWB_HOME", home), ("MWB_CONFIG", config_file)):
        if value:
            os.environ[variable] = value
        else:
            os.environ.pop(variable, None)
    return loaded_definitions().resolve_job_def(name)


def _preload_modules() -> list[str]:
    """This module and every module of ``pipelines.defs`` (they import the numeric packages)."""
    import pipelines.defs

    return [
        "dagster._core.executor.multiprocess",
        "pipelines.runs",
        *(m.name for m in pkgutil.walk_packages(pipelines.defs.__path__, "pipelines.defs.")),
    ]


def failures(result: dg.ExecuteInProcessResult) -> list[str]:
    """One line per failed step or failed blocking check, for the command line."""
    lines = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            error = event.event_specific_data.error
            message = error.message.strip().splitlines()[0] if error else "failed"
            cause = error.cause.message.strip().splitlines()[0] if error and error.cause else ""
            lines.append(f"{event.step_key}: {cause or message}")
    for check in check_outcomes(result):
        if not check["passed"] and check["severity"] == "ERROR":
            lines.append(f"check {check['asset']} {check['check']} failed")
    return lines
