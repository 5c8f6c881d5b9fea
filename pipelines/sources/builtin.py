"""Built-in datasets, written as tidy CSV files and loaded through the normal ingest path.

``synthetic``
    the seeded synthetic crypto market (:mod:`pipelines.sources.synthetic`).
``sp500-vix``
    the real S&P 500 daily OHLCV (1999-2018) and VIX (2014-2019) series that the ``arch``
    package ships, as asset ``SPX`` with ``source='arch'``; VIX is stored as a decimal 30-day
    implied vol (VIX 13.76 -> 0.1376). The 46 US market holidays on which arch's VIX series
    holds NaN are left out (there was no quote).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipelines.sources import DATASETS, DatasetName  # noqa: E402  (names without numpy)
from pipelines.sources.synthetic import DEFAULT_SEED, SyntheticMarketSpec, write_synthetic_market


def write_sp500_vix(folder: str | Path) -> list[Path]:
    from arch.data import sp500, vix  # arch is a core dependency; imported late for speed

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    spx = sp500.load()
    prices = pd.DataFrame(
        {
            "date": spx.index.date,
            "asset": "SPX",
            "open": spx["Open"].to_numpy(),
            "high": spx["High"].to_numpy(),
            "low": spx["Low"].to_numpy(),
            "close": spx["Close"].to_numpy(),
            "volume": spx["Volume"].to_numpy(dtype=float),
            "source": "arch",
        }
    )
    # arch's VIX series holds NaN on US market holidays: those days have no quote at all
    v = vix.load().dropna()
    iv = pd.DataFrame(
        {
            "date": v.index.date,
            "asset": "SPX",
            "iv": v["vix"].to_numpy() / 100.0,
            "tenor_days": 30,
            "source": "arch",
        }
    )
    paths = []
    for name, frame in (("prices.csv", prices), ("implied_vol.csv", iv)):
        path = folder / name
        frame.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
        paths.append(path)
    return paths


def write_dataset(name: DatasetName, folder: str | Path, seed: int = DEFAULT_SEED) -> list[Path]:
    """Write the named dataset's files into ``folder`` and return their paths."""
    if name == "synthetic":
        return write_synthetic_market(folder, SyntheticMarketSpec(seed=seed))
    if name == "sp500-vix":
        return write_sp500_vix(folder)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
