"""A small positions file for pipeline tests of ``mwb margin``."""

from __future__ import annotations

from pathlib import Path


def positions_file(folder: Path) -> Path:
    path = folder / "positions.csv"
    path.write_text(
        "account,instrument,quantity\n"
        "a,BTC_USDC-PERPETUAL,1\n"
        "a,ETH_USDC-PERPETUAL,-10\n"
        "b,BTC-28JUN24-70000-C,-2\n"
        "b,BTC-PERPETUAL,50000\n"
    )
    return path
