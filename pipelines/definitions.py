"""Dagster entry point: everything under ``pipelines/defs`` (``dagster dev -m pipelines.definitions``)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
