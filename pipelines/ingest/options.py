"""What a load is told: the file formats it reads and the options of one load (light: the
command line declares its flags from these without importing the readers)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from pipelines.ingest.kinds import Kind


class Format(StrEnum):
    TIDY_CSV = "tidy-csv"
    TIDY_PARQUET = "tidy-parquet"
    DERIBIT_OPTIONS = "deribit-options"
    DERIBIT_DVOL = "deribit-dvol"
    BINANCE_KLINES = "binance-klines"


FIRST_PLAUSIBLE_DAY = date(2009, 1, 1)


@dataclass(frozen=True)
class ReadOptions:
    format: Format | None = None
    kind: Kind | None = None
    source: str | None = None  # overrides the file's `source` column and the format default
    asset: str | None = None  # for formats whose rows do not name the asset
    force: bool = False  # load even when the file's levels do not match the stored series
    first_day: date = FIRST_PLAUSIBLE_DAY  # earlier rows are rejected as implausible
