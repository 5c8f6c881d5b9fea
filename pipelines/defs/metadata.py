"""Turning findings into Dagster metadata: Markdown tables the UI renders."""

from __future__ import annotations

import dagster as dg
import pandas as pd

MAX_ROWS = 25


def markdown_table(frame: pd.DataFrame, max_rows: int = MAX_ROWS) -> dg.MetadataValue:
    """The first ``max_rows`` rows as a Markdown table (``_none_`` when empty)."""
    if frame.empty:
        return dg.MetadataValue.md("_none_")
    text = frame.head(max_rows).to_markdown(index=False, floatfmt=".6g")
    if len(frame) > max_rows:
        text += f"\n\n_… and {len(frame) - max_rows} more_"
    return dg.MetadataValue.md(text)


def frontier_metadata(frontier: dict, chart: str | None = None) -> dict:
    """A sweep's frontier (``SweepRun.payload``) for a materialization: its points as a
    table, the knee, and the chart's file when one was written."""
    columns = ["value", "breaches", "zone", "min_pvalue", "mean_capital_usd", "capital_vs_active"]
    points = pd.DataFrame(frontier["points"], columns=columns)
    out = {
        "frontier_parameter": frontier["parameter"],
        "frontier_model": frontier["model"],
        "frontier_knee": dg.MetadataValue.float(frontier["knee"])
        if frontier.get("knee") is not None
        else "none",
        "frontier": markdown_table(points, max_rows=200),
    }
    if chart is not None:
        out["frontier_chart"] = dg.MetadataValue.path(chart)
    return out
