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
