"""Books of positions for the margin-engine tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

CHAIN = "options/deribit_options_snapshot_20260330T051423Z.csv"


def positions_frame(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["account", "instrument", "quantity"])


def random_book(names: list[str], n_accounts: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for a in range(n_accounts):
        for _ in range(int(rng.integers(1, 9))):
            name = names[int(rng.integers(len(names)))]
            size = 20_000.0 if "PERPETUAL" in name or name.count("-") == 1 else 3.0
            rows.append((f"acct{a:03d}", name, float(rng.normal() * size)))
    return positions_frame(rows)
