"""The seeded synthetic crypto market of the demo, written as tidy CSV files.

The market itself (its model, its parameters, the simulation) is
:mod:`calibration.synthetic`; this module only writes it where the ingest reads it.
"""

from __future__ import annotations

from pathlib import Path

from calibration.synthetic import (
    DEFAULT_SEED,
    AssetModel,
    SyntheticMarket,
    SyntheticMarketSpec,
    generate_synthetic_market,
)

__all__ = [
    "DEFAULT_SEED",
    "AssetModel",
    "SyntheticMarket",
    "SyntheticMarketSpec",
    "generate_synthetic_market",
    "write_synthetic_market",
]


def write_synthetic_market(
    folder: str | Path, spec: SyntheticMarketSpec | None = None
) -> list[Path]:
    """Write the market as tidy CSV files (``prices.csv``, ``implied_vol.csv``) to ``folder``.

    The text is deterministic (fixed column order, ``%.10g`` floats, ``\\n`` line ends), so the
    files' SHA-256 fingerprints identify the seed and the code that generated them.
    """
    market = generate_synthetic_market(spec)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, frame in (("prices.csv", market.prices), ("implied_vol.csv", market.implied_vol)):
        path = folder / name
        frame.to_csv(path, index=False, float_format="%.10g", lineterminator="\n")
        paths.append(path)
    return paths
