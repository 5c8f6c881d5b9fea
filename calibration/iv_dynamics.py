"""Implied-volatility dynamics: the inputs for vol shocks.

From a daily 30-day implied-vol index (decimal) and the underlying's returns:

* **vol of vol** — a GARCH(1,1) (normal or t, by BIC; EWMA if neither is usable) of the daily
  log IV changes :math:`d_t = \\ln IV_t - \\ln IV_{t-1}`, reported as current and long-run
  annualised volatility of :math:`d`;
* **spot–vol correlation** — :math:`\\operatorname{corr}(r_t, d_t)` over the sample, and its
  EWMA (λ = 0.94) estimate at the end;
* **mean reversion** — the AR(1) :math:`\\ln IV_t = c + \\phi \\ln IV_{t-1} + e_t` (OLS):
  speed :math:`\\kappa = -\\ln\\phi` per day, half-life :math:`\\ln 2/\\kappa`, long-run level
  :math:`\\exp(c/(1-\\phi))`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm

from calibration import DAYS_PER_YEAR
from calibration.lineage import library_versions, series_fingerprint
from calibration.returns import log_returns
from calibration.univariate import (
    EwmaFit,
    Innovation,
    MeanModel,
    UnivariateFit,
    UnivariateSpec,
    VolProcess,
    apply_parameters,
    calibrate_volatility,
    fit_ewma,
)
from vocabulary import EWMA_LAMBDA

VOL_OF_VOL_CANDIDATES = (
    UnivariateSpec(VolProcess.GARCH, Innovation.NORMAL, MeanModel.ZERO),
    UnivariateSpec(VolProcess.GARCH, Innovation.STUDENT_T, MeanModel.ZERO),
)


@dataclass(frozen=True)
class MeanReversion:
    """AR(1) mean reversion of log IV: coefficient, long-run level and half-life."""

    phi: float
    phi_se: float
    intercept: float
    speed_per_day: float | None  # kappa = -ln(phi); None when phi >= 1 (no mean reversion)
    half_life_days: float | None
    long_run_iv: float | None


@dataclass(frozen=True)
class IvDynamics:
    """An implied-vol index's dynamics: vol of vol, spot-vol correlation, mean reversion."""

    asset: str
    n_obs: int
    start: str
    end: str
    iv_last: float
    vol_of_vol_model: str
    vol_of_vol_current_annual: float
    vol_of_vol_long_run_annual: float | None
    spot_vol_corr: float
    spot_vol_corr_ewma: float
    mean_reversion: MeanReversion
    fingerprint: str
    library_versions: dict[str, str]
    log_changes: pd.Series = field(repr=False, compare=False)
    vol_fit: UnivariateFit | EwmaFit | None = field(repr=False, compare=False, default=None)

    def to_dict(self) -> dict:
        """The dynamics as JSON-safe values (what the store keeps)."""
        out = {
            k: v
            for k, v in self.__dict__.items()
            if k not in ("log_changes", "vol_fit", "mean_reversion")
        }
        out["mean_reversion"] = self.mean_reversion.__dict__
        out["vol_fit"] = self.vol_fit.to_dict() if self.vol_fit is not None else None
        return out


def fit_mean_reversion(iv: pd.Series) -> MeanReversion:
    """AR(1) on log IV by OLS: :math:`\\ln IV_t = c + \\phi \\ln IV_{t-1} + e_t`."""
    logs = np.log(iv.to_numpy(dtype=float))
    x = sm.add_constant(logs[:-1])
    result = sm.OLS(logs[1:], x).fit()
    c, phi = (float(v) for v in result.params)
    phi_se = float(result.bse[1])
    if 0 < phi < 1:
        kappa = -math.log(phi)
        return MeanReversion(phi, phi_se, c, kappa, math.log(2) / kappa, math.exp(c / (1 - phi)))
    return MeanReversion(phi, phi_se, c, None, None, None)


def iv_dynamics(
    iv: pd.Series, spot_returns: pd.Series | None = None, *, asset: str = ""
) -> IvDynamics:
    """Vol of vol, spot–vol correlation and mean reversion of one implied-vol index.

    Parameters
    ----------
    iv : pd.Series
        Daily implied vol (annualised decimal) indexed by date, shape (n,), n >= 100.
    spot_returns : pd.Series, optional
        Decimal log returns of the underlying; without it the correlations are ``nan``.
    """
    iv = iv.dropna().sort_index()
    if len(iv) < 100:
        raise ValueError(f"{asset or 'iv'}: {len(iv)} observations; IV dynamics need at least 100")
    if (iv <= 0).any():
        raise ValueError(f"{asset or 'iv'}: implied vols must be positive")
    changes = log_returns(iv, asset=f"{asset} IV").values
    calibration = calibrate_volatility(changes, VOL_OF_VOL_CANDIDATES, asset=f"{asset} IV")
    fit = calibration.chosen
    current = math.sqrt(fit.next_variance * DAYS_PER_YEAR)
    long_run = fit.unconditional_vol_annual
    corr = ewma_corr = math.nan
    if spot_returns is not None:
        index = pd.DatetimeIndex(pd.to_datetime(spot_returns.index))
        spot = pd.Series(spot_returns.to_numpy(dtype=float), index=index)
        joined = pd.concat([spot, changes], axis=1, join="inner").dropna()
        if len(joined) >= 30:
            corr = float(np.corrcoef(joined.iloc[:, 0], joined.iloc[:, 1])[0, 1])
            x, y = joined.iloc[:, 0].to_numpy(), joined.iloc[:, 1].to_numpy()
            weights = EWMA_LAMBDA ** np.arange(len(x))[::-1]
            cov = np.sum(weights * x * y)
            ewma_corr = float(cov / math.sqrt(np.sum(weights * x * x) * np.sum(weights * y * y)))
    index = pd.DatetimeIndex(pd.to_datetime(iv.index))
    return IvDynamics(
        asset=asset,
        n_obs=len(iv),
        start=index[0].date().isoformat(),
        end=index[-1].date().isoformat(),
        iv_last=float(iv.iloc[-1]),
        vol_of_vol_model=fit.name,
        vol_of_vol_current_annual=current,
        vol_of_vol_long_run_annual=long_run,
        spot_vol_corr=corr,
        spot_vol_corr_ewma=ewma_corr,
        mean_reversion=fit_mean_reversion(iv),
        fingerprint=series_fingerprint(iv),
        library_versions=library_versions(),
        log_changes=changes,
        vol_fit=fit,
    )


def rebuild_iv_dynamics(stored: dict, iv: pd.Series) -> IvDynamics:
    """An :class:`IvDynamics` from its stored dictionary and the same IV series, with the
    vol-of-vol model re-applied from its stored parameters (no refit). Refuses other data.
    """
    iv = iv.dropna().sort_index()
    if series_fingerprint(iv) != stored["fingerprint"]:
        raise ValueError(
            f"{stored['asset']}: the IV series changed since its dynamics were estimated"
        )
    changes = log_returns(iv, asset=f"{stored['asset']} IV").values
    fit_detail = stored["vol_fit"]
    vol_fit: UnivariateFit | EwmaFit
    if fit_detail["model"] == "ewma":
        vol_fit = fit_ewma(
            changes, reason=fit_detail.get("reason", ""), lam=fit_detail["spec"]["lambda"]
        )
    else:
        spec = fit_detail["spec"]
        vol_fit = apply_parameters(
            changes, UnivariateSpec(spec["vol"], spec["dist"], spec["mean"]), fit_detail["params"]
        )
    fields = {k: v for k, v in stored.items() if k not in ("vol_fit", "mean_reversion")}
    return IvDynamics(
        **fields,
        mean_reversion=MeanReversion(**stored["mean_reversion"]),
        log_changes=changes,
        vol_fit=vol_fit,
    )
