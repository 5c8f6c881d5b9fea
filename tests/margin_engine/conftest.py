"""Fixtures of the margin-engine tests: the real Deribit option chain as a market."""

from __future__ import annotations

import pandas as pd
import pytest
from books import CHAIN

from margin_engine.market import MarketSnapshot


@pytest.fixture(scope="session")
def chain_market(shared_data) -> MarketSnapshot:
    return MarketSnapshot.from_deribit_chain(shared_data / CHAIN)


@pytest.fixture(scope="session")
def chain_instruments(shared_data) -> list[str]:
    names = pd.read_csv(shared_data / CHAIN)["instrument_name"].tolist()
    return names + [
        "BTC-PERPETUAL",
        "ETH-PERPETUAL",
        "BTC-26JUN26",
        "ETH-25SEP26",
        "BTC",
        "ETH",
        "BTC_USDC-PERPETUAL",
        "ETH_USDC-PERPETUAL",
    ]
