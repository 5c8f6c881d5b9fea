"""Built-in datasets: the seeded synthetic crypto market and arch's S&P 500 / VIX series."""

from typing import Literal

DatasetName = Literal["synthetic", "sp500-vix"]
DATASETS: tuple[DatasetName, ...] = ("synthetic", "sp500-vix")
