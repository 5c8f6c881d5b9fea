"""Loading market data files into the warehouse.

The names are imported on first use (PEP 562): the command line reads the light
:mod:`pipelines.ingest.options` and :mod:`pipelines.ingest.kinds` without loading the readers.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.ingest.kinds import SPECS, Kind
    from pipelines.ingest.load import IngestReport, file_sha256, load_file
    from pipelines.ingest.options import Format, ReadOptions

__all__ = ["SPECS", "Format", "IngestReport", "Kind", "ReadOptions", "file_sha256", "load_file"]

_HOME = {
    "SPECS": "pipelines.ingest.kinds",
    "Kind": "pipelines.ingest.kinds",
    "Format": "pipelines.ingest.options",
    "ReadOptions": "pipelines.ingest.options",
    "IngestReport": "pipelines.ingest.load",
    "file_sha256": "pipelines.ingest.load",
    "load_file": "pipelines.ingest.load",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'pipelines.ingest' has no attribute {name!r}")
