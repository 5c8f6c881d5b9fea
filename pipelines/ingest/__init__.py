"""Loading market data files into the warehouse."""

from pipelines.ingest.formats import Format, ReadOptions
from pipelines.ingest.kinds import SPECS, Kind
from pipelines.ingest.load import IngestReport, file_sha256, load_file

__all__ = ["SPECS", "Format", "IngestReport", "Kind", "ReadOptions", "file_sha256", "load_file"]
