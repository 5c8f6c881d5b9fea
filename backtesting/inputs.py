"""Inputs a backtest derives from its history: the VaR/ES scenario inputs."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from backtesting.replay import MarketHistory, VarInputs
from calibration.realtime import RealtimeVolatility
from calibration.returns import log_return_frame


def var_inputs(history: MarketHistory, realtime: Mapping[str, RealtimeVolatility]) -> VarInputs:
    """Scenario inputs under the gap rule: the day after a gap has its (scaled) return."""
    returns = log_return_frame(history.close)[0]
    iv_changes = log_return_frame(history.iv)[0]
    cond = pd.DataFrame({a: r.cond_vol for a, r in realtime.items()}).reindex(returns.index)
    nxt = pd.DataFrame({a: np.sqrt(r.forecasts[1]) for a, r in realtime.items()}).reindex(
        returns.index
    )
    return VarInputs(returns, iv_changes, cond, nxt)
