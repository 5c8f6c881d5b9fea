"""Running the Dagster definitions in-process (the demo, `mwb run`, end-to-end tests)."""

from __future__ import annotations

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
    instance: dg.DagsterInstance | None = None,
    raise_on_error: bool = False,
    log_level: str = "WARNING",
) -> dg.ExecuteInProcessResult:
    """Materialize ``selection`` (with the checks of the selected assets) using ``resources``.

    Dagster's console log is kept at ``log_level`` so that the command line shows our own
    progress rather than Dagster's step events (the events are still in the run record).
    """
    definitions = loaded_definitions()
    return dg.materialize(
        [*definitions.assets, *definitions.asset_checks],
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        selection=selection,
        partition_key=partition_key,
        raise_on_error=raise_on_error,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


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
